"""Clean step: schema check, text normalisation, invalid rows, duplicates, outliers, bot bursts.

`clean(df, kind, cfg)` returns the cleaned frame and a JSON-serialisable report with one entry per
rule (rows removed or changed, with up to `cfg.max_examples` examples). Every rule is vectorised
(pandas `.str` methods, groupby/transform, numpy). Two steps call Python per value, but only on a
small subset: `html.unescape` on the *distinct* values that contain "&", and NFKC (pandas'
`.str.normalize`) on the values that are not pure ASCII (NFKC leaves ASCII unchanged).

No Django imports; pandas and numpy are imported inside functions (STYLE.md §3.8).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.pipelines.common import (
    CancelledError,
    ProgressFn,
    as_string,
    flag,
    normalise_text,
    stable_hash,
)

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("product_catalog", "queries", "relevance_labels", "behaviour_events")
REQUIRED = {
    "product_catalog": ("id", "title"),
    "queries": ("query",),
    "relevance_labels": ("query", "product_id", "grade"),
    "behaviour_events": ("user_id", "product_id", "event", "ts"),
}
ALIASES = {
    "product_catalog": {"product_id": "id"},
    "queries": {"text": "query", "query_text": "query"},
    "relevance_labels": {"product": "product_id", "relevance": "grade", "label": "grade"},
    "behaviour_events": {"user": "user_id", "product": "product_id", "event_type": "event"}
    | {"type": "event", "time": "ts", "timestamp": "ts"},
}
_EXAMPLE_CHARS = 120
_OUTLIER_METHODS = ("iqr", "mad", "none")


class SchemaError(ValueError):
    """The frame lacks a column its kind requires (after renaming known aliases)."""


@dataclass(frozen=True)
class CleanConfig:
    """Thresholds of the clean step; `config_hash()` pins them in the run's approval.

    Price outliers, per group (brand, plus category when present) of at least
    `price_min_group_size` rows, on log prices when `price_log`: "iqr" flags prices outside
    [Q1 − k·IQR, Q3 + k·IQR] (k = `price_iqr_k`); "mad" flags a modified z-score
    0.6745·|x − median| / MAD above `price_z_threshold`; "none" turns the rule off. A flagged
    price must also be at least `price_min_ratio` times above (or below) the group median, so a
    tight group (cables at 25 ± 1) does not lose its 50 one.
    Bot bursts: a user with more than `bot_max_events` events within any `bot_window_seconds`
    window loses all its events.
    """

    text_columns: tuple[str, ...] = ("title", "description", "brand", "category")
    lowercase_queries: bool = True
    price_outlier_method: str = "iqr"
    price_log: bool = True
    price_iqr_k: float = 3.0
    price_z_threshold: float = 3.5
    price_min_group_size: int = 8
    price_min_ratio: float = 3.0
    near_dup_ean: bool = True
    near_dup_title_brand: bool = True
    event_types: tuple[str, ...] = ("view", "click", "cart", "purchase")
    bot_max_events: int = 20
    bot_window_seconds: float = 60.0
    min_grade: int = 0
    max_grade: int = 3
    max_examples: int = 5

    def __post_init__(self) -> None:
        if self.price_outlier_method not in _OUTLIER_METHODS:
            raise ValueError(f"price_outlier_method must be one of {_OUTLIER_METHODS}")
        if self.bot_max_events < 1 or self.price_min_group_size < 1:
            raise ValueError("bot_max_events and price_min_group_size must be at least 1")

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of every field (stable across runs and processes)."""
        return stable_hash({"step": "clean", "version": 2, **asdict(self)})


# --- bookkeeping -------------------------------------------------------------------------------


class _Run:
    """Collects the per-rule report, checks cancellation and reports progress between rules."""

    def __init__(self, cfg: CleanConfig, should_stop, progress, steps: int):
        self.cfg, self.should_stop, self.progress, self.steps = cfg, should_stop, progress, steps
        self.done = 0
        self.rules: list[dict] = []

    def step(self, name: str) -> None:
        if self.should_stop is not None and self.should_stop():
            raise CancelledError(f"clean cancelled before rule {name!r}")
        if self.progress is not None:
            self.progress(self.done / self.steps, name)
        self.done += 1

    def drop(self, df: pd.DataFrame, mask, rule: str, cols, extra=None) -> pd.DataFrame:
        """Remove the rows where `mask` is True, recording the count and a few examples."""
        mask = flag(mask)
        shown = df.loc[mask, [c for c in cols if c in df.columns]].head(self.cfg.max_examples)
        if extra is not None:
            shown = shown.assign(**{k: v.reindex(shown.index) for k, v in extra.items()})
        self.rules.append({"rule": rule, "removed": int(mask.sum()), "examples": _examples(shown)})
        return df.loc[~mask]

    def changed(self, rule: str, count: int, examples: list[dict]) -> None:
        self.rules.append({"rule": rule, "changed": int(count), "examples": examples})


def _examples(frame: pd.DataFrame) -> list[dict]:
    """JSON-safe dicts (strings cut to 120 characters) from a handful of rows."""
    import json

    rows = json.loads(frame.to_json(orient="records", force_ascii=False, date_format="iso"))
    cut = _EXAMPLE_CHARS
    return [{k: v[:cut] if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def _frame(columns: dict) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({k: list(v) for k, v in columns.items()})


# --- text --------------------------------------------------------------------------------------


def _texts(df: pd.DataFrame, run: _Run, cols, *, lower: bool = False) -> pd.DataFrame:
    """Normalise text columns: one "changed" rule per stage, counted in rows."""
    import numpy as np

    df = df.copy()
    stages: dict[str, list] = {}
    for col in [c for c in cols if c in df.columns]:
        df[col], changes = normalise_text(df[col], lower=lower)
        for stage, (mask, before, after) in changes.items():
            stages.setdefault(stage, []).append((col, mask, before, after))
    for stage, entries in stages.items():
        rows = np.zeros(len(df), dtype=bool)
        examples: list[dict] = []
        for col, mask, before, after in entries:
            rows |= mask
            k = run.cfg.max_examples - len(examples)
            shown = {"column": [col] * len(before[:k]), "before": before[:k], "after": after[:k]}
            examples += _examples(_frame(shown))
        run.changed(stage, int(rows.sum()), examples)
    return df


# --- rules shared by kinds ---------------------------------------------------------------------


def _schema(df: pd.DataFrame, kind: str, run: _Run) -> pd.DataFrame:
    renames = {a: c for a, c in ALIASES[kind].items() if a in df.columns and c not in df.columns}
    df = df.rename(columns=renames).reset_index(drop=True)
    missing = [c for c in REQUIRED[kind] if c not in df.columns]
    if missing:
        raise SchemaError(f"{kind} needs columns {missing}; found {list(df.columns)}")
    run.changed("schema", len(renames), [{"from": a, "to": c} for a, c in renames.items()])
    return df


def _ids(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    """Identifier columns as trimmed strings (empty → NA)."""
    df = df.copy()
    for col in cols:
        s = as_string(df[col]).str.strip()
        df[col] = s.mask(s.eq(""))
    return df


def _missing(df: pd.DataFrame, run: _Run, cols: tuple[str, ...], rule: str) -> pd.DataFrame:
    return run.drop(df, df[list(cols)].isna().any(axis=1), rule, list(df.columns)[:6])


def _duplicates(df: pd.DataFrame, run: _Run, key: list[str] | None, rule: str) -> pd.DataFrame:
    return run.drop(df, df.duplicated(key), rule, list(df.columns)[:6])


# --- product catalog ---------------------------------------------------------------------------


def _invalid_price(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    import pandas as pd

    if "price" not in df.columns:
        return df
    price = pd.to_numeric(df["price"], errors="coerce").astype("Float64")
    bad = price.isna() | price.le(0)
    return run.drop(df.assign(price=price), bad, "invalid_price", ["id", "title", "price"])


def _completeness(df: pd.DataFrame):
    """Non-empty fields per row: among duplicates the most complete row is kept."""
    import pandas as pd

    filled = df.notna()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.StringDtype) or df[col].dtype == object:
            filled[col] &= flag(df[col].ne(""))
    return filled.sum(axis=1).to_numpy()


def _near_duplicates(df: pd.DataFrame, run: _Run, keys: pd.Series, rule: str) -> pd.DataFrame:
    """Keep one row per key: the most complete, then the first. `keys` is indexed by row label
    and may hold several keys for one row (EAN lists); rows sharing any key are duplicates."""
    import numpy as np
    import pandas as pd

    keys = keys.dropna()
    codes = pd.factorize(keys)[0]
    pos = df.index.get_indexer(keys.index)
    order = np.lexsort((pos, -_completeness(df)[pos], codes))
    c, p = codes[order], pos[order]
    start = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, dtype=bool)
    keeper = p[np.maximum.accumulate(np.where(start, np.arange(len(c)), 0))]
    lost, first = np.unique(p[p != keeper], return_index=True)
    mask = pd.Series(np.isin(np.arange(len(df)), lost), index=df.index)
    kept = pd.Series(df["id"].to_numpy()[keeper[p != keeper][first]], index=df.index[lost])
    cols = ["id", "title", "brand", "ean"]
    return run.drop(df, mask, rule, cols, extra={"duplicate_of": kept})


def _near_dup_ean(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    """Same EAN/GTIN: digits only, 8–14 long, leading zeros dropped (GTIN-14 = EAN-13)."""
    if "ean" not in df.columns:
        return df
    codes = as_string(df["ean"]).str.split(",").explode().str.replace(r"[\s-]", "", regex=True)
    valid = flag(codes.str.fullmatch(r"\d{8,14}")) & flag(codes.str.strip("0").ne(""))
    return _near_duplicates(df, run, codes[valid].str.lstrip("0"), "near_duplicate_ean")


def _near_dup_title_brand(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    """Same title and brand after casefolding and turning punctuation runs into one space, and
    not told apart by their EANs: two rows whose (first) EANs differ are different sellable
    items (variants of a product line often share a title), so they are kept."""
    title = df["title"].str.casefold().str.replace(r"[\W_]+", " ", regex=True).str.strip()
    brand = df["brand"].str.casefold().fillna("") if "brand" in df.columns else ""
    keys = (title + "\x1f" + brand).mask(title.isna() | title.eq(""))
    if "ean" in df.columns:
        first = as_string(df["ean"]).str.split(",").str[0].str.replace(r"[\s-]", "", regex=True)
        valid = flag(first.str.fullmatch(r"\d{8,14}"))
        keys = keys + "\x1f" + first.str.lstrip("0").where(valid, "").fillna("")
    return _near_duplicates(df, run, keys, "near_duplicate_title_brand")


def _price_outliers(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    import numpy as np

    cfg = run.cfg
    parts = [df[c].str.casefold().fillna("") for c in ("brand", "category") if c in df.columns]
    if not parts or "price" not in df.columns or cfg.price_outlier_method == "none":
        return df
    groups = parts[0] if len(parts) == 1 else parts[0] + "\x1f" + parts[1]
    groups = groups.mask(groups.str.strip("\x1f").eq(""))
    price = df["price"].astype("float64")
    x = np.log(price) if cfg.price_log else price
    grouped = x.groupby(groups)
    if cfg.price_outlier_method == "iqr":
        q1, q3 = grouped.transform("quantile", 0.25), grouped.transform("quantile", 0.75)
        iqr = q3 - q1
        score = ((q1 - x) / iqr).where(x < q1, (x - q3) / iqr)  # IQRs beyond the box
        flagged = score.gt(cfg.price_iqr_k) & iqr.gt(0)
    else:
        dev = (x - grouped.transform("median")).abs()
        mad, mean_ad = (dev.groupby(groups).transform(f) for f in ("median", "mean"))
        # Iglewicz–Hoaglin: fall back to the mean absolute deviation when MAD is 0.
        score = (0.6745 * dev / mad).where(mad > 0, dev / (1.253314 * mean_ad))
        flagged = score.gt(cfg.price_z_threshold)
    median = price.groupby(groups).transform("median")
    far = (price / median).ge(cfg.price_min_ratio) | (median / price).ge(cfg.price_min_ratio)
    mask = flagged & far & grouped.transform("size").ge(cfg.price_min_group_size)
    extra = {"score": score.round(2), "group_median": median}
    cols = ["id", "title", "brand", "category", "price"]
    return run.drop(df, mask, "price_outliers", cols, extra=extra)


# --- labels and events -------------------------------------------------------------------------


def _invalid_grade(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    import pandas as pd

    raw = df["grade"]
    grade = pd.to_numeric(raw, errors="coerce").astype("Float64")
    bad = flag(grade.isna() | grade.ne(grade.round()))
    bad |= flag(grade.lt(run.cfg.min_grade) | grade.gt(run.cfg.max_grade))
    out = df.assign(grade=grade.where(~bad).round().astype("Int64"))
    cols = ["query", "product_id"]
    return run.drop(out, bad, "invalid_grade", cols, extra={"grade": as_string(raw)})


def _duplicate_judgments(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    """One judgment per (query, product): the highest grade wins; original order is kept."""
    ranked = df.sort_values("grade", ascending=False, kind="stable")
    mask = ranked.duplicated(["query", "product_id"]).reindex(df.index)
    return run.drop(df, mask, "duplicate_judgments", ["query", "product_id", "grade"])


def _event_times(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    """`ts` as float epoch seconds (numbers kept, ISO-8601 strings parsed); else removed."""
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    ts = df["ts"]
    seconds = pd.to_numeric(ts, errors="coerce").astype("float64")
    if not is_numeric_dtype(ts.dtype):
        text = ts.where(seconds.isna())
        stamps = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        seconds = seconds.fillna((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1))
    cols = ["user_id", "product_id", "event"]
    return run.drop(df.assign(ts=seconds), seconds.isna(), "invalid_time", cols, {"ts": ts})


def _event_types(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    event = as_string(df["event"]).str.strip().str.lower()
    bad = ~flag(event.isin(list(run.cfg.event_types)))
    cols = ["user_id", "product_id", "event"]
    return run.drop(df.assign(event=event), bad, "unknown_event_type", cols)


def _bot_bursts(df: pd.DataFrame, run: _Run) -> pd.DataFrame:
    """Users with more than N events inside any W-second window lose all their events: after
    sorting by (user, time), row i and row i − N of one user less than W apart is a burst."""
    import numpy as np
    import pandas as pd

    n = run.cfg.bot_max_events
    codes, users = pd.factorize(df["user_id"])
    times = df["ts"].to_numpy(dtype="float64")
    order = np.lexsort((times, codes))
    u, t = codes[order], times[order]
    burst = (u[n:] == u[:-n]) & (t[n:] - t[:-n] <= run.cfg.bot_window_seconds)
    bots = np.zeros(len(users), dtype=bool)
    bots[u[n:][burst]] = True
    shown = np.flatnonzero(bots)[: run.cfg.max_examples]
    counts = np.bincount(codes, minlength=len(users))[shown]
    df = run.drop(df, pd.Series(bots[codes], index=df.index), "bot_bursts", [])
    examples = _examples(_frame({"user_id": users[shown], "events": counts}))
    run.rules[-1].update(users=int(bots.sum()), examples=examples)
    return df


def _catalog_steps(cfg: CleanConfig) -> list[tuple[str, Callable]]:
    near = [("near_duplicate_ean", _near_dup_ean)] if cfg.near_dup_ean else []
    if cfg.near_dup_title_brand:
        near.append(("near_duplicate_title_brand", _near_dup_title_brand))
    return [
        _ids_step("id"),
        ("text", lambda df, run: _texts(df, run, cfg.text_columns)),
        _missing_step("id", rule="missing_id"),
        _missing_step("title", rule="missing_title"),
        ("invalid_price", _invalid_price),
        _dupes_step(None, "exact_duplicates"),
        _dupes_step(["id"], "duplicate_id"),
        *near,
        ("price_outliers", _price_outliers),
    ]


def _other_steps(kind: str, cfg: CleanConfig) -> list[tuple[str, Callable]]:
    query_text = ("text", lambda df, run: _texts(df, run, ("query",), lower=cfg.lowercase_queries))
    if kind == "queries":
        missing = _missing_step("query", rule="missing_query")
        return [query_text, missing, _dupes_step(["query"], "duplicate_query")]
    if kind == "relevance_labels":
        return [
            _ids_step("product_id"),
            query_text,
            _missing_step("query", "product_id"),
            ("invalid_grade", _invalid_grade),
            ("duplicate_judgments", _duplicate_judgments),
        ]
    return [
        _ids_step("user_id", "product_id"),
        query_text,
        _missing_step("user_id", "product_id"),
        ("invalid_time", _event_times),
        ("unknown_event_type", _event_types),
        _dupes_step(None, "exact_duplicates"),
        ("bot_bursts", _bot_bursts),
    ]


def _ids_step(*cols: str) -> tuple[str, Callable]:
    return ("ids", lambda df, run: _ids(df, cols))


def _missing_step(*cols: str, rule: str = "missing_key") -> tuple[str, Callable]:
    return (rule, lambda df, run: _missing(df, run, cols, rule))


def _dupes_step(key: list[str] | None, rule: str) -> tuple[str, Callable]:
    return (rule, lambda df, run: _duplicates(df, run, key, rule))


# --- entry points ------------------------------------------------------------------------------


def clean(
    df: pd.DataFrame,
    kind: str,
    cfg: CleanConfig,
    *,
    should_stop: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Clean a frame of `kind`; returns (cleaned frame with a fresh RangeIndex, report).

    Raises SchemaError when a required column is missing, and CancelledError when `should_stop`
    returns True (checked before every rule). `progress(fraction, rule)` is called likewise."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    started = time.perf_counter()
    steps = _catalog_steps(cfg) if kind == "product_catalog" else _other_steps(kind, cfg)
    run = _Run(cfg, should_stop, progress, len(steps) + 1)
    run.step("schema")
    out = _schema(df, kind, run)
    for name, fn in steps:
        run.step(name)
        out = fn(out, run)
    if progress is not None:
        progress(1.0, "done")
    elapsed = time.perf_counter() - started
    report = {
        "kind": kind,
        "rows_in": len(df),
        "rows_out": len(out),
        "config_hash": cfg.config_hash(),
        "rules": run.rules,
        "elapsed_seconds": round(elapsed, 4),
        "rows_per_second": round(len(df) / elapsed, 1) if elapsed > 0 else None,
    }
    return out.reset_index(drop=True), report


def clean_file(
    path: str | Path,
    *,
    fmt: str,
    kind: str,
    cfg: CleanConfig,
    out_path: str | Path,
    chunk_rows: int = 100_000,
    should_stop: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Read a stored file, clean it, write CSV (Parquet when out_path ends in .parquet) under a
    temporary name then rename; return the report plus what reading found.

    Duplicates are found across the whole file, so the chunks are concatenated: memory is the
    whole table in pandas (roughly 2–4× the text size while a rule runs), not `chunk_rows`."""
    import pandas as pd

    from datafiles import ReadReport, iter_frames

    started = time.perf_counter()
    read = ReadReport()
    # For fmt="chorus-products" this is exactly read_chorus_products(path), plus the ReadReport.
    df = pd.concat(list(iter_frames(path, fmt=fmt, chunk_rows=chunk_rows, report=read)))
    read_seconds = time.perf_counter() - started
    cleaned, report = clean(df, kind, cfg, should_stop=should_stop, progress=progress)
    _write(cleaned, Path(out_path))
    report["read"] = {
        "encoding": read.encoding,
        "replaced_characters": read.replaced_characters,
        "malformed_rows": read.malformed_count,
        "malformed_examples": read.malformed_examples[: cfg.max_examples],
        "seconds": round(read_seconds, 4),
    }
    report["out_path"] = str(out_path)
    report["total_seconds"] = round(time.perf_counter() - started, 4)
    return report


def _write(df: pd.DataFrame, out_path: Path) -> None:
    """Write under a temporary name in the same folder, then rename: never a half-written file."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        if out_path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
