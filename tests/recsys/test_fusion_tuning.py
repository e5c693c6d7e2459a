"""Tuning the dense weight of hybrid fusion on judged queries (recsys.pipelines.fusion.
tune_fusion): the weight follows the list that finds the relevant products, ties go to plain
RRF, too few queries tune nothing, and the reported figures are cross-fitted. No database."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from recsys.pipelines.fusion import FUSION_WEIGHTS, MIN_TUNING_QUERIES, tune_fusion

IDS = [f"P{i}" for i in range(10_000)]
AT_RANK_2 = 1 / math.log2(3)  # nDCG@10 of a single relevant product found second


def _case(n_queries: int, right: str, *, first: int = 0):
    """Queries ``first``… each with one relevant product: first in the ``right`` list, absent
    from the other. The lists share no product, and the relevant product has a higher index
    position than the other list's first product, so a tie (weight 0.5) ranks it second."""
    dense, lexical, rows = {}, {}, []
    for n in range(first, first + n_queries):
        query, relevant = f"query {n}", 9000 + n
        other = list(range(200 * n, 200 * n + 100))
        good = [relevant, *range(200 * n + 100, 200 * n + 199)]
        dense[query], lexical[query] = (good, other) if right == "dense" else (other, good)
        rows.append({"query": query, "product_id": IDS[relevant], "grade": 3})
    return dense, lexical, pd.DataFrame(rows)


@pytest.mark.parametrize("right, expected", [("bm25", 0.4), ("dense", 0.6)])
def test_the_weight_follows_the_list_that_finds_the_relevant_products(right, expected):
    dense, lexical, judgments = _case(10, right)

    tuned = tune_fusion(dense, lexical, IDS, judgments, seed=3)

    # every weight on the right side of 0.5 puts the relevant product first; of those the
    # one nearest plain RRF wins the tie
    assert tuned["tuned"] is True
    assert tuned["dense_weight"] == expected
    assert tuned["result"]["metrics"]["ndcg@10"] == pytest.approx(1.0)
    assert tuned["result"]["n_queries"] == 10
    by_weight = tuned["ndcg@10_by_weight"]
    assert set(by_weight) == {str(w) for w in FUSION_WEIGHTS}
    assert by_weight["0.5"] == pytest.approx(AT_RANK_2, abs=1e-4)
    assert by_weight["0.9" if right == "bm25" else "0.1"] == 0.0  # out of the top 10


def test_too_few_queries_tune_nothing_and_fuse_with_plain_rrf():
    dense, lexical, judgments = _case(MIN_TUNING_QUERIES - 1, "bm25")

    tuned = tune_fusion(dense, lexical, IDS, judgments)

    assert tuned["tuned"] is False
    assert tuned["dense_weight"] == 0.5
    assert tuned["result"]["metrics"]["ndcg@10"] == pytest.approx(AT_RANK_2, abs=1e-4)
    assert tuned["result"]["n_queries"] == MIN_TUNING_QUERIES - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_half_is_scored_with_the_weight_tuned_on_the_other_half(seed):
    """8 queries need a dense weight above 0.5 and 8 below, so the best weight depends on
    which queries it is tuned on: a query's reported figure must come from the other half."""
    d1, l1, j1 = _case(8, "dense")
    d2, l2, j2 = _case(8, "bm25", first=8)
    judgments = pd.concat([j1, j2], ignore_index=True)
    needs_dense = set(d1)

    tuned = tune_fusion({**d1, **d2}, {**l1, **l2}, IDS, judgments, seed=seed)

    parts = tuned["cross_fit"]
    assert len(parts) == 2
    assert set(parts[0]["scored"]) == set(parts[1]["tuned_on"])
    assert set(parts[1]["scored"]) == set(parts[0]["tuned_on"])
    assert not set(parts[0]["scored"]) & set(parts[0]["tuned_on"])
    per_query = tuned["result"]["per_query"]
    assert set(per_query) == needs_dense | set(d2)
    for part in parts:
        tuned_on = part["tuned_on"]
        alone = tune_fusion(
            {q: d1.get(q) or d2[q] for q in tuned_on},
            {q: l1.get(q) or l2[q] for q in tuned_on},
            IDS,
            judgments[judgments["query"].isin(tuned_on)],
        )
        assert part["weight"] == alone["dense_weight"]  # chosen on the other half only
        for query in part["scored"]:
            wants_dense = query in needs_dense
            expected = (
                AT_RANK_2 if part["weight"] == 0.5 else float((part["weight"] > 0.5) == wants_dense)
            )
            assert per_query[query]["ndcg@10"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "fusion, shown",
    [
        ({"dense_weight": 0.3, "tuned": True}, "weighted RRF, dense weight 0.3"),
        ({"dense_weight": 0.5, "tuned": False}, "RRF <span"),
        (None, "BM25, RRF)"),
    ],
)
def test_the_metrics_table_names_the_fusion_an_index_serves(fusion, shown):
    from django.template.loader import render_to_string

    row = {"ndcg@10": 0.8, "recall@100": 0.9, "mrr@10": 0.7, "n_queries": 12}
    metrics = {"fine_tuned": row, "bm25": row, "hybrid": row, "default_mode": "hybrid"}
    if fusion is not None:
        metrics["fusion"] = fusion

    html = render_to_string("recsys/_metrics.html", {"metrics": metrics})

    assert shown in html
    assert ("untuned" in html) == (fusion is not None and not fusion["tuned"])
