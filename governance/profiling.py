"""Profile a stored dataset file: row count, per-column types and statistics, key duplicates and
the schema-contract check, on top of what reading found (encoding problems, malformed rows).

A Celery worker calls `profile_file` on a file that was stored first; the result is a plain,
JSON-serialisable dict that the services layer keeps on the dataset version and checks SLAs
against. Reading the file (formats, compression, decoding, the bounds of `ReadLimits`) is the
`datafiles` package; this module has no Django imports either, so that it can be tested (and
benchmarked) alone.

Memory stays bounded whatever the file size: the file is read in chunks of `chunk_rows` rows,
and only these survive between chunks: per-column running statistics, at most
`low_cardinality` distinct values per column, and one 64-bit hash per non-null key value
(8 bytes a row, compacted to the distinct keys) for the duplicate rate.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
)

from datafiles import ReadLimits, ReadReport, iter_frames

COLUMN_TYPES = ("string", "integer", "float", "boolean", "datetime")

_DEFAULT_KEYS = {"chorus-products": "id"}
_KEY_COMPACT_AT = 4_000_000
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_INFERRED_KINDS = {
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "boolean",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


@dataclass(frozen=True)
class SchemaContract:
    """The columns a dataset must have, with their types, and the key whose duplicates count."""

    columns: dict[str, str]
    key: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> SchemaContract | None:
        """Build a contract from its stored form {"columns": {name: type}, "key": name}; None
        stays None. Raises ValueError naming the bad part, so a form can show it."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError("A schema contract must be an object with 'columns' and 'key'.")
        unknown = sorted(set(data) - {"columns", "key"})
        if unknown:
            raise ValueError(f"Unknown schema contract field(s): {', '.join(unknown)}.")
        columns = data.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise ValueError("'columns' must be a non-empty object of column name -> type.")
        for name, kind in columns.items():
            if not isinstance(name, str) or not name:
                raise ValueError("Column names must be non-empty strings.")
            if kind not in COLUMN_TYPES:
                raise ValueError(
                    f"Column {name!r} has type {kind!r}; use one of {', '.join(COLUMN_TYPES)}."
                )
        key = data.get("key")
        if key is not None and key not in columns:
            raise ValueError(f"The key {key!r} must be one of the contract's columns.")
        return cls(columns=dict(columns), key=key)

    def to_dict(self) -> dict:
        return {"columns": dict(self.columns), "key": self.key}


# --- statistics --------------------------------------------------------------------------------


def _merge_kind(old: str | None, new: str | None) -> str | None:
    """Combine the types seen in two chunks: integer + float is float, other mixes are string."""
    if old is None or old == new:
        return new if old is None else old
    if new is None:
        return old
    return "float" if {old, new} == {"integer", "float"} else "string"


def _as_datetimes(values: pd.Series) -> pd.Series | None:
    """The values as UTC timestamps when every one is an ISO-8601 date/time string, else None."""
    sample = values.iloc[:20]
    if not all(isinstance(v, str) and _ISO_DATETIME.fullmatch(v) for v in sample):
        return None
    if not values.astype("string").str.fullmatch(_ISO_DATETIME.pattern).all():
        return None
    parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    return None if parsed.isna().any() else parsed


def _chunk_kind(values: pd.Series) -> tuple[str | None, pd.Series | None]:
    """(type, timestamps when the type is datetime) of a chunk's non-null values."""
    if values.empty:
        return None, None
    dtype = values.dtype
    if is_bool_dtype(dtype):
        return "boolean", None
    if is_integer_dtype(dtype):
        return "integer", None
    if is_float_dtype(dtype):
        return "float", None
    if is_datetime64_any_dtype(dtype):
        utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return "datetime", utc
    inferred = infer_dtype(values, skipna=True)
    if inferred == "string":
        parsed = _as_datetimes(values)
        return ("string", None) if parsed is None else ("datetime", parsed)
    kind = _INFERRED_KINDS.get(inferred, "string")
    if kind == "datetime":
        return kind, pd.to_datetime(values, utc=True, errors="coerce").dropna()
    return kind, None


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, dict, tuple, set)):
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return value


def _json_value(value: Any) -> Any:
    """A statistic as a plain JSON value (numpy scalars unwrapped, NaN/inf as null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


class _ColumnStats:
    """Running statistics of one column over the chunks."""

    def __init__(self, name: str, low_cardinality: int, nulls_before: int):
        self.name = name
        self.low_cardinality = low_cardinality
        self.null_count = nulls_before  # rows of earlier chunks that lacked the column
        self.kind: str | None = None
        self.minimum: Any = None
        self.maximum: Any = None
        self.total = 0.0
        self.count = 0
        self.counts: Counter | None = Counter()

    def add(self, series: pd.Series) -> None:
        values = series.dropna()
        self.null_count += len(series) - len(values)
        kind, timestamps = _chunk_kind(values)
        self.kind = _merge_kind(self.kind, kind)
        if kind in ("integer", "float"):
            numbers = pd.to_numeric(values, errors="coerce").dropna()
            if len(numbers):
                self._extremes(numbers.min(), numbers.max())
            self.total += float(numbers.astype("float64").sum())
            self.count += len(numbers)
        elif kind == "datetime" and timestamps is not None and len(timestamps):
            self._extremes(timestamps.min(), timestamps.max())
        self._count_values(values)

    def _extremes(self, low: Any, high: Any) -> None:
        low = low.item() if isinstance(low, np.generic) else low
        high = high.item() if isinstance(high, np.generic) else high
        if self.minimum is None or low < self.minimum:
            self.minimum = low
        if self.maximum is None or high > self.maximum:
            self.maximum = high

    def _count_values(self, values: pd.Series) -> None:
        """Merge value counts until the column shows more than `low_cardinality` distinct values."""
        if self.counts is None or values.empty:
            return
        if values.dtype == object:
            values = values.map(_hashable)
        counts = values.value_counts(sort=False)
        if len(counts) > self.low_cardinality:
            self.counts = None
            return
        for value, count in counts.items():
            self.counts[_json_value(value)] += int(count)
        if len(self.counts) > self.low_cardinality:
            self.counts = None

    def result(self, rows: int, top_k: int) -> dict:
        numeric = self.kind in ("integer", "float")
        shown = self.kind in ("integer", "float", "datetime")
        top = None
        if self.counts is not None:
            ranked = sorted(self.counts.items(), key=lambda item: (-item[1], str(item[0])))
            top = [[value, count] for value, count in ranked[:top_k]]
        return {
            "name": str(self.name),
            "dtype": self.kind or "null",
            "null_count": self.null_count,
            "null_rate": self.null_count / rows if rows else 0.0,
            "min": _json_value(self.minimum) if shown else None,
            "max": _json_value(self.maximum) if shown else None,
            "mean": _json_value(self.total / self.count) if numeric and self.count else None,
            "distinct": len(self.counts) if self.counts is not None else None,
            "top_values": top,
        }


class _KeyStats:
    """Duplicate count of a key column: 64-bit hashes of the non-null values, compacted to the
    distinct ones now and then (8 bytes per distinct key; collisions are negligible)."""

    def __init__(self, column: str):
        self.column = column
        self.hashes: list[np.ndarray] = []
        self.pending = 0
        self.non_null = 0
        self.seen = False

    def add(self, frame: pd.DataFrame) -> None:
        if self.column not in frame.columns:
            return
        self.seen = True
        # Hash the text form so that a key parsed as Int64 in one chunk and as string in another
        # still compares equal.
        values = frame[self.column].dropna().astype(str).to_numpy(dtype=object)
        self.non_null += len(values)
        self.hashes.append(pd.util.hash_array(values, categorize=False))
        self.pending += len(values)
        if self.pending > _KEY_COMPACT_AT:
            self.hashes = [_distinct(np.concatenate(self.hashes))]
            self.pending = 0

    def result(self, rows: int) -> dict | None:
        if not self.seen:
            return None
        distinct = len(_distinct(np.concatenate(self.hashes))) if self.hashes else 0
        duplicates = self.non_null - distinct
        return {
            "column": self.column,
            "duplicates": duplicates,
            "duplicate_rate": duplicates / rows if rows else 0.0,
        }


def _distinct(hashes: np.ndarray) -> np.ndarray:
    """The distinct values of a hash array (sorted)."""
    hashes = np.sort(hashes)
    return hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))] if len(hashes) else hashes


class _FrameStats:
    """Statistics of all columns (a column missing from a chunk counts as null there)."""

    def __init__(self, low_cardinality: int, key: str | None):
        self.low_cardinality = low_cardinality
        self.columns: dict[Any, _ColumnStats] = {}
        self.rows = 0
        self.key = _KeyStats(key) if key else None

    def add(self, frame: pd.DataFrame) -> None:
        for position, name in enumerate(frame.columns):
            stats = self.columns.get(name)
            if stats is None:
                stats = self.columns[name] = _ColumnStats(name, self.low_cardinality, self.rows)
            stats.add(frame.iloc[:, position])
        for name, stats in self.columns.items():
            if name not in frame.columns:
                stats.null_count += len(frame)
        self.rows += len(frame)
        if self.key is not None:
            self.key.add(frame)

    def kinds(self) -> dict[str, str | None]:
        return {str(name): stats.kind for name, stats in self.columns.items()}


def _type_fits(expected: str, found: str | None) -> bool:
    """Whether a column's inferred type satisfies the contract: an all-null column fits any type,
    integers fit float, and anything can be read as string."""
    if found is None or found == expected or expected == "string":
        return True
    return expected == "float" and found == "integer"


def _schema_check(contract: SchemaContract, kinds: dict[str, str | None]) -> dict:
    """Missing and extra columns and type mismatches; extra columns alone do not fail it."""
    missing = [name for name in contract.columns if name not in kinds]
    extra = [name for name in kinds if name not in contract.columns]
    mismatches = [
        {"column": name, "expected": expected, "found": kinds[name] or "null"}
        for name, expected in contract.columns.items()
        if name in kinds and not _type_fits(expected, kinds[name])
    ]
    return {
        "ok": not missing and not mismatches,
        "missing": missing,
        "extra": extra,
        "type_mismatches": mismatches,
    }


def profile_file(
    path: str | Path,
    *,
    fmt: str,
    contract: SchemaContract | None = None,
    chunk_rows: int = 100_000,
    top_k: int = 10,
    low_cardinality: int = 50,
    max_malformed_examples: int = 50,
    limits: ReadLimits | None = None,
) -> dict:
    """Profile a stored dataset file in bounded memory and return a JSON-serialisable dict:
    format, rows, columns, key, schema, encoding, malformed_rows, elapsed_seconds and
    rows_per_second (the shape is in the module's tests).

    Per column: dtype (one of COLUMN_TYPES, or "null" when it holds no value; integer + float
    chunks make float, other mixes make string; datetime means ISO-8601 text or a timestamp
    type), null_count/null_rate, min/max (numeric and datetime), mean (numeric), and distinct +
    top_values only while the column has at most `low_cardinality` distinct values. The key is
    the contract's, or "id" for Chorus products: nulls are not duplicates, and duplicate_rate is
    over all rows. The schema check fails on missing columns and type mismatches (an all-null
    column fits any type, integer fits float, anything fits string); extra columns are listed.

    Raises datafiles.DatasetReadError for a file that cannot be profiled (empty, truncated,
    wrong content, every row malformed, unsupported format) or that passes one of `limits`
    (too_large: a line or JSON record, decompressed or decoded bytes, zip members; too_slow: the
    time, which includes computing the statistics)."""
    started = time.perf_counter()
    report = ReadReport(max_examples=max_malformed_examples)
    key = contract.key if contract is not None else _DEFAULT_KEYS.get(fmt)
    stats = _FrameStats(low_cardinality, key)
    frames = iter_frames(path, fmt=fmt, chunk_rows=chunk_rows, report=report, limits=limits)
    for frame in frames:
        stats.add(frame)
    elapsed = time.perf_counter() - started
    return {
        "format": fmt,
        "rows": stats.rows,
        "columns": [column.result(stats.rows, top_k) for column in stats.columns.values()],
        "key": stats.key.result(stats.rows) if stats.key is not None else None,
        "schema": _schema_check(contract, stats.kinds()) if contract is not None else None,
        "encoding": {
            "encoding": report.encoding,
            "replaced_characters": report.replaced_characters,
        },
        "malformed_rows": {
            "count": report.malformed_count,
            "examples": report.malformed_examples,
        },
        "elapsed_seconds": round(elapsed, 4),
        "rows_per_second": round(stats.rows / elapsed, 1) if elapsed > 0 else 0.0,
    }
