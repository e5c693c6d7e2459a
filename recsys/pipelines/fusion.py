"""Hybrid fusion tuned per index version: the weight of the dense list in the weighted
reciprocal-rank fusion of dense and BM25 rankings (``lexical.hybrid_fusion``), chosen on judged
queries with figures that are cross-fitted, so that no query is scored with a weight chosen on
itself. No Django imports.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pandas as pd

# Dense weights tried: 0.1 … 0.9. The ends are not hybrid: they are the bm25 and dense modes,
# which steps.best_mode weighs on their own.
FUSION_WEIGHTS = tuple(round(w / 10, 1) for w in range(1, 10))
MIN_TUNING_QUERIES = 6  # fewer judged queries: plain RRF, nothing tuned


def cached_search(rankings: dict[str, list[str]]) -> Callable:
    """A batch search function answering from rankings computed once (query -> product ids)."""

    def run(queries: list[str], k: int) -> list[list[str]]:
        return [rankings[q][:k] for q in queries]

    return run


def _best_weight(per_weight: dict[float, dict], queries: list[str]) -> float:
    """The dense weight with the best mean nDCG@10 over ``queries``; ties go to the weight
    nearest plain RRF (0.5), then to the lower one."""

    def mean_ndcg(weight: float) -> float:
        return round(float(np.mean([per_weight[weight][q]["ndcg@10"] for q in queries])), 9)

    return max(FUSION_WEIGHTS, key=lambda w: (mean_ndcg(w), -abs(w - 0.5), -w))


def tune_fusion(
    dense: dict[str, list[int]],
    lexical: dict[str, list[int]],
    ids: list[str],
    judgments: pd.DataFrame,
    *,
    seed: int = 0,
    k: int = 100,
) -> dict:
    """Tune the dense weight of hybrid fusion on judged queries, honestly.

    ``dense`` and ``lexical`` map each judged query to its ranked index positions (depth >= k).
    Every weight of FUSION_WEIGHTS is scored per query. The weight served is the best over all
    queries; the metrics reported for it are cross-fitted, so that no query is scored with a
    weight chosen on itself: the queries are dealt (seeded) into two halves, each half is scored
    with the weight best on the other half. With fewer than MIN_TUNING_QUERIES queries nothing
    is tuned: plain RRF (weight 0.5), scored as is.

    Returns {"dense_weight", "tuned", "result" (evaluate()'s shape: metrics, n_queries,
    per_query), "ndcg@10_by_weight", and when tuned "cross_fit" (per half: the queries the
    weight was tuned on, the queries scored with it, the weight)}."""
    from recsys.pipelines.evaluation import evaluate, mean_metrics
    from recsys.pipelines.lexical import DENSE_WEIGHT_DEFAULT, hybrid_fusion

    def fused(weight: float) -> dict[str, list[str]]:
        return {
            q: [ids[p] for p in hybrid_fusion(dense[q], lexical[q], k, dense_weight=weight)[0]]
            for q in dense
        }

    results = {w: evaluate(cached_search(fused(w)), judgments) for w in FUSION_WEIGHTS}
    per_weight = {w: r["per_query"] for w, r in results.items()}
    queries = sorted(per_weight[DENSE_WEIGHT_DEFAULT])
    by_weight = {str(w): round(float(r["metrics"]["ndcg@10"]), 4) for w, r in results.items()}
    if len(queries) < MIN_TUNING_QUERIES:
        return {
            "dense_weight": DENSE_WEIGHT_DEFAULT,
            "tuned": False,
            "result": results[DENSE_WEIGHT_DEFAULT],
            "ndcg@10_by_weight": by_weight,
        }
    shuffled = queries[:]
    random.Random(seed).shuffle(shuffled)
    halves = (shuffled[0::2], shuffled[1::2])
    per_query, cross_fit = {}, []
    for tune_on, score_on in ((halves[0], halves[1]), (halves[1], halves[0])):
        weight = _best_weight(per_weight, tune_on)
        per_query.update({q: per_weight[weight][q] for q in score_on})
        cross_fit.append(
            {"tuned_on": sorted(tune_on), "scored": sorted(score_on), "weight": weight}
        )
    metrics = mean_metrics(per_query, list(results[DENSE_WEIGHT_DEFAULT]["metrics"]))
    return {
        "dense_weight": _best_weight(per_weight, queries),
        "tuned": True,
        "result": {"metrics": metrics, "n_queries": len(per_query), "per_query": per_query},
        "ndcg@10_by_weight": by_weight,
        "cross_fit": cross_fit,
    }


def rankings(
    index, lexical, encoder, params: dict, queries: list[str], depth: int = 100
) -> tuple[dict[str, list[int]], dict[str, list[int]] | None]:
    """(dense, BM25) ranked index positions of each query, ``depth`` deep, computed once
    (BM25 None when the index has no lexical part)."""
    from recsys.pipelines.encoding import encode

    dense_ids = (
        index.search(encode(encoder, queries, max_length=params["max_length"]), depth)[1]
        if queries
        else []
    )
    dense = {
        q: [index.position(pid) for pid in row] for q, row in zip(queries, dense_ids, strict=True)
    }
    if lexical is None:
        return dense, None
    return dense, {q: lexical.search(q, depth)[0].tolist() for q in queries}
