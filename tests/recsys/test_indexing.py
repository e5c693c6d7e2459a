"""recsys.pipelines.indexing: kind chosen by size, recall against exact search, id mapping,
filters, checksums verified on load, memory-mapped loading, atomic artifact folders."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from recsys.pipelines import indexing

DIM = 32


def unit_vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    emb = unit_vectors(4000, seed=0)
    ids = [f"sku-{i:05d}" for i in range(len(emb))]
    queries = unit_vectors(200, seed=1)
    _scores, exact = indexing.exact_search(emb, ids, queries, 10)
    return emb, ids, queries, exact


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    """One artifact of each kind; thresholds lowered so 4,000 vectors reach every kind."""
    emb, ids, _q, _e = data
    root = tmp_path_factory.mktemp("indexes")
    sizes = {"flat": {}, "hnsw": {"flat_max": 1000}, "ivfpq": {"flat_max": 10, "hnsw_max": 100}}
    return {
        name: indexing.build_index(emb, ids, str(root / name), **kw) for name, kw in sizes.items()
    }


def test_choose_kind_by_size():
    assert indexing.choose_kind(10) == "flat"
    assert indexing.choose_kind(indexing.FLAT_MAX - 1) == "flat"
    assert indexing.choose_kind(indexing.FLAT_MAX) == "hnsw"
    assert indexing.choose_kind(indexing.HNSW_MAX) == "ivfpq"


def test_kind_chosen_automatically(built):
    assert {name: info.kind for name, info in built.items()} == {
        "flat": "flat",
        "hnsw": "hnsw",
        "ivfpq": "ivfpq",
    }
    for info in built.values():
        assert (info.n, info.dim) == (4000, DIM)
        assert set(os.listdir(info.path)) == {"index.faiss", "ids.json", "meta.json"}


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_recall_against_exact(built, data, kind):
    _emb, _ids, queries, exact = data
    loaded = indexing.load_index(built[kind].path)
    _scores, found = loaded.search(queries, 10)
    assert indexing.recall_vs_exact(found, exact, 10) >= 0.95
    assert built[kind].recall_at_10 >= 0.95


def test_ivfpq_respects_training_rule_and_finds_neighbours(built, data):
    _emb, _ids, queries, exact = data
    info = built["ivfpq"]
    assert info.params["nlist"] <= 4000 // indexing.MIN_POINTS_PER_LIST
    assert DIM % info.params["pq_m"] == 0
    loaded = indexing.load_index(info.path)
    _scores, found = loaded.search(queries, 10)
    assert all(len(row) == 10 for row in found)
    assert indexing.recall_vs_exact(found, exact, 10) >= 0.3  # lossy codes, random data
    with pytest.raises(ValueError, match="at least 39"):
        indexing.build_index(unit_vectors(20, 3), list("abcdefghijklmnopqrst"), "x", kind="ivfpq")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_ids_mapped_and_scores_sorted(built, data, kind):
    emb, ids, _q, _e = data
    loaded = indexing.load_index(built[kind].path)
    scores, found = loaded.search(emb[[5, 1234, 3999]], 3)
    assert [row[0] for row in found] == [ids[5], ids[1234], ids[3999]]
    assert scores[:, 0] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    np.testing.assert_allclose(loaded.vector(ids[7]), emb[7], atol=1e-6)


def test_filter_by_allowed_ids(built, data):
    emb, ids, _q, _e = data
    allowed = ids[100:150]
    for kind in ("flat", "hnsw"):
        loaded = indexing.load_index(built[kind].path)
        _scores, found = loaded.search(emb[:3], 5, allowed_ids=[*allowed, "unknown"])
        assert all(pid in allowed for row in found for pid in row)
        assert all(len(row) == 5 for row in found)


def test_k_larger_than_n(tmp_path):
    emb = unit_vectors(5, seed=2)
    indexing.build_index(emb, ["a", "b", "c", "d", "e"], str(tmp_path / "small"))
    scores, found = indexing.load_index(str(tmp_path / "small")).search(emb[:1], 50)
    assert scores.shape == (1, 5)
    assert sorted(found[0]) == ["a", "b", "c", "d", "e"]


def test_exact_search_matches_brute_force(data):
    emb, ids, queries, exact = data
    brute = np.argsort(-(queries @ emb.T), axis=1)[:, :10]
    assert exact == [[ids[i] for i in row] for row in brute]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_mmap_load_gives_same_results(built, data, kind):
    _emb, _ids, queries, _e = data
    mapped = indexing.load_index(built[kind].path, mmap=True)
    plain = indexing.load_index(built[kind].path, mmap=False)
    assert mapped.mmapped and not plain.mmapped
    assert mapped.search(queries, 10)[1] == plain.search(queries, 10)[1]


def test_meta_records_checksum_and_params(built):
    info = built["hnsw"]
    with open(os.path.join(info.path, "meta.json")) as fh:
        meta = json.load(fh)
    assert meta["checksum"] == info.checksum
    assert meta["kind"] == "hnsw" and meta["n"] == 4000 and meta["dim"] == DIM
    assert meta["params"]["ef_search"] in indexing.EF_SEARCH_STEPS
    assert set(meta["files"]) == {"index.faiss", "ids.json"}
    assert indexing.load_index(info.path).index.hnsw.efSearch == meta["params"]["ef_search"]


@pytest.mark.parametrize("victim", ["index.faiss", "ids.json"])
def test_checksum_mismatch_refused(data, tmp_path, victim):
    emb, ids, _q, _e = data
    path = str(tmp_path / "idx")
    indexing.build_index(emb[:100], ids[:100], path, extra_meta={"model_version": 3})
    target = os.path.join(path, victim)
    with open(target, "rb") as fh:
        blob = bytearray(fh.read())
    blob[len(blob) // 2] ^= 0xFF
    with open(target, "wb") as fh:
        fh.write(blob)
    with pytest.raises(indexing.IndexChecksumError, match="checksum mismatch"):
        indexing.load_index(path)


def test_missing_file_refused(data, tmp_path):
    emb, ids, _q, _e = data
    path = tmp_path / "idx"
    indexing.build_index(emb[:50], ids[:50], str(path))
    os.remove(path / "ids.json")
    with pytest.raises(indexing.IndexChecksumError, match="missing"):
        indexing.load_index(str(path))


def test_atomic_folder_and_bad_input(data, tmp_path):
    emb, ids, _q, _e = data
    indexing.build_index(emb[:50], ids[:50], str(tmp_path / "a"))
    assert sorted(os.listdir(tmp_path)) == ["a"]  # no temporary folder left
    with pytest.raises(FileExistsError):
        indexing.build_index(emb[:50], ids[:50], str(tmp_path / "a"))
    with pytest.raises(ValueError, match="unique"):
        indexing.build_index(emb[:2], ["x", "x"], str(tmp_path / "b"))
    with pytest.raises(ValueError):
        indexing.build_index(emb[:3], ids[:2], str(tmp_path / "c"))
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_hnsw_below_target_falls_back_to_an_exact_flat_index(tmp_path):
    """Uniform random 384-d vectors are the hard case for a graph: at 3,000 of them efSearch
    stops at 32 (a bigger one would cost as much as a flat scan) with recall@10 well below
    0.95, so the build ships an exact flat index and says why, instead of a graph below target."""
    x = np.random.default_rng(5).normal(size=(3000, 384)).astype(np.float32)
    emb = x / np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(len(emb))]
    info = indexing.build_index(emb, ids, str(tmp_path / "idx"), flat_max=100)
    assert info.kind == "flat" and info.recall_at_10 == 1.0
    assert info.params["fallback_from"] == "hnsw"
    assert "built an exact flat index instead" in info.params["fallback_reason"]
    tried = info.params["hnsw_tried"]
    assert tried["ef_search"] == 32 and tried["recall_at_10"] < 0.95  # 3000 / (2·32) < 64
    assert tried["target_recall"] == 0.95
    with open(os.path.join(info.path, "meta.json")) as fh:
        meta = json.load(fh)
    assert meta["kind"] == "flat" and meta["recall_at_10_vs_exact"] == 1.0
    assert meta["params"]["fallback_reason"] == info.params["fallback_reason"]
    loaded = indexing.load_index(info.path)
    assert loaded.kind == "flat"
    queries = indexing._tuning_queries(emb, 50, 9)
    _s, exact = indexing.exact_search(emb, ids, queries, 10)
    assert indexing.recall_vs_exact(loaded.search(queries, 10)[1], exact, 10) == 1.0


def test_hnsw_that_reaches_its_target_is_kept_and_ivfpq_misses_are_recorded(built):
    hnsw = built["hnsw"]
    assert hnsw.kind == "hnsw" and "fallback_reason" not in hnsw.params
    assert hnsw.params["target_recall"] == 0.95 and hnsw.recall_at_10 >= 0.95
    assert hnsw.params["ef_search"] <= 4000 / (2 * hnsw.params["hnsw_m"])  # cheaper than flat
    ivfpq = built["ivfpq"]
    assert ivfpq.kind == "ivfpq"  # compressed on purpose: kept, the miss recorded
    assert ivfpq.params.get("below_target", False) == (ivfpq.recall_at_10 < 0.95)


def test_ef_search_steps_stop_where_a_flat_scan_is_as_cheap(monkeypatch, tmp_path):
    emb = unit_vectors(400, seed=4)
    tried = []
    real = indexing._set_search_param

    def spy(index, kind, value):
        tried.append(value)
        real(index, kind, value)

    monkeypatch.setattr(indexing, "_set_search_param", spy)
    info = indexing.build_index(
        emb, [str(i) for i in range(400)], str(tmp_path / "i"), kind="hnsw", target_recall=1.01
    )
    assert tried == [16]  # 400 / (2·32) < 32: only the first step is worth trying
    assert info.kind == "flat" and info.params["hnsw_tried"]["ef_search"] == 16


def test_an_affordable_hnsw_searches_with_at_least_the_ef_floor(tmp_path):
    """Tuning on perturbed catalogue vectors under-estimates real queries, so a graph large
    enough to afford it never searches with efSearch below EF_SEARCH_FLOOR (64)."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(50, 32))
    x = (centres[rng.integers(0, 50, 5000)] + 0.05 * rng.normal(size=(5000, 32))).astype(np.float32)
    emb = x / np.linalg.norm(x, axis=1, keepdims=True)
    info = indexing.build_index(
        emb, [f"p{i}" for i in range(5000)], str(tmp_path / "i"), flat_max=100
    )
    assert info.kind == "hnsw" and info.params["ef_search"] >= indexing.EF_SEARCH_FLOOR
    assert indexing.load_index(info.path).index.hnsw.efSearch == info.params["ef_search"]
    if "ef_search_tuned" in info.params:
        assert info.params["ef_search_tuned"] < indexing.EF_SEARCH_FLOOR
