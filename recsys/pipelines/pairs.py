"""Training pairs: (query, relevant product text) from graded labels and from behaviour events,
with a held-out split by query (never by pair), deterministic for a seed.

`build_pairs(catalog, labels, events, cfg)` returns (train, heldout, report):

- `train`: one row per (query, product_id) with columns query, product_id, product_text,
  source ("labels" or "events") and weight (the grade, or the summed event weights).
- `heldout`: every row of the held-out queries, for evaluation with graded relevance: ALL their
  judged products (grades 0–3, not only the relevant ones) plus their event pairs, with the
  train columns and grade (Int64, NA for event rows), gain (the grade; `min_grade` for an
  event pair without a judgment) and relevant (gain ≥ min_grade). `qrels(heldout)` turns it
  into {query: {product_id: gain}} for nDCG, Recall and MRR.
- `report`: counts per source, per split and the held-out query set (JSON-serialisable).

Products are embedded with `product_texts(catalog, cfg)` so the index sees the same text as
training. No Django imports; pandas and numpy are imported inside functions (STYLE.md §3.8).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from recsys.pipelines.common import as_string, normalise_text, stable_hash

if TYPE_CHECKING:
    import pandas as pd

PAIR_COLUMNS = ["query", "product_id", "product_text", "source", "weight"]
HELDOUT_COLUMNS = [*PAIR_COLUMNS, "grade", "gain", "relevant"]
_MAX_LISTED_QUERIES = 1000


def _default_weights() -> dict[str, int]:
    return {"click": 1, "cart": 2, "purchase": 3}


@dataclass(frozen=True)
class PairsConfig:
    """Which labels and events make a training pair, and how the queries are split.

    A judgment is a pair when grade ≥ `min_grade`; a (query, product) from events is a pair when
    the summed `event_weights` of its events reach `min_event_weight` (events without a query,
    or of a type without a weight, are ignored). `held_out_fraction` of the eligible queries
    (those with at least one relevant judgment; all queries when there are no labels) is held
    out, chosen by a seeded hash of the query text.
    """

    min_grade: int = 2
    event_weights: dict[str, int] = field(default_factory=_default_weights)
    min_event_weight: int = 2
    held_out_fraction: float = 0.2
    seed: int = 13
    max_description_chars: int = 300

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_weights", dict(self.event_weights))  # no shared dict
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError("held_out_fraction must be in [0, 1)")

    def __hash__(self) -> int:
        return hash(self.config_hash())

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of every field (stable across runs and processes)."""
        return stable_hash({"step": "pairs", "version": 1, **asdict(self)})


def product_texts(catalog: pd.DataFrame, cfg: PairsConfig) -> pd.Series:
    """Product text "title | brand | description" (description cut to `max_description_chars`),
    indexed by product id; missing parts are left out."""
    text = _clean_text(catalog["title"]).fillna("")
    for col in ("brand", "description"):
        if col in catalog.columns:
            part = _clean_text(catalog[col])
            if col == "description":
                part = part.str.slice(0, cfg.max_description_chars).str.rstrip()
            text = text + (" | " + part).fillna("")
    ids = as_string(catalog["id"]).str.strip()
    return text.str.strip(" |").set_axis(ids).loc[lambda s: s.index.notna()]


def query_keys(queries: pd.Series) -> pd.Series:
    """Queries as the cleaning step leaves them (NFKC, no HTML, one space, casefolded)."""
    return normalise_text(queries, lower=True)[0]


def _clean_text(s: pd.Series) -> pd.Series:
    return normalise_text(s)[0]


def _labels(labels: pd.DataFrame | None) -> pd.DataFrame:
    """(query, product_id, grade) with one judgment per pair, the highest grade kept."""
    import pandas as pd

    if labels is None or labels.empty:
        return _typed(pd.DataFrame({"query": [], "product_id": [], "grade": []}))
    frame = pd.DataFrame(
        {
            "query": query_keys(labels["query"]),
            "product_id": as_string(labels["product_id"]).str.strip(),
            "grade": pd.to_numeric(labels["grade"], errors="coerce"),
        }
    ).dropna()
    frame = frame.loc[frame["grade"].eq(frame["grade"].round())]  # integer grades only
    frame = frame.sort_values("grade", ascending=False, kind="stable")
    return _typed(frame.drop_duplicates(["query", "product_id"]))


def _event_pairs(events: pd.DataFrame | None, cfg: PairsConfig) -> tuple[pd.DataFrame, int]:
    """(query, product_id, weight) summed over events with a query; returns (pairs, rows used)."""
    import pandas as pd

    empty = _typed(pd.DataFrame({"query": [], "product_id": [], "weight": []}))
    if events is None or events.empty or "query" not in events.columns:
        return empty, 0
    event = as_string(events["event"]).str.strip().str.lower()
    frame = pd.DataFrame(
        {
            "query": query_keys(events["query"]),
            "product_id": as_string(events["product_id"]).str.strip(),
            "weight": event.map(cfg.event_weights).astype("Float64"),
        }
    ).dropna()
    pairs = frame.groupby(["query", "product_id"], as_index=False, sort=True)["weight"].sum()
    pairs = pairs.loc[pairs["weight"].ge(cfg.min_event_weight)]
    return _typed(pairs), len(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed dtypes whatever the input (empty frames included); other columns are strings."""
    import pandas as pd

    types = {"grade": "Int64", "weight": "float64", "gain": "int64", "relevant": "bool"}
    text = pd.StringDtype("pyarrow")
    return frame.astype({c: types.get(c, text) for c in frame.columns})


def _heldout_queries(eligible: pd.Series, cfg: PairsConfig) -> set[str]:
    """The first round(fraction·n) eligible queries by a seeded 64-bit hash of their text (at
    least one, and never all, when there are two or more)."""
    import numpy as np
    import pandas as pd

    queries = pd.Series(sorted(set(eligible.dropna())), dtype="object")
    n = len(queries)
    want = min(max(round(cfg.held_out_fraction * n), 1), n - 1)
    want = want if cfg.held_out_fraction > 0 and n >= 2 else 0
    key = hashlib.sha256(f"steward-pairs-{cfg.seed}".encode()).hexdigest()[:16]
    hashes = pd.util.hash_pandas_object(queries, index=False, hash_key=key).to_numpy()
    order = np.lexsort((queries.to_numpy(), hashes))
    return set(queries.to_numpy()[order[:want]].tolist())


def _attach_text(frame: pd.DataFrame, texts: pd.Series) -> tuple[pd.DataFrame, int]:
    """Add product_text; drop rows whose product is not in the catalog (returns their count)."""
    known = frame["product_id"].isin(texts.index)
    frame = frame.loc[known].copy()
    frame["product_text"] = texts.reindex(frame["product_id"]).to_numpy()
    return frame, int((~known).sum())


def build_pairs(
    catalog: pd.DataFrame,
    labels: pd.DataFrame | None,
    events: pd.DataFrame | None,
    cfg: PairsConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Build (train pairs, held-out evaluation rows, report); see the module docstring."""
    import pandas as pd

    started = time.perf_counter()
    texts = product_texts(catalog, cfg)
    texts = texts[~texts.index.duplicated()]
    judged, unknown_labels = _attach_text(_labels(labels), texts)
    from_events, event_rows = _event_pairs(events, cfg)
    from_events, unknown_events = _attach_text(from_events, texts)
    label_pairs = judged.loc[judged["grade"].ge(cfg.min_grade)].assign(source="labels")
    label_pairs["weight"] = label_pairs["grade"].astype("float64")  # weight = grade
    pairs = pd.concat([label_pairs, from_events.assign(source="events")], ignore_index=True)
    pairs = pairs.drop_duplicates(["query", "product_id"])[PAIR_COLUMNS]
    overlap = len(label_pairs) + len(from_events) - len(pairs)
    eligible = label_pairs["query"] if len(label_pairs) else pairs["query"]
    held = _heldout_queries(eligible, cfg)
    in_held = pairs["query"].isin(held)
    train = _typed(pairs.loc[~in_held].sort_values(["query", "product_id"]).reset_index(drop=True))
    heldout = _heldout_frame(judged, pairs.loc[in_held], held, cfg)
    counts = {
        "label_judgments": len(judged),
        "label_pairs": len(label_pairs),
        "unknown_product_labels": unknown_labels,
        "event_rows_used": event_rows,
        "event_pairs": len(from_events),
        "unknown_product_events": unknown_events,
        "overlap_labels_events": overlap,
    }
    report = _report(cfg, counts, pairs, train, heldout, eligible, held, started)
    return train, heldout, report


def _heldout_frame(judged, held_pairs, held: set[str], cfg: PairsConfig) -> pd.DataFrame:
    """All judgments of the held-out queries (any grade) plus their event pairs."""
    import pandas as pd

    graded = judged.loc[judged["query"].isin(held)].assign(source="labels")
    graded["weight"] = graded["grade"].astype("float64")
    extra = held_pairs.loc[held_pairs["source"].eq("events")]
    frame = pd.concat([graded, extra], ignore_index=True)
    frame = frame.drop_duplicates(["query", "product_id"])
    frame["grade"] = frame["grade"].astype("Int64")
    frame["gain"] = frame["grade"].fillna(cfg.min_grade).astype("int64")
    frame["relevant"] = frame["gain"].ge(cfg.min_grade)
    order = ["query", "gain", "product_id"]
    frame = frame.sort_values(order, ascending=[True, False, True])
    return _typed(frame[HELDOUT_COLUMNS].reset_index(drop=True))


def _report(cfg, counts, pairs, train, heldout, eligible, held, started) -> dict:
    listed = sorted(held)
    elapsed = time.perf_counter() - started
    return {
        "config_hash": cfg.config_hash(),
        **counts,
        "pairs_total": len(pairs),
        "train_pairs": len(train),
        "heldout_pairs": int(heldout["relevant"].sum()),
        "heldout_judgments": int(heldout["source"].eq("labels").sum()),
        "queries_total": int(pairs["query"].nunique()),
        "queries_eligible": int(eligible.nunique()),
        "train_queries": int(train["query"].nunique()),
        "heldout_query_count": len(held),
        "heldout_queries": listed[:_MAX_LISTED_QUERIES],
        "heldout_queries_truncated": len(listed) > _MAX_LISTED_QUERIES,
        "heldout_queries_hash": stable_hash(listed),
        "elapsed_seconds": round(elapsed, 4),
    }


def qrels(heldout: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{query: {product_id: gain}} from the held-out frame (gain 0 rows included: judged but
    irrelevant; unjudged products are simply absent)."""
    grouped = heldout.groupby("query", sort=True)
    return {
        str(q): dict(zip(g["product_id"].astype(str), g["gain"].astype(int), strict=True))
        for q, g in grouped
    }
