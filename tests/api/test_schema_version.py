"""The API contract is versioned: the live OpenAPI schema equals the committed copy
(docs/api/openapi.yaml), so any change to the contract is a reviewed change."""

from __future__ import annotations

import difflib
from pathlib import Path

from django.core.management import call_command

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.yaml"


def test_the_live_schema_equals_the_committed_one(tmp_path):
    live = tmp_path / "openapi.yaml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(live))
    committed, generated = COMMITTED.read_text(), live.read_text()
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(),
            generated.splitlines(),
            "docs/api/openapi.yaml (committed)",
            "live schema",
            lineterm="",
        )
        shown = "\n".join(list(diff)[:80])
        raise AssertionError(
            "The API schema differs from docs/api/openapi.yaml. If the change to the contract is "
            f"meant, run `make schema` and commit the file; else undo it.\n{shown}"
        )
