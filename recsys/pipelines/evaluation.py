"""Offline ranking metrics over judged queries: nDCG@k, Recall@k, MRR@k.

Conventions (the usual TREC-style ones, stated because the numbers depend on them):

- nDCG uses graded gains ``2**grade - 1`` with a ``log2(rank + 1)`` discount; products without a
  judgment count as grade 0 (so they are treated as irrelevant, which underestimates a model
  that finds good unjudged products); the ideal ranking is the judged grades sorted.
- Recall and MRR use a binary notion: a product is relevant when its grade is at least
  ``relevant_min_grade`` (2 on the 0–3 Chorus scale = "relevant" or "exact").
- A query with no relevant product has no meaningful recall or MRR; ``evaluate`` skips such
  queries (and lists them) instead of counting them as zeros.

Pure Python/numpy; no Django, no ML libraries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

SearchFn = Callable[[list[str], int], list[list[str]]]


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain of gains listed in rank order (rank 1 first)."""
    return float(sum(g / math.log2(rank + 2) for rank, g in enumerate(gains)))


def ndcg_at_k(
    ranked_ids: Sequence[Hashable], graded: Mapping[Hashable, float], k: int = 10
) -> float:
    """nDCG@k of a ranking against graded judgments; 0.0 when no judged product has a positive
    grade (nothing to find). Unjudged products have gain 0."""
    ideal = sorted((g for g in graded.values() if g > 0), reverse=True)[:k]
    ideal_dcg = dcg(2.0**g - 1 for g in ideal)
    if ideal_dcg == 0:
        return 0.0
    gains = (2.0 ** graded.get(pid, 0) - 1 for pid in ranked_ids[:k])
    return dcg(gains) / ideal_dcg


def recall_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int = 100) -> float:
    """Fraction of the relevant products found in the top ``k``; 0.0 when none is relevant."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int = 10) -> float:
    """Reciprocal rank of the first relevant product within the top ``k``, else 0.0."""
    relevant = set(relevant)
    for rank, pid in enumerate(ranked[:k], start=1):
        if pid in relevant:
            return 1.0 / rank
    return 0.0


def _judged(judgments: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{query: {product_id (as str): grade}} from a (query, product_id, grade) frame; a product
    judged twice for a query keeps its highest grade."""
    missing = {"query", "product_id", "grade"} - set(judgments.columns)
    if missing:
        raise ValueError(f"judgments lack columns: {sorted(missing)}")
    frame = judgments.assign(
        query=judgments["query"].astype(str),
        product_id=judgments["product_id"].astype(str),
        grade=pd.to_numeric(judgments["grade"], errors="coerce").fillna(0.0),
    )
    best = frame.groupby(["query", "product_id"], sort=True)["grade"].max()
    out: dict[str, dict[str, float]] = {}
    for (query, pid), grade in best.items():
        out.setdefault(query, {})[pid] = float(grade)
    return out


def query_metrics(
    ranked: Sequence[str], graded: Mapping[str, float], relevant_min_grade: float, k_values
) -> dict[str, float]:
    """nDCG, Recall and MRR at every k of ``k_values`` for one query."""
    relevant = {pid for pid, g in graded.items() if g >= relevant_min_grade}
    row: dict[str, float] = {}
    for k in k_values:
        row[f"ndcg@{k}"] = ndcg_at_k(ranked, graded, k)
        row[f"recall@{k}"] = recall_at_k(ranked, relevant, k)
        row[f"mrr@{k}"] = mrr_at_k(ranked, relevant, k)
    return row


def mean_metrics(per_query: Mapping[str, Mapping[str, float]], names: Sequence[str]) -> dict:
    """Each metric of ``names`` averaged over the queries of ``per_query`` (0 when none)."""
    return {
        name: float(np.mean([row[name] for row in per_query.values()])) if per_query else 0.0
        for name in names
    }


def evaluate(
    search_fn: SearchFn,
    judgments: pd.DataFrame,
    *,
    relevant_min_grade: float = 2,
    k_values: Sequence[int] = (10, 100),
) -> dict:
    """Run ``search_fn(queries, max(k_values))`` once over every judged query and average the
    metrics over queries that have at least one relevant product.

    Returns {"metrics": {"ndcg@10": …, "recall@100": …, "mrr@10": …, …}, "n_queries": int,
    "skipped_queries": [queries without a relevant product], "per_query": {query: metrics}}.
    Product ids are compared as strings.
    """
    judged = _judged(judgments)
    queries = [q for q, g in judged.items() if any(v >= relevant_min_grade for v in g.values())]
    skipped = sorted(set(judged) - set(queries))
    results = search_fn(queries, max(k_values)) if queries else []
    if len(results) != len(queries):
        raise ValueError(f"search_fn returned {len(results)} rankings for {len(queries)} queries")
    per_query = {
        q: query_metrics([str(p) for p in ranked], judged[q], relevant_min_grade, k_values)
        for q, ranked in zip(queries, results, strict=True)
    }
    names = [f"{m}@{k}" for k in k_values for m in ("ndcg", "recall", "mrr")]
    return {
        "metrics": mean_metrics(per_query, names),
        "n_queries": len(queries),
        "skipped_queries": skipped,
        "per_query": per_query,
    }
