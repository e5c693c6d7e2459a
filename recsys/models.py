"""The search pipeline's models (pipeline runs, model and index versions) arrive with the
pipeline issue; the app exists so the layout and the import direction are in place."""
