"""The search engine over a real index artifact built with the tiny model: known nearest
neighbours, the three modes, filters and their errors, similar items, recommendations, the
query-embedding cache. No database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.pipelines import products as product_tables
from recsys.pipelines.engine import SearchEngine, UnknownProductError, UnknownUserError
from recsys.pipelines.lexical import LexicalIndex, hybrid_fusion, reciprocal_rank_fusion
from recsys.pipelines.products import FilterError
from recsys.pipelines.steps import product_texts
from tests.recsys.search_setup import PARAMS, build_artifact, demo_frames


@pytest.fixture(scope="module")
def frames():
    return demo_frames()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_model_path, tiny_encoder, frames):
    info = build_artifact(tmp_path_factory.mktemp("ix") / "index", tiny_model_path, *frames)
    return SearchEngine(info.path, tiny_encoder, default_mode="hybrid")


def test_artifact_holds_lexical_products_and_events_under_its_checksums(engine):
    files = engine.index.meta["files"]
    assert {"index.faiss", "ids.json", "products.parquet", "events.parquet"} <= set(files)
    assert any(name.startswith("lexical/") for name in files)
    assert list(engine.products["id"]) == engine.index.ids  # row i = vector i


def test_a_product_text_finds_that_product_first_in_dense_mode(engine, frames):
    catalog = engine.products.set_index("id")
    texts = product_texts(frames[0].assign(id=frames[0]["id"].astype(str)), PARAMS)
    for product_id in engine.index.ids[:5]:
        answer = engine.search(texts[product_id], 5, mode="dense")
        assert answer.hits[0].product_id == product_id
        assert answer.hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert answer.hits[0].title == catalog.loc[product_id, "title"]
    assert [h.rank for h in answer.hits] == [1, 2, 3, 4, 5]
    assert set(answer.timings) == {"encode_ms", "search_ms", "total_ms"}


def test_bm25_finds_an_exact_model_number(engine):
    title = engine.products["title"].iloc[7]
    model_number = next(word for word in title.split() if "-" in word)
    answer = engine.search(model_number, 3, mode="bm25")
    assert engine.products["id"].iloc[7] in [h.product_id for h in answer.hits]
    assert model_number.lower() in answer.hits[0].title.lower()
    assert answer.mode == "bm25" and answer.timings["encode_ms"] == 0


def test_unknown_words_match_nothing_lexically_but_dense_still_answers(engine):
    assert engine.search("zzzqqq", 5, mode="bm25").hits == []
    assert len(engine.search("zzzqqq", 5, mode="dense").hits) == 5


def test_hybrid_fuses_both_rankings_and_is_the_default_here(engine):
    answer = engine.search("wireless headphones", 10)
    assert answer.mode == "hybrid"
    dense = {h.product_id for h in engine.search("wireless headphones", 100, mode="dense").hits}
    lexical = {h.product_id for h in engine.search("wireless headphones", 100, mode="bm25").hits}
    assert {h.product_id for h in answer.hits} <= dense | lexical
    scores = [h.score for h in answer.hits]
    assert scores == sorted(scores, reverse=True)


def test_rrf_rewards_agreement_and_orders_ties_by_position():
    positions, scores = reciprocal_rank_fusion([[1, 2, 3], [2, 3, 9]], 4)
    assert positions == [2, 3, 1, 9]  # found by both lists beats first in one list
    assert scores[0] == pytest.approx(1 / 62 + 1 / 61)
    positions, scores = reciprocal_rank_fusion([[5, 4], [4, 5]], 2)
    assert positions == [4, 5] and scores[0] == scores[1]


def test_weighted_fusion_leans_to_the_heavier_list_and_half_is_plain_rrf():
    dense, lexical = [1, 2, 3], [3, 4, 5]
    plain = reciprocal_rank_fusion([dense, lexical], 5)
    assert hybrid_fusion(dense, lexical, 5, dense_weight=0.5) == plain  # same order and scores
    assert hybrid_fusion(dense, lexical, 5, dense_weight=0.2)[0][:3] == [3, 4, 5]
    assert hybrid_fusion(dense, lexical, 5, dense_weight=0.8)[0][:3] == [3, 1, 2]
    assert hybrid_fusion(dense, lexical, 5, dense_weight=0.0)[0] == lexical  # dense takes no part
    assert hybrid_fusion(dense, lexical, 5, dense_weight=1.0)[0] == dense
    with pytest.raises(ValueError, match="2 weights for 3 rankings"):
        reciprocal_rank_fusion([dense, lexical, dense], 3, weights=(1, 1))


def test_the_engine_fuses_with_the_weight_its_index_was_tuned_with(engine):
    query = "wireless headphones"
    dense = [h.product_id for h in engine.search(query, 100, mode="dense").hits]
    lexical = [h.product_id for h in engine.search(query, 100, mode="bm25").hits]
    assert dense[0] != lexical[0]  # the two lists disagree at the top, so the weight shows
    try:
        engine.dense_weight = 0.0
        assert engine.search(query, 1).hits[0].product_id == lexical[0]
        engine.dense_weight = 1.0
        assert engine.search(query, 1).hits[0].product_id == dense[0]
    finally:
        engine.dense_weight = 0.5


def test_filters_brand_price_and_attributes(engine):
    brand = engine.products["brand"].iloc[0]
    hits = engine.search("headphones", 20, mode="dense", filters={"brand": brand.upper()}).hits
    assert hits and {h.brand for h in hits} == {brand}
    hits = engine.search("cable", 20, mode="hybrid", filters={"price_min": "10", "price_max": "50"})
    assert hits.hits and all(10 <= h.price <= 50 for h in hits.hits)
    assert "category" in engine.attribute_names
    category = engine.products["attr:category"].iloc[0]
    hits = engine.search("black", 10, mode="bm25", filters={"category": category}).hits
    assert all(h.attributes["category"] == category for h in hits)
    two = f"{brand},{engine.products['brand'].iloc[1]}"
    assert len(engine.search("x", 100, mode="dense", filters={"brand": two}).hits) >= 2


def test_a_filter_matching_nothing_gives_no_result(engine):
    assert engine.search("cable", 10, mode="dense", filters={"brand": "no such brand"}).hits == []


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"colourway": "red"}, "Unknown filter(s): colourway. This index filters on: brand"),
        ({"price_min": "cheap"}, "price_min must be a number"),
        ({"price_max": "-1"}, "non-negative"),
        ({"price_min": "50", "price_max": "10"}, "price_min is above price_max"),
    ],
)
def test_bad_filters_are_refused_with_the_reason(engine, filters, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        engine.search("cable", 5, filters=filters)


def test_a_mode_the_index_cannot_serve_is_refused(engine):
    with pytest.raises(ValueError, match="not available"):
        engine.search("cable", 5, mode="sparse")


def test_similar_excludes_the_product_itself(engine):
    product_id = engine.index.ids[3]
    answer = engine.similar(product_id, 5)
    assert len(answer.hits) == 5 and product_id not in [h.product_id for h in answer.hits]
    vector = engine.index.index.reconstruct(3)
    expected = np.argsort(-(engine.index.index.reconstruct_n(0, len(engine.index)) @ vector))
    assert [h.product_id for h in answer.hits] == [engine.index.ids[p] for p in expected if p != 3][
        :5
    ]
    with pytest.raises(UnknownProductError):
        engine.similar("P-NOPE", 5)


def test_recommendations_exclude_purchases_and_follow_recent_events(engine):
    events = engine.events()
    buyers = events.loc[events["event"] == "purchase", "user_id"].unique()
    user = buyers[0]
    purchased = set(
        events.loc[(events.user_id == user) & (events.event == "purchase"), "product_id"]
    )
    answer = engine.recommend(user, 10)
    assert answer.label == "personalised" and len(answer.hits) == 10
    assert not purchased & {h.product_id for h in answer.hits}


def test_cold_start_users_get_popular_products_labelled_so(tmp_path, tiny_model_path, tiny_encoder):
    catalog, events = demo_frames(60, seed=9)
    gone = pd.DataFrame(
        [
            {
                "user_id": "NEWBIE",
                "product_id": "NOT-IN-CATALOG",
                "event": "view",
                "ts": 1_760_000_000,
            }
        ]
    )
    info = build_artifact(tmp_path / "ix", tiny_model_path, catalog, pd.concat([events, gone]))
    engine = SearchEngine(info.path, tiny_encoder)
    answer = engine.recommend("NEWBIE", 5)
    assert answer.mode == "popular" and "cold start" in answer.label
    weights = engine.events()["event"].map({"view": 1, "click": 2, "cart": 4, "purchase": 6})
    top = weights.groupby(engine.events()["product_id"]).sum().idxmax()
    assert answer.hits[0].product_id == top
    with pytest.raises(UnknownUserError):
        engine.recommend("NOBODY", 5)


def test_repeated_queries_are_encoded_once(engine):
    engine.search("usb charger cable", 3, mode="dense")
    before = engine._embeddings.hits
    engine.search("usb charger cable", 3, mode="dense")
    assert engine._embeddings.hits == before + 1


def test_product_table_finds_json_attributes_of_the_chorus_layout():
    catalog = pd.DataFrame(
        {
            "id": [str(i) for i in range(10)],
            "title": [f"Toner {i}" for i in range(10)],
            "brand": ["HP", "Canon"] * 5,
            "price": [10.0 + i for i in range(10)],
            "attributes": [f'{{"attr_t_type": "{t}", "attr_n_pages": 5}}' for t in "ab" * 5],
            "description": [f"long text {i}" for i in range(10)],
        }
    )
    table = product_tables.product_table(catalog, [str(i) for i in reversed(range(10))])
    assert table["id"].tolist()[0] == "9" and table["price"].tolist()[0] == 19.0
    assert product_tables.attribute_names(table) == ["type"]
    mask = product_tables.filter_mask(table, {"type": "A", "brand": "hp"})
    assert table.loc[mask, "id"].tolist() == ["8", "6", "4", "2", "0"]


def test_lexical_index_roundtrip(tmp_path):
    lexical = LexicalIndex.build(["red usb cable", "blue hdmi cable", "laptop bag"])
    names = lexical.save(str(tmp_path))
    assert names and all(name.startswith("lexical/") for name in names)
    loaded = LexicalIndex.load(str(tmp_path))
    positions, scores = loaded.search("cables", 5)  # stemmed: "cables" matches "cable"
    assert sorted(positions.tolist()) == [0, 1] and (scores > 0).all()
    positions, _ = loaded.search("cable", 5, allowed=np.array([False, True, True]))
    assert positions.tolist() == [1]


def _synthetic_engine(folder, encoder, *, n=3000, kind="hnsw", titles=None, prices=None):
    """An engine over random vectors (index kind forced) with a product table: brand B0..B99."""
    from recsys.pipelines.indexing import build_index

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(n)]
    catalog = pd.DataFrame(
        {
            "id": ids,
            "title": titles or ["" for _ in ids],
            "brand": [f"B{i % 100}" for i in range(n)],
            "price": prices or [1.0] * n,
        }
    )

    def companions(tmp):
        written = []
        lexical = LexicalIndex.build_if_possible(catalog["title"].tolist())
        if lexical is not None:
            written += lexical.save(tmp)
        written.append(product_tables.save_table(product_tables.product_table(catalog, ids), tmp))
        return written

    info = build_index(vectors, ids, str(folder), kind=kind, write_extra=companions, flat_max=10)
    return SearchEngine(info.path, encoder), vectors


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_a_selective_filter_still_finds_k_exact_neighbours_on_approximate_indexes(
    tmp_path, tiny_encoder, kind
):
    engine, vectors = _synthetic_engine(tmp_path / "ix", tiny_encoder, kind=kind)
    query = vectors[5]
    allowed = engine.filter_mask({"brand": "B7"})
    assert allowed.sum() == 30
    positions, _scores = engine._dense_positions(query, 10, allowed)
    assert len(positions) == 10
    assert all(engine.products["brand"].iloc[p] == "B7" for p in positions)
    if kind == "hnsw":  # exact among the allowed products
        candidates = np.flatnonzero(allowed)
        exact = candidates[np.argsort(-(vectors[candidates] @ query))[:10]]
        assert positions == exact.tolist()


def test_an_index_without_words_serves_dense_only_and_odd_prices_are_not_numbers(
    tmp_path, tiny_encoder
):
    prices = [float("inf"), float("nan")] + [2.5] * 98
    engine, _v = _synthetic_engine(
        tmp_path / "ix", tiny_encoder, n=100, kind="flat", titles=["the"] * 100, prices=prices
    )
    assert engine.lexical is None and engine.modes == ("dense",)
    answer = engine.search("anything", 100, mode="dense")
    by_id = {h.product_id: h for h in answer.hits}
    assert by_id["p0"].price is None and by_id["p1"].price is None and by_id["p2"].price == 2.5
    with pytest.raises(ValueError, match="not available"):
        engine.search("anything", 5, mode="bm25")


def test_an_unknown_filter_with_an_empty_value_is_still_refused(engine):
    with pytest.raises(FilterError, match="Unknown filter"):
        engine.search("cable", 5, filters={"colourway": ""})
    assert len(engine.search("cable", 5, filters={"brand": ""}).hits) == 5


def test_thousands_of_sparse_attribute_fields_do_not_become_columns():
    rows = 2000
    catalog = pd.DataFrame(
        {
            "id": [str(i) for i in range(rows)],
            "title": ["t"] * rows,
            "attributes": [
                f'{{"attr_t_field_{i}": "x", "attr_t_type": "{"ab"[i % 2]}"}}' for i in range(rows)
            ],
        }
    )
    table = product_tables.product_table(catalog, catalog["id"].tolist())
    assert product_tables.attribute_names(table) == ["type"]  # 2,000 one-row fields dropped
