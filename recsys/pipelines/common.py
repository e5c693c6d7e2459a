"""Shared helpers for the pipeline steps: cancellation, progress, stable hashing, and the
vectorised text normalisation used by cleaning (catalog text, queries) and by the pairs step.

Pure Python; no Django imports, pandas imported inside functions (STYLE.md §3.8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ProgressFn = Callable[[float, str], None]
"""Progress callback: ``(fraction_done in 0..1, message)``."""

_TAG = r"</?[A-Za-z][^<>]*>|<!--.*?-->"
_WS_LITERALS = ("  ", "\t", "\n", "\r", "\x0b", "\x0c")


class CancelledError(Exception):
    """Raised by a pipeline step when its ``should_stop`` callback returns True."""


def _canonical(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((_canonical(v) for v in obj), key=repr)
    return obj


def stable_hash(obj: object) -> str:
    """sha256 hex digest of the canonical JSON of ``obj`` (dataclasses, dicts, lists, scalars).

    Keys are sorted and separators fixed, so equal values always hash equal across runs.
    """
    payload = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- vectorised text helpers -------------------------------------------------------------------


def as_string(s: pd.Series) -> pd.Series:
    """As nullable pyarrow strings; integral floats (ids read as 1.0) lose their ".0"."""
    import pandas as pd
    from pandas.api.types import is_float_dtype

    if is_float_dtype(s.dtype):
        whole = s.dropna()
        if len(whole) and (whole == whole.round()).all():
            s = s.astype("Int64")
    return s.astype(pd.StringDtype("pyarrow"))


def flag(s: pd.Series) -> pd.Series:
    """A nullable boolean Series as plain bool, NA counting as False."""
    return s.fillna(False).astype(bool)


def normalise_text(s: pd.Series, *, lower: bool = False) -> tuple[pd.Series, dict]:
    """Unescape HTML entities, NFKC, strip tags, collapse whitespace (casefold when `lower`);
    empty becomes NA. Returns (column, {stage: (changed mask, before, after)}), the last two
    holding only the changed rows.

    Each stage touches only the rows that can change. Python runs per value in two places only:
    `html.unescape` on the *distinct* values containing "&", and NFKC on the non-ASCII values
    (NFKC leaves ASCII unchanged); everything else is a pandas `.str` (pyarrow) kernel."""
    import html

    s = as_string(s)
    stages = {}
    amp = flag(s.str.contains("&", regex=False))
    distinct = s[amp].unique()
    mapping = dict(zip(distinct, map(html.unescape, distinct), strict=True))
    stages["html_entities"] = _apply(s, amp, lambda sub: sub.map(mapping).astype(s.dtype))
    non_ascii = ~flag(s.str.isascii()) & s.notna()
    stages["unicode_nfkc"] = _apply(s, non_ascii, lambda sub: sub.str.normalize("NFKC"))
    tags = flag(s.str.contains("<", regex=False))
    stages["html_tags"] = _apply(s, tags, lambda sub: sub.str.replace(_TAG, " ", regex=True))
    ws = ~flag(s.str.isascii()) | flag(s.str.startswith(" ") | s.str.endswith(" "))
    for literal in _WS_LITERALS:
        ws |= flag(s.str.contains(literal, regex=False))
    stages["whitespace"] = _apply(s, ws, collapse_whitespace)
    if lower:
        stages["casefold"] = _apply(s, s.notna(), lambda sub: sub.str.casefold())
    return s.mask(s.eq("")), stages


def collapse_whitespace(s: pd.Series) -> pd.Series:
    """Runs of whitespace become one space; ends trimmed."""
    return s.str.replace(r"\s+", " ", regex=True).str.strip()


def _apply(s: pd.Series, mask: pd.Series, fn: Callable) -> tuple:
    """In place: s[mask] = fn(s[mask]). Returns (changed mask, before, after) of changed rows."""
    before = s[mask]
    after = fn(before) if len(before) else before
    s.loc[mask] = after
    diff = flag(before.ne(after))
    return mask.index.isin(diff.index[diff]), before[diff], after[diff]
