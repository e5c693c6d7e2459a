"""recsys.pipelines.evaluation: metrics checked against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from recsys.pipelines.evaluation import evaluate, mrr_at_k, ndcg_at_k, recall_at_k


def test_ndcg_hand_computed():
    graded = {"a": 3, "b": 0, "c": 2, "d": 1}
    # DCG = (2^3-1)/log2(2) + 0 + (2^2-1)/log2(4) = 7 + 1.5; ideal 3,2,1 = 7 + 3/log2(3) + 1/2
    expected = 8.5 / (7 + 3 / math.log2(3) + 0.5)
    assert ndcg_at_k(["a", "b", "c"], graded, k=3) == pytest.approx(expected)
    assert ndcg_at_k(["a", "c", "d"], graded, k=3) == pytest.approx(1.0)


def test_ndcg_unjudged_count_as_zero_and_cutoff():
    graded = {"a": 2}
    assert ndcg_at_k(["x", "a"], graded, k=2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "a"], graded, k=1) == 0.0
    assert ndcg_at_k(["a"], {"a": 0, "b": 0}, k=10) == 0.0  # nothing relevant to find


def test_recall_hand_computed():
    ranked = ["a", "x", "b", "y"]
    assert recall_at_k(ranked, {"a", "b", "c"}, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"a", "b", "c"}, k=100) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, set(), k=10) == 0.0


def test_mrr_hand_computed():
    assert mrr_at_k(["x", "y", "a"], {"a"}, k=10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a"}, k=2) == 0.0
    assert mrr_at_k(["a", "b"], {"a", "b"}, k=10) == 1.0


def test_evaluate_averages_over_queries_with_relevant_products():
    judgments = pd.DataFrame(
        [
            ("gps watch", 1, 3),
            ("gps watch", 2, 1),
            ("usb cable", 3, 2),
            ("usb cable", 4, 2),
            ("ink", 5, 1),  # nothing graded >= 2: skipped
        ],
        columns=["query", "product_id", "grade"],
    )
    rankings = {"gps watch": ["9", "1", "2"], "usb cable": ["3", "8"], "ink": ["5"]}
    asked = []

    def search(queries, k):
        asked.append((list(queries), k))
        return [rankings[q] for q in queries]

    result = evaluate(search, judgments, relevant_min_grade=2, k_values=(1, 10))
    assert asked == [(["gps watch", "usb cable"], 10)]
    assert result["n_queries"] == 2
    assert result["skipped_queries"] == ["ink"]
    gps = result["per_query"]["gps watch"]
    assert gps["mrr@10"] == pytest.approx(0.5)
    assert gps["recall@1"] == 0.0 and gps["recall@10"] == 1.0
    ideal = 7 + 1 / math.log2(3)
    assert gps["ndcg@10"] == pytest.approx((7 / math.log2(3) + 1 / 2) / ideal)
    usb = result["per_query"]["usb cable"]
    assert usb["recall@10"] == pytest.approx(0.5)
    assert usb["ndcg@10"] == pytest.approx(3 / (3 + 3 / math.log2(3)))
    metrics = result["metrics"]
    assert metrics["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["recall@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["ndcg@10"] == pytest.approx((gps["ndcg@10"] + usb["ndcg@10"]) / 2)


def test_evaluate_checks_its_inputs():
    with pytest.raises(ValueError, match="columns"):
        evaluate(lambda q, k: [], pd.DataFrame({"query": ["a"]}))
    judgments = pd.DataFrame({"query": ["a"], "product_id": ["1"], "grade": [3]})
    with pytest.raises(ValueError, match="rankings"):
        evaluate(lambda q, k: [], judgments)
