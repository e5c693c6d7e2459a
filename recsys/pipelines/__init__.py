"""Pure-Python recsys pipeline steps (no Django imports; see STYLE.md §3.8)."""
