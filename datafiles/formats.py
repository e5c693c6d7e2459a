"""The formats a data file may have, and how each is named."""

from __future__ import annotations

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "chorus-products", "chorus-judgments")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
WRAPPERS = {".gz": "gzip", ".zip": "zip"}
BASE_OF = {"chorus-products": "json", "chorus-judgments": "csv"}
FORMAT_NAMES = {
    "csv": "CSV",
    "tsv": "TSV",
    "jsonl": "JSON Lines",
    "json": "JSON",
    "parquet": "Parquet",
    "chorus-products": "Chorus product JSON",
    "chorus-judgments": "Chorus judgments CSV",
}
# What the first bytes (after unwrapping) may look like for each base format; "empty" and
# "blank" always pass here and are reported as code="empty" once reading finds no rows.
ACCEPTS = {
    "csv": {"text"},
    "tsv": {"text"},
    "jsonl": {"json-object"},
    "json": {"json-array", "json-object"},
    "parquet": {"parquet"},
}
