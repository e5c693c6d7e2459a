"""The search engine over one index artifact: search (dense, BM25 or hybrid, with filters),
similar items, and per-user recommendations from behaviour events.

One ``SearchEngine`` is loaded once per web process and index version (see recsys/serving.py)
and is then read-only: every method is safe to call from many threads at once (faiss and the
numpy BM25 scorer release the GIL or only read; the query-embedding LRU has its own lock).
No Django imports.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.pipelines import products as product_tables
from recsys.pipelines.lexical import (
    DENSE_WEIGHT_DEFAULT,
    FUSION_DEPTH,
    LexicalIndex,
    hybrid_fusion,
)

SEARCH_MODES = ("dense", "bm25", "hybrid")  # the retrieval modes: defined here only
EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "cart": 4.0, "add_to_cart": 4.0, "purchase": 6.0}
RECENT_EVENTS = 50
RECENCY_HALF_LIFE_DAYS = 14.0
EMBED_CACHE_SIZE = 2048
EXACT_FILTER_MAX = 50_000  # filtered HNSW queries score up to this many products exactly


class UnknownProductError(KeyError):
    """The product is not in this index."""


class UnknownUserError(KeyError):
    """The user has no behaviour event in this index's data."""


@dataclass
class Hit:
    product_id: str
    rank: int
    score: float
    title: str
    brand: str | None
    price: float | None
    attributes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "rank": self.rank,
            "score": round(self.score, 6),
            "title": self.title,
            "brand": self.brand,
            "price": self.price,
            "attributes": self.attributes,
        }


@dataclass
class Answer:
    """Ranked hits plus how they were produced and how long each part took (milliseconds)."""

    hits: list[Hit]
    mode: str
    timings: dict[str, float]
    label: str = ""  # e.g. "popular" for a cold-start recommendation


class _LRU:
    """A small thread-safe LRU cache (query text -> embedding)."""

    def __init__(self, size: int):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def _finite(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class SearchEngine:
    """Everything needed to answer queries from one index artifact folder."""

    def __init__(
        self,
        folder: str,
        encoder: Any,
        *,
        default_mode: str = "dense",
        dense_weight: float = DENSE_WEIGHT_DEFAULT,
        mmap=True,
    ):
        from recsys.pipelines.indexing import load_index

        self.index = load_index(folder, mmap=mmap)
        self.folder = folder
        self.encoder = encoder
        self.max_length = int(self.index.meta.get("extra", {}).get("max_length") or 64)
        self.bf16 = bool(self.index.meta.get("extra", {}).get("bf16"))
        # None for an index built before lexical retrieval existed, or without any word
        self.lexical: LexicalIndex | None = LexicalIndex.load_if_present(folder)
        try:
            self.products = product_tables.load_table(folder)
        except (FileNotFoundError, OSError):
            self.products = pd.DataFrame({"id": self.index.ids, "title": "", "brand": None})
            self.products["price"] = np.nan
        self.attribute_names = product_tables.attribute_names(self.products)
        self._columns = {
            column: self.products[column]
            .astype(object)
            .where(self.products[column].notna())
            .to_numpy()
            for column in self.products.columns
        }
        self._popular: list[tuple[str, float]] | None = None
        self._folded = product_tables.folded_columns(self.products)  # text filters, once
        self._facets: dict[str, list[str]] = {}
        self.modes = SEARCH_MODES if self.lexical is not None else ("dense",)
        self.default_mode = default_mode if default_mode in self.modes else "dense"
        self.dense_weight = float(dense_weight)  # hybrid: the dense list's share of the fusion
        self._events: pd.DataFrame | None = None
        self._user_rows: dict = {}
        self._events_lock = threading.Lock()
        self._embeddings = _LRU(EMBED_CACHE_SIZE)

    # -- building blocks -------------------------------------------------------------------

    def known_filters(self) -> list[str]:
        return product_tables.known_filters(self.products)

    def filter_mask(self, filters: dict | None) -> np.ndarray | None:
        """Rows matching ``filters`` (None: no filter); raises FilterError for a bad one."""
        return product_tables.filter_mask(self.products, filters or {}, folded=self._folded)

    def embed(self, query: str) -> np.ndarray:
        """Query vector, from the LRU cache when the same text was encoded before."""
        from recsys.pipelines.encoding import encode

        cached = self._embeddings.get(query)
        if cached is None:
            # fp32 for one short text: bf16 pays off on batches only (16.7 vs 30.7 ms here);
            # the catalog vectors may be bf16, which agrees with fp32 by construction (>= 0.98).
            cached = encode(self.encoder, [query], max_length=self.max_length, bf16=False)[0]
            self._embeddings.put(query, cached)
        return cached

    def _hits(self, positions, scores) -> list[Hit]:
        columns = self._columns
        hits = []
        for rank, (position, score) in enumerate(zip(positions, scores, strict=True), 1):
            brand, price = columns["brand"][position], columns["price"][position]
            hits.append(
                Hit(
                    product_id=str(columns["id"][position]),
                    rank=rank,
                    score=float(score),
                    title=str(columns["title"][position]),
                    brand=brand if isinstance(brand, str) else None,
                    price=float(price) if _finite(price) else None,
                    attributes={
                        name: value
                        for name in self.attribute_names
                        if isinstance(value := columns[f"attr:{name}"][position], str)
                    },
                )
            )
        return hits

    def _dense_positions(self, vector: np.ndarray, k: int, allowed: np.ndarray | None):
        """Top-``k`` (positions, scores) by inner product, restricted to ``allowed`` rows.

        A graph (HNSW) or inverted-list (IVF) search visits only part of the index, so with a
        selective filter it would find far fewer than ``k`` allowed products. Filtered queries
        on those indexes therefore score the allowed products exactly (their stored vectors)
        up to EXACT_FILTER_MAX of them, and above that search with the visit budget raised."""
        if allowed is None:
            scores, ids = self.index.search(vector, k)
            positions = [self.index.position(pid) for pid in ids[0]]
            return positions, scores[0][: len(positions)].tolist()
        allowed_positions = np.flatnonzero(allowed)
        if not len(allowed_positions):
            return [], []
        if self.index.kind == "hnsw" and len(allowed_positions) <= EXACT_FILTER_MAX:
            vectors = self.index.index.reconstruct_batch(allowed_positions.astype(np.int64))
            sims = vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
            top = np.argsort(-sims, kind="stable")[:k]
            return allowed_positions[top].tolist(), sims[top].tolist()
        scores, ids = self.index.search(
            vector, k, allowed_positions=allowed_positions, exhaustive=True
        )
        positions = [self.index.position(pid) for pid in ids[0]]
        return positions, scores[0][: len(positions)].tolist()

    # -- the three answers -----------------------------------------------------------------

    def search(
        self, query: str, k: int, *, mode: str | None = None, filters: dict | None = None
    ) -> Answer:
        """Top-``k`` products for a text query. Raises FilterError for a bad filter and
        ValueError for a mode this index cannot serve."""
        start = time.perf_counter()
        mode = mode or self.default_mode
        if mode not in self.modes:
            raise ValueError(
                f"Mode {mode!r} is not available for this index (available: "
                f"{', '.join(self.modes)})."
            )
        allowed = self.filter_mask(filters)
        encode_s = 0.0
        vector = None
        if mode in ("dense", "hybrid"):
            t = time.perf_counter()
            vector = self.embed(query)
            encode_s = time.perf_counter() - t
        t = time.perf_counter()
        if mode == "dense":
            positions, scores = self._dense_positions(vector, k, allowed)
        elif mode == "bm25":
            top, top_scores = self.lexical.search(query, k, allowed=allowed)
            positions, scores = top.tolist(), top_scores.tolist()
        else:
            depth = max(k, FUSION_DEPTH)
            dense_positions, _s = self._dense_positions(vector, depth, allowed)
            lexical_positions = self.lexical.search(query, depth, allowed=allowed)[0].tolist()
            positions, scores = hybrid_fusion(
                dense_positions, lexical_positions, k, dense_weight=self.dense_weight
            )
        search_s = time.perf_counter() - t
        hits = self._hits(positions, scores)
        timings = {
            "encode_ms": _ms(encode_s),
            "search_ms": _ms(search_s),
            "total_ms": _ms(time.perf_counter() - start),
        }
        return Answer(hits=hits, mode=mode, timings=timings)

    def _vector_of(self, product_id: str) -> np.ndarray:
        try:
            position = self.index.position(product_id)
        except KeyError:
            raise UnknownProductError(product_id) from None
        if self.index.kind == "ivfpq":  # keeps no exact vectors: re-encode title | brand
            from recsys.pipelines.encoding import encode

            row = self.products.iloc[position]
            text = " | ".join(str(v) for v in (row["title"], row["brand"]) if isinstance(v, str))
            return encode(self.encoder, [text], max_length=self.max_length, bf16=self.bf16)[0]
        return np.asarray(self.index.index.reconstruct(position), dtype=np.float32)

    def similar(self, product_id: str, k: int, *, filters: dict | None = None) -> Answer:
        """The ``k`` products nearest to a product (itself excluded)."""
        start = time.perf_counter()
        vector = self._vector_of(product_id)
        allowed = self.filter_mask(filters)
        own = self.index.position(product_id)
        positions, scores = self._dense_positions(vector, k + 1, allowed)
        kept = [(p, s) for p, s in zip(positions, scores, strict=True) if p != own][:k]
        hits = self._hits([p for p, _ in kept], [s for _, s in kept])
        total = _ms(time.perf_counter() - start)
        return Answer(hits=hits, mode="dense", timings={"total_ms": total})

    def events(self) -> pd.DataFrame:
        """Behaviour events of the index's data, oldest first (loaded on first use)."""
        with self._events_lock:
            if self._events is None:
                loaded = product_tables.load_events(self.folder)
                events = loaded if loaded is not None else product_tables.event_table(None)
                events = events.sort_values("ts", kind="stable").reset_index(drop=True)
                self._user_rows = events.groupby("user_id", sort=False).indices
                self._events = events
            return self._events

    def facets(self, name: str) -> list[str]:
        """The most common values of a text filter (computed once per index)."""
        with self._events_lock:
            values = self._facets.get(name)
        if values is None:
            values = product_tables.facet_values(self.products, name)
            with self._events_lock:
                self._facets[name] = values
        return values

    def recommend(self, user_id: str, k: int) -> Answer:
        """Products for a user from their recent events (weighted by event type and recency,
        half-life 14 days from their latest event; purchased products excluded). A user whose
        events name no indexed product gets the catalog's popular products, labelled so.
        Raises UnknownUserError for a user with no event at all."""
        start = time.perf_counter()
        events = self.events()
        rows = self._user_rows.get(user_id)
        if rows is None:
            raise UnknownUserError(user_id)
        mine = events.iloc[rows]
        purchased = set(mine.loc[mine["event"] == "purchase", "product_id"])
        indexed = mine[mine["product_id"].map(self._has_product)].tail(RECENT_EVENTS)
        if indexed.empty:
            answer = self.popular(k, exclude=purchased)
            answer.timings = {"total_ms": _ms(time.perf_counter() - start)}
            return answer
        age_days = (indexed["ts"].max() - indexed["ts"]).dt.total_seconds() / 86400
        weights = indexed["event"].map(EVENT_WEIGHTS).fillna(1.0).to_numpy() * np.power(
            0.5, age_days.to_numpy() / RECENCY_HALF_LIFE_DAYS
        )
        vectors = np.stack([self._vector_of(pid) for pid in indexed["product_id"]])
        profile = (weights[:, None] * vectors).sum(axis=0)
        profile = (profile / max(np.linalg.norm(profile), 1e-12)).astype(np.float32)
        positions, scores = self._dense_positions(profile, k + len(purchased), None)
        kept = [
            (p, s)
            for p, s in zip(positions, scores, strict=True)
            if self.index.ids[p] not in purchased
        ][:k]
        hits = self._hits([p for p, _ in kept], [s for _, s in kept])
        return Answer(
            hits=hits,
            mode="personalised",
            timings={"total_ms": _ms(time.perf_counter() - start)},
            label="personalised",
        )

    def _has_product(self, product_id: str) -> bool:
        try:
            self.index.position(product_id)
        except KeyError:
            return False
        return True

    def _popularity(self) -> list[tuple[str, float]]:
        with self._events_lock:
            ranking = self._popular
        if ranking is None:
            events = self.events()
            weights = events["event"].map(EVENT_WEIGHTS).fillna(1.0)
            counts = weights.groupby(events["product_id"]).sum().sort_values(ascending=False)
            ranking = [(pid, float(v)) for pid, v in counts.items() if self._has_product(pid)]
            with self._events_lock:
                self._popular = ranking
        return ranking

    def popular(self, k: int, *, exclude: set[str] | None = None) -> Answer:
        """The catalog's most popular indexed products by weighted event count (catalog order
        fills in when there are too few events)."""
        exclude = exclude or set()
        chosen = [
            (self.index.position(pid), score)
            for pid, score in self._popularity()
            if pid not in exclude
        ][:k]
        if len(chosen) < k:
            seen = {p for p, _ in chosen}
            chosen += [
                (p, 0.0)
                for p in range(len(self.index.ids))
                if p not in seen and self.index.ids[p] not in exclude
            ][: k - len(chosen)]
        hits = self._hits([p for p, _ in chosen], [s for _, s in chosen])
        return Answer(hits=hits, mode="popular", timings={}, label="popular (cold start)")
