"""Reads that answer queries, shared by the console, the search API and `manage.py search`:

- answers: who may query a pipeline, the parsing of a query, search / similar items /
  recommendations (`Served`);
- console: the console's answer, its comparison of two index versions, saved query sets run
  on two versions;
- provenance: the chain behind an index version and who approved each step.

Loading and hot-swapping the engines they query is recsys.serving's job; views never call it.
"""
