"""Vector indexes over L2-normalised embeddings (cosine = inner product), with faiss-cpu.

The index type follows the catalogue size (``kind="auto"``):

- ``flat`` (IndexFlatIP, exact) below ``FLAT_MAX`` = 200,000 vectors: at 384 dims a brute-force
  scan of 200k vectors takes a few milliseconds per query on this machine, and exact costs no
  recall;
- ``hnsw`` (IndexHNSWFlat, inner product) from there to ``HNSW_MAX`` = 5,000,000 vectors: a graph
  search whose ``efSearch`` is tuned at build time until recall@10 against exact search reaches
  ``target_recall`` (0.95) on a sample of perturbed catalogue vectors;
- ``ivfpq`` (IndexIVFPQ) above that, or on request: compressed codes for very large catalogues.
  Training needs at least 39 vectors per inverted list (faiss' rule of thumb), so
  ``nlist <= n // 39``; ``nprobe`` is tuned like ``efSearch``, up to ``nlist``.

An artifact folder holds ``index.faiss``, ``ids.json`` (position → product id) and ``meta.json``
(kind, n, dim, build parameters, measured recall, per-file sha256 and an overall checksum). It is
written under a temporary name and renamed when complete, so a killed build never leaves a
half-written folder. ``load_index`` verifies the checksums and memory-maps the index where faiss
allows it. No Django imports; faiss is imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.hashing import sha256_file

FLAT_MAX = 200_000
HNSW_MAX = 5_000_000
MIN_POINTS_PER_LIST = 39
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
META_FILE = "meta.json"
# efSearch values tried in turn by the build (see ``_tune``). A step is tried only while the
# graph search it implies (about efSearch x 2·hnsw_m distances per query) stays below a flat
# scan of the n vectors: past that a flat index is exact and no slower, so it is built instead.
EF_SEARCH_FLOOR = 64  # where affordable: see build_index
EF_SEARCH_STEPS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class IndexChecksumError(Exception):
    """An index artifact's files do not match the checksums recorded when it was built."""


@dataclass
class IndexInfo:
    """What ``build_index`` wrote: the folder, the chosen kind and its measured quality."""

    path: str
    kind: str
    n: int
    dim: int
    checksum: str
    params: dict[str, Any] = field(default_factory=dict)
    recall_at_10: float | None = None
    seconds: float = 0.0


def choose_kind(n: int, *, flat_max: int = FLAT_MAX, hnsw_max: int = HNSW_MAX) -> str:
    """Index kind for ``n`` vectors: flat below ``flat_max``, HNSW below ``hnsw_max``, else
    IVF-PQ (see the module docstring for why)."""
    if n < flat_max:
        return "flat"
    if n < hnsw_max:
        return "hnsw"
    return "ivfpq"


def _overall_checksum(files: dict[str, str]) -> str:
    """One checksum over the per-file digests (sorted by name)."""
    text = "".join(f"{name}\0{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def exact_search(
    embeddings: np.ndarray, ids: Sequence[str], queries: np.ndarray, k: int
) -> tuple[np.ndarray, list[list[str]]]:
    """Exact top-``k`` by inner product in numpy (chunked over queries to bound memory):
    the reference for recall measurements. Returns (scores (nq, k), ids per query)."""
    k = min(k, len(ids))
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    scores = np.empty((len(queries), k), dtype=np.float32)
    out_ids: list[list[str]] = []
    step = max(1, (1 << 24) // max(1, len(ids)))  # ≤ 16M similarities (64 MiB) at a time
    for start in range(0, len(queries), step):
        sims = queries[start : start + step] @ embeddings.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_s = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        scores[start : start + len(top)] = np.take_along_axis(top_s, order, axis=1)
        out_ids += [[ids[i] for i in row] for row in top]
    return scores, out_ids


def recall_vs_exact(approx: list[list[str]], exact: list[list[str]], k: int = 10) -> float:
    """Mean fraction of the exact top-``k`` found in the approximate top-``k``."""
    if not exact:
        return 1.0
    hits = [
        len(set(a[:k]) & set(e[:k])) / max(1, len(e[:k]))
        for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits))


def _tuning_queries(emb: np.ndarray, n_queries: int, seed: int) -> np.ndarray:
    """Catalogue vectors plus Gaussian noise of about their own norm, re-normalised: queries
    about 45° away from the data, harder than the data points themselves."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(emb), size=min(n_queries, len(emb)), replace=False)
    noisy = emb[pick] + rng.normal(0, 1 / np.sqrt(emb.shape[1]), (len(pick), emb.shape[1]))
    noisy = noisy.astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True).clip(1e-12)


def _tune(
    index: Any, kind: str, emb: np.ndarray, queries: np.ndarray, target: float, params: dict
) -> tuple:
    """Raise efSearch (HNSW) or nprobe (IVF-PQ) step by step until recall@10 against exact
    search reaches ``target``; returns (parameter name, value, recall), the last value tried
    when the target is not reached. Flat is exact.

    HNSW steps stop where the search would cost as much as a flat scan (efSearch x 2·hnsw_m
    distances per query >= n; the first step is always tried): ``build_index`` then builds a
    flat index instead of shipping a graph below its target."""
    import faiss

    positions = [str(i) for i in range(len(emb))]
    k = min(10, len(emb))
    _s, exact = exact_search(emb, positions, queries, k)
    if kind == "hnsw":
        budget = len(emb) / (2 * params["hnsw_m"])
        name = "ef_search"
        steps = [ef for ef in EF_SEARCH_STEPS if ef <= budget] or list(EF_SEARCH_STEPS[:1])
    else:
        ivf = faiss.extract_index_ivf(index)
        name, steps = "nprobe", sorted({min(2**i, ivf.nlist) for i in range(17)})
    recall = 0.0
    for value in steps:
        _set_search_param(index, kind, value)
        _d, found = index.search(queries, k)
        recall = recall_vs_exact([[str(i) for i in row] for row in found], exact, k)
        if recall >= target:
            break
    return name, value, recall


def _set_search_param(index: Any, kind: str, value: int) -> None:
    """Set efSearch (HNSW) or nprobe (IVF) on a built or loaded index."""
    import faiss

    if kind == "hnsw":
        index.hnsw.efSearch = int(value)
    elif kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = int(value)


def _ivfpq_shape(n: int, dim: int, nlist: int | None, pq_m: int | None) -> tuple[int, int, int]:
    """(nlist, m, nbits) for IVF-PQ: nlist ~ 4·sqrt(n) capped by n // 39; m the largest divisor
    of dim giving ≥ 4 dims per sub-quantiser (at most 64); nbits 8 when there are ≥ 39·256
    training points, fewer otherwise so that each sub-quantiser is trainable."""
    if n < MIN_POINTS_PER_LIST:
        raise ValueError(f"IVF-PQ needs at least {MIN_POINTS_PER_LIST} vectors, got {n}")
    nlist = nlist or int(4 * np.sqrt(n))
    nlist = max(1, min(nlist, n // MIN_POINTS_PER_LIST))
    if pq_m is None:
        pq_m = max(m for m in range(1, min(64, dim // 4) + 1) if dim % m == 0) if dim >= 4 else 1
    if dim % pq_m:
        raise ValueError(f"pq_m={pq_m} must divide dim={dim}")
    nbits = int(min(8, max(1, np.floor(np.log2(n / MIN_POINTS_PER_LIST)))))
    return nlist, pq_m, nbits


def _make_index(kind: str, emb: np.ndarray, opts: dict[str, Any]) -> tuple[Any, dict]:
    """Create, train and fill a faiss index of ``kind``; returns (index, build params)."""
    import faiss

    dim = emb.shape[1]
    if kind == "flat":
        index, params = faiss.IndexFlatIP(dim), {}
    elif kind == "hnsw":
        m, ef_c = opts.get("hnsw_m", 32), opts.get("ef_construction", 200)
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_c
        params = {"hnsw_m": m, "ef_construction": ef_c}
    elif kind == "ivfpq":
        nlist, pq_m, nbits = _ivfpq_shape(len(emb), dim, opts.get("nlist"), opts.get("pq_m"))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = opts.get("seed", 0)
        index.train(emb)  # faiss' Python wrapper keeps `quantizer` alive with the index
        params = {"nlist": nlist, "pq_m": pq_m, "nbits": nbits}
    else:
        raise ValueError(f"unknown index kind {kind!r} (flat, hnsw, ivfpq or auto)")
    index.add(emb)
    return index, params


def build_index(
    embeddings: np.ndarray,
    ids: Sequence[str],
    out_dir: str,
    *,
    kind: str = "auto",
    target_recall: float = 0.95,
    flat_max: int = FLAT_MAX,
    hnsw_max: int = HNSW_MAX,
    tune_queries: np.ndarray | None = None,
    extra_meta: dict[str, Any] | None = None,
    write_extra: Callable[[str], Iterable[str]] | None = None,
    **opts: Any,
) -> IndexInfo:
    """Build an index over ``embeddings`` (rows L2-normalised, row i = product ``ids[i]``) and
    write it to ``out_dir`` (must not exist yet, or be empty) through a temporary folder.

    ``opts``: hnsw_m, ef_construction, nlist, pq_m, seed. ``tune_queries`` (default: 500
    perturbed catalogue vectors) drive the efSearch/nprobe tuning; ``extra_meta`` (model and
    catalogue versions, …) is stored in meta.json. ``write_extra(folder)`` writes companion
    files (the product table, the lexical index) into the temporary folder and returns their
    names: they are checksummed and verified like the index itself.
    """
    start = time.monotonic()
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    ids = [str(i) for i in ids]
    if emb.ndim != 2 or len(emb) != len(ids) or len(ids) == 0:
        raise ValueError(f"need a non-empty (n, dim) array and n ids; got {emb.shape}, {len(ids)}")
    if len(set(ids)) != len(ids):
        raise ValueError("product ids must be unique")
    kind = choose_kind(len(emb), flat_max=flat_max, hnsw_max=hnsw_max) if kind == "auto" else kind
    index, params = _make_index(kind, emb, opts)
    recall = 1.0
    if kind != "flat":
        queries = tune_queries if tune_queries is not None else _tuning_queries(emb, 500, 0)
        name, value, recall = _tune(
            index, kind, emb, np.asarray(queries, np.float32), target_recall, params
        )
        params |= {name: value, "target_recall": target_recall}
        if recall < target_recall and kind == "hnsw":
            # Never ship a graph below its recall target: an exact flat index instead.
            tried = {**params, "recall_at_10": round(recall, 4)}
            del index
            index, _flat_params = _make_index("flat", emb, opts)
            params = {
                "fallback_from": "hnsw",
                "fallback_reason": (
                    f"HNSW reached recall@10 {recall:.3f} < target {target_recall:.2f} at "
                    f"efSearch {value} (the largest step worth trying for {len(ids)} "
                    "vectors); built an exact flat index instead"
                ),
                "hnsw_tried": tried,
            }
            kind, recall = "flat", 1.0
        elif recall < target_recall:
            # IVF-PQ's codes are lossy by design and it is chosen where flat would not fit:
            # kept, but the miss is recorded next to the measured recall.
            params["below_target"] = True
        elif kind == "hnsw" and value < EF_SEARCH_FLOOR <= len(emb) / (2 * params["hnsw_m"]):
            # The tuning queries (perturbed catalogue vectors) are easier than real queries: on
            # 200k Chorus-based products efSearch 16 passed them but gave recall@10 0.90 on real
            # queries, 64 gave 0.97 for 0.13 ms more (docs/benchmarks-search.md).
            params |= {"ef_search": EF_SEARCH_FLOOR, "ef_search_tuned": value}
            _set_search_param(index, kind, EF_SEARCH_FLOOR)
    meta = {"kind": kind, "n": len(ids), "dim": int(emb.shape[1]), "params": params}
    meta |= {"recall_at_10_vs_exact": recall, "extra": extra_meta or {}}
    checksum = _write_artifact(index, ids, meta, out_dir, write_extra)
    return IndexInfo(
        path=os.path.abspath(out_dir),
        kind=kind,
        n=len(ids),
        dim=int(emb.shape[1]),
        checksum=checksum,
        params=params,
        recall_at_10=recall,
        seconds=time.monotonic() - start,
    )


def _write_artifact(
    index: Any,
    ids: list[str],
    meta: dict,
    out_dir: str,
    write_extra: Callable[[str], Iterable[str]] | None = None,
) -> str:
    """Write index, id map, companion files and meta (with checksums) to a temporary folder,
    then rename it."""
    import faiss

    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"index folder already exists: {out_dir}")
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        faiss.write_index(index, os.path.join(tmp, INDEX_FILE))
        with open(os.path.join(tmp, IDS_FILE), "w", encoding="utf-8") as fh:
            json.dump(ids, fh)
        names = [INDEX_FILE, IDS_FILE, *(write_extra(tmp) if write_extra else ())]
        files = {name: sha256_file(os.path.join(tmp, name)) for name in names}
        meta = {**meta, "files": files, "checksum": _overall_checksum(files)}
        meta["faiss_version"] = faiss.__version__
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta["checksum"]


class LoadedIndex:
    """A loaded index artifact: ``search`` maps faiss positions back to product ids.

    Searching is read-only and safe from several threads at once (faiss releases the GIL).
    """

    def __init__(self, index: Any, ids: list[str], meta: dict, path: str, mmapped: bool):
        self.index = index
        self.ids = ids
        self.meta = meta
        self.path = path
        self.mmapped = mmapped
        self.kind: str = meta["kind"]
        self.checksum: str = meta["checksum"]
        self._position = {pid: i for i, pid in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, product_id: str) -> int:
        """Row of a product in this index (KeyError for an unknown id)."""
        return self._position[product_id]

    def search(
        self,
        query_vecs: np.ndarray,
        k: int,
        *,
        allowed_ids: Iterable[str] | None = None,
        allowed_positions: np.ndarray | None = None,
        exhaustive: bool = False,
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` products per query row: (scores (nq, k'), ids per query) with
        k' = min(k, n). Approximate indexes may return fewer than k' hits for a query: its id
        list is then shorter and the missing scores are -inf. ``allowed_ids`` restricts the
        search to those products (a filter), inside faiss; ``allowed_positions`` does the same
        with index rows. ``exhaustive`` raises the visit budget of a filtered approximate search
        (efSearch to at least 1024, nprobe to every list) so that a selective filter still
        finds k products."""
        queries = np.ascontiguousarray(np.atleast_2d(query_vecs), dtype=np.float32)
        k = max(1, min(int(k), len(self.ids)))
        if allowed_ids is not None:
            allowed_positions = np.array(
                sorted({self._position[i] for i in allowed_ids if i in self._position}), np.int64
            )
        params = (
            self._selector_params(allowed_positions, exhaustive)
            if allowed_positions is not None
            else None
        )
        scores, positions = self.index.search(queries, k, params=params)
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        ids = [[self.ids[p] for p in row if p >= 0] for row in positions]
        return scores, ids

    def _selector_params(self, positions: np.ndarray, exhaustive: bool = False) -> Any:
        """faiss SearchParameters restricting results to the rows ``positions``, carrying over
        this index's efSearch / nprobe."""
        import faiss

        positions = np.ascontiguousarray(positions, dtype=np.int64)
        selector = faiss.IDSelectorBatch(positions)
        if self.kind == "hnsw":
            ef = self.index.hnsw.efSearch
            params = faiss.SearchParametersHNSW(
                sel=selector, efSearch=max(ef, 1024) if exhaustive else ef
            )
        elif self.kind == "ivfpq":
            ivf = faiss.extract_index_ivf(self.index)
            params = faiss.SearchParametersIVF(
                sel=selector, nprobe=ivf.nlist if exhaustive else ivf.nprobe
            )
        else:
            params = faiss.SearchParameters(sel=selector)
        params._keep = (selector, positions)  # the C++ side only borrows them
        return params

    def vector(self, product_id: str) -> np.ndarray:
        """The stored vector of a product (flat and HNSW keep them exactly); KeyError for an
        unknown id. IVF-PQ keeps only lossy codes and no direct map: re-encode the product."""
        if self.kind == "ivfpq":
            raise NotImplementedError("IVF-PQ indexes do not keep vectors; re-encode instead")
        return self.index.reconstruct(self._position[product_id])


def verify_index(path: str) -> dict:
    """Check the files of an index folder against its meta.json; returns the meta or raises
    IndexChecksumError naming the first mismatching or missing file."""
    with open(os.path.join(path, META_FILE), encoding="utf-8") as fh:
        meta = json.load(fh)
    files = meta.get("files") or {}
    for name in sorted({INDEX_FILE, IDS_FILE} | set(files)):
        file_path = os.path.join(path, name)
        if name not in files or not os.path.exists(file_path):
            raise IndexChecksumError(f"{path}: {name} missing from the artifact")
        if sha256_file(file_path) != files[name]:
            raise IndexChecksumError(f"{path}: checksum mismatch for {name} (corrupted artifact)")
    if _overall_checksum(files) != meta.get("checksum"):
        raise IndexChecksumError(f"{path}: meta.json checksum does not match its files")
    return meta


def _read_faiss(file_path: str, kind: str, mmap: bool) -> tuple[Any, bool]:
    """Read an index, memory-mapped when asked and supported: flat codes (flat, HNSW storage)
    via IO_FLAG_MMAP_IFC, inverted lists (IVF-PQ) via IO_FLAG_MMAP; plain read otherwise."""
    import faiss

    if mmap:
        flag = faiss.IO_FLAG_MMAP if kind == "ivfpq" else getattr(faiss, "IO_FLAG_MMAP_IFC", 0)
        if flag:
            try:
                return faiss.read_index(file_path, flag | faiss.IO_FLAG_READ_ONLY), True
            except RuntimeError:
                pass
    return faiss.read_index(file_path), False


def load_index(path: str, mmap: bool = True, *, verify: bool = True) -> LoadedIndex:
    """Load an index folder written by ``build_index``: checksums verified first (raises
    IndexChecksumError on mismatch), then the index (memory-mapped where faiss allows) with its
    tuned efSearch / nprobe and its id map."""
    if verify:
        meta = verify_index(path)
    else:
        with open(os.path.join(path, META_FILE), encoding="utf-8") as fh:
            meta = json.load(fh)
    index, mmapped = _read_faiss(os.path.join(path, INDEX_FILE), meta["kind"], mmap)
    params = meta.get("params", {})
    if "ef_search" in params or "nprobe" in params:
        _set_search_param(index, meta["kind"], params.get("ef_search") or params.get("nprobe"))
    with open(os.path.join(path, IDS_FILE), encoding="utf-8") as fh:
        ids = json.load(fh)
    if len(ids) != index.ntotal:
        raise IndexChecksumError(f"{path}: {len(ids)} ids for {index.ntotal} vectors")
    return LoadedIndex(index, ids, meta, os.path.abspath(path), mmapped)
