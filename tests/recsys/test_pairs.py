"""Training pairs (recsys.pipelines.pairs): pairs from labels and events, product text, the
held-out split by query with all graded judgments, determinism and the config hash. No DB."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys.pipelines.pairs import (
    HELDOUT_COLUMNS,
    PAIR_COLUMNS,
    PairsConfig,
    build_pairs,
    product_texts,
    qrels,
)

CHORUS = Path("/work/shared/data/chorus-icecat")


def catalog(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "title": [f"Product {i}" for i in range(n)],
            "brand": ["Acme" if i % 2 else None for i in range(n)],
            "description": [("word " * 100 if i == 0 else f"about {i}") for i in range(n)],
        }
    )


def labels(queries: int = 20) -> pd.DataFrame:
    """Per query: products graded 3, 2, 1 and 0."""
    rows = []
    for q in range(queries):
        for grade in (3, 2, 1, 0):
            rows.append({"query": f"query {q}", "product_id": f"p{q + grade}", "grade": grade})
    return pd.DataFrame(rows)


def queries_of(frame: pd.DataFrame) -> set[str]:
    return set(frame["query"])


# --- config -------------------------------------------------------------------------------------


def test_config_hash_is_stable_and_sensitive():
    cfg = PairsConfig()
    assert cfg.config_hash() == PairsConfig().config_hash() and len(cfg.config_hash()) == 64
    assert hash(cfg) == hash(PairsConfig())
    assert PairsConfig(seed=14).config_hash() != cfg.config_hash()
    assert PairsConfig(held_out_fraction=0.3).config_hash() != cfg.config_hash()
    weights = {"click": 1, "cart": 2, "purchase": 5}
    assert PairsConfig(event_weights=weights).config_hash() != cfg.config_hash()
    reordered = {"purchase": 3, "cart": 2, "click": 1}
    assert PairsConfig(event_weights=reordered).config_hash() == cfg.config_hash()
    custom = PairsConfig(event_weights=weights)
    weights["click"] = 99  # the config keeps its own copy
    assert custom.event_weights["click"] == 1


def test_config_rejects_bad_fraction():
    with pytest.raises(ValueError):
        PairsConfig(held_out_fraction=1.0)


# --- product text and pairs ---------------------------------------------------------------------


def test_product_text_is_title_brand_description_truncated():
    texts = product_texts(catalog(), PairsConfig(max_description_chars=20))
    assert texts["p1"] == "Product 1 | Acme | about 1"
    assert texts["p2"] == "Product 2 | about 2"  # no brand
    assert texts["p0"] == "Product 0 | " + ("word " * 4).strip()
    html = pd.DataFrame({"id": ["h"], "title": ["A &amp; B"], "description": ["<b>x</b>"]})
    assert product_texts(html, PairsConfig())["h"] == "A & B | x"


def test_label_pairs_use_min_grade_and_skip_unknown_products():
    frame = pd.DataFrame(
        {
            "query": ["Lamp", "lamp", "lamp", "lamp", "desk"],
            "product_id": ["p1", "p2", "p3", "nope", "p1"],
            "grade": [3, 2, 1, 3, 2],
        }
    )
    train, heldout, report = build_pairs(catalog(), frame, None, PairsConfig(held_out_fraction=0))
    assert list(train.columns) == PAIR_COLUMNS and heldout.empty
    assert train[["query", "product_id", "weight"]].values.tolist() == [
        ["desk", "p1", 2.0],
        ["lamp", "p1", 3.0],
        ["lamp", "p2", 2.0],
    ]
    assert set(train["source"]) == {"labels"}
    assert train["product_text"][1] == "Product 1 | Acme | about 1"
    assert report["unknown_product_labels"] == 1 and report["label_pairs"] == 3


def test_event_pairs_sum_weights_and_need_a_query():
    events = pd.DataFrame(
        {
            "user_id": ["u"] * 9,
            "product_id": ["p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "zz"],
            "event": [
                "click",
                "cart",
                "click",
                "click",
                "purchase",
                "view",
                "click",
                "cart",
                "cart",
            ],
            "ts": range(9),
            "query": ["q a", "q a", "q a", "Q  A", "q b", "q b", "q b", "", "q a"],
        }
    )
    train, _, report = build_pairs(catalog(), None, events, PairsConfig(held_out_fraction=0))
    got = train[["query", "product_id", "weight"]].values.tolist()
    assert got == [["q a", "p2", 2.0], ["q a", "p3", 2.0], ["q b", "p4", 3.0]]
    assert set(train["source"]) == {"events"}
    assert report["event_pairs"] == 3 and report["unknown_product_events"] == 1
    no_query = events.drop(columns="query")
    train, _, _ = build_pairs(catalog(), None, no_query, PairsConfig())
    assert train.empty and list(train.columns) == PAIR_COLUMNS


def test_labels_win_over_events_for_the_same_pair():
    frame = pd.DataFrame({"query": ["lamp"], "product_id": ["p1"], "grade": [3]})
    events = pd.DataFrame(
        {
            "user_id": ["u"],
            "product_id": ["p1"],
            "event": ["purchase"],
            "ts": [0],
            "query": ["lamp"],
        }
    )
    train, _, report = build_pairs(catalog(), frame, events, PairsConfig(held_out_fraction=0))
    assert train["source"].tolist() == ["labels"] and report["overlap_labels_events"] == 1


# --- held-out split -----------------------------------------------------------------------------


def test_split_is_by_query_with_all_graded_judgments():
    cfg = PairsConfig(held_out_fraction=0.2)
    train, heldout, report = build_pairs(catalog(), labels(20), None, cfg)
    held = queries_of(heldout)
    assert len(held) == 4 == report["heldout_query_count"]
    assert held.isdisjoint(queries_of(train))
    assert queries_of(train) | held == {f"query {q}" for q in range(20)}
    assert list(heldout.columns) == HELDOUT_COLUMNS
    assert sorted(heldout["grade"].tolist()) == sorted([3, 2, 1, 0] * 4)  # grades 0/1 kept
    assert heldout["relevant"].tolist() == heldout["grade"].ge(2).tolist()
    assert report["heldout_judgments"] == 16 and report["heldout_pairs"] == 8
    assert sorted(report["heldout_queries"]) == sorted(held)
    assert train["weight"].ge(2).all() and len(train) == 32


def test_split_is_deterministic_and_independent_of_row_order():
    cfg = PairsConfig()
    _, heldout, report = build_pairs(catalog(), labels(20), None, cfg)
    shuffled = labels(20).sample(frac=1.0, random_state=1)
    _, again, report2 = build_pairs(catalog().iloc[::-1], shuffled, None, cfg)
    pd.testing.assert_frame_equal(heldout, again)
    assert report["heldout_queries_hash"] == report2["heldout_queries_hash"]
    seeds = {
        build_pairs(catalog(), labels(20), None, PairsConfig(seed=s))[2]["heldout_queries_hash"]
        for s in range(5)
    }
    assert len(seeds) > 1  # the seed changes which queries are held out


def test_held_out_queries_are_chosen_among_queries_with_a_relevant_judgment():
    frame = pd.concat(
        [
            labels(5),
            pd.DataFrame(
                {"query": ["only zeros"] * 2, "product_id": ["p1", "p2"], "grade": [0, 1]}
            ),
        ]
    )
    for seed in range(10):
        _, heldout, report = build_pairs(catalog(), frame, None, PairsConfig(seed=seed))
        assert "only zeros" not in queries_of(heldout)
        assert report["queries_eligible"] == 5


def test_events_of_held_out_queries_stay_out_of_training():
    events = pd.DataFrame(
        {
            "user_id": ["u"] * 20,
            "product_id": [f"p{i + 30}" for i in range(20)],
            "event": ["purchase"] * 20,
            "ts": range(20),
            "query": [f"query {i}" for i in range(20)],
        }
    )
    train, heldout, _ = build_pairs(catalog(60), labels(20), events, PairsConfig())
    held = queries_of(heldout)
    assert held.isdisjoint(queries_of(train))
    event_rows = heldout.loc[heldout["source"].eq("events")]
    assert len(event_rows) == 4 and event_rows["grade"].isna().all()
    assert event_rows["gain"].eq(2).all() and event_rows["relevant"].all()


def test_events_only_split_and_tiny_inputs():
    events = pd.DataFrame(
        {
            "user_id": ["u"] * 10,
            "product_id": [f"p{i}" for i in range(10)],
            "event": ["cart"] * 10,
            "ts": range(10),
            "query": [f"q{i}" for i in range(10)],
        }
    )
    train, heldout, report = build_pairs(catalog(), None, events, PairsConfig())
    assert len(queries_of(heldout)) == 2 and queries_of(heldout).isdisjoint(queries_of(train))
    one = labels(1)
    train, heldout, _ = build_pairs(catalog(), one, None, PairsConfig())
    assert heldout.empty and len(train) == 2  # a single query is never held out
    train, heldout, report = build_pairs(catalog(), None, None, PairsConfig())
    assert train.empty and heldout.empty and report["pairs_total"] == 0
    json.dumps(report)


def test_qrels_gives_graded_relevance_per_held_out_query():
    _, heldout, _ = build_pairs(catalog(), labels(20), None, PairsConfig())
    judged = qrels(heldout)
    assert set(judged) == queries_of(heldout)
    for query, grades in judged.items():
        q = int(query.split()[1])
        assert grades == {f"p{q + 3}": 3, f"p{q + 2}": 2, f"p{q + 1}": 1, f"p{q}": 0}


# --- demo and real data -------------------------------------------------------------------------


def test_demo_labels_make_pairs():
    from data.demo_generator import catalog_rows, queries_and_labels

    rows = catalog_rows()
    train, heldout, report = build_pairs(
        pd.DataFrame(rows), pd.DataFrame(queries_and_labels(rows)), None, PairsConfig()
    )
    assert len(train) > 100 and not heldout.empty
    assert queries_of(train).isdisjoint(queries_of(heldout))
    assert report["heldout_query_count"] == round(0.2 * report["queries_eligible"])
    json.dumps(report)


@pytest.mark.skipif(not (CHORUS / "judgments.csv").exists(), reason="Chorus data set not present")
def test_real_chorus_judgments():
    from datafiles import iter_frames, read_chorus_products

    products = pd.concat(
        [pd.concat(list(read_chorus_products(CHORUS / f"{i}.json.zip"))) for i in range(1, 5)],
        ignore_index=True,
    )
    judgments = pd.concat(list(iter_frames(CHORUS / "judgments.csv", fmt="chorus-judgments")))
    train, heldout, report = build_pairs(products, judgments, None, PairsConfig())
    assert report["unknown_product_labels"] == 0
    assert report["queries_eligible"] > 50
    assert report["heldout_query_count"] == round(0.2 * report["queries_eligible"])
    assert queries_of(train).isdisjoint(queries_of(heldout))
    assert set(heldout["grade"].dropna()) == {0, 1, 2, 3}
    judged = qrels(heldout)
    assert all(any(g >= 2 for g in grades.values()) for grades in judged.values())
