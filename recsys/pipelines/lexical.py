"""Lexical retrieval (BM25 with bm25s) and rank fusion with dense results.

On real product search lexical matching is strong (model numbers, brands, exact terms), so an
index artifact carries a BM25 index over the same product texts as the dense index, and search
can run ``dense``, ``bm25`` or ``hybrid`` (reciprocal-rank fusion of both lists, the dense list
weighted by a weight each index version tunes on its held-out queries; see
``recsys.pipelines.fusion.tune_fusion``).

Tokenisation: bm25s' regex tokenizer, lower-cased, English stop words removed, Snowball
(PyStemmer) stemming so that "cables" matches "cable". Scoring: BM25 "lucene" variant,
k1 = 1.5, b = 0.75 (bm25s' defaults). A query whose every term is unknown scores nothing.

No Django imports; bm25s and Stemmer are imported inside the functions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

LEXICAL_DIR = "lexical"
RRF_K = 60
FUSION_DEPTH = 100
DENSE_WEIGHT_DEFAULT = 0.5  # equal weights: plain RRF (an index evaluated without tuning)


@functools.cache
def _stemmer():
    try:
        import Stemmer
    except ImportError:  # pragma: no cover - PyStemmer is in requirements.txt
        return None
    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Token strings per text, as the index and the queries see them."""
    import bm25s

    return bm25s.tokenize(
        list(texts),
        lower=True,
        stopwords="en",
        stemmer=_stemmer(),
        return_ids=False,
        show_progress=False,
    )


class LexicalIndex:
    """A BM25 index over ``n`` documents (positions 0..n-1, aligned with the dense index)."""

    def __init__(self, retriever) -> None:
        self.retriever = retriever
        self.n = int(retriever.scores["num_docs"])

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25(method="lucene")
        corpus_tokens = tokenize(texts)
        if not any(corpus_tokens):
            raise ValueError("no product text has a searchable word")
        retriever.index(corpus_tokens, show_progress=False)  # an empty text matches nothing
        return cls(retriever)

    @classmethod
    def build_if_possible(cls, texts: Sequence[str]) -> LexicalIndex | None:
        """The index, or None when no text has a word (the index then serves dense only)."""
        try:
            return cls.build(texts)
        except ValueError:
            return None

    @classmethod
    def load_if_present(cls, folder: str) -> LexicalIndex | None:
        """The saved index, or None for an artifact built without one."""
        if not os.path.isdir(os.path.join(folder, LEXICAL_DIR)):
            return None
        return cls.load(folder)

    def save(self, folder: str) -> list[str]:
        """Write the index under ``folder``/lexical; returns the written paths relative to
        ``folder`` (for the artifact's checksums)."""
        out = os.path.join(folder, LEXICAL_DIR)
        self.retriever.save(out)
        return sorted(
            os.path.relpath(os.path.join(root, name), folder)
            for root, _dirs, names in os.walk(out)
            for name in names
        )

    @classmethod
    def load(cls, folder: str, mmap: bool = True) -> LexicalIndex:
        import bm25s

        return cls(bm25s.BM25.load(os.path.join(folder, LEXICAL_DIR), mmap=mmap))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when no term is known)."""
        tokens = tokenize([query])[0]
        known = [t for t in tokens if t in self.retriever.vocab_dict]
        if not known:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def search(
        self, query: str, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (positions, scores) with a positive score, best first; ``allowed`` is a
        boolean mask over documents (a filter)."""
        scores = self.scores(query)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            part = np.argpartition(-scores[candidates], k - 1)[:k]
            candidates = candidates[part]
        order = np.lexsort((candidates, -scores[candidates]))
        top = candidates[order]
        return top, scores[top]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    k: int,
    *,
    rrf_k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> tuple[list[int], list[float]]:
    """Fuse ranked lists of positions: score(d) = Σ w_i / (rrf_k + rank_i(d)), rank from 1
    (Cormack et al., 2009; equal weights by default). A list weighted 0 takes no part. Returns
    the top-``k`` (positions, fused scores); ties broken by position so the order is
    deterministic."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight <= 0:
            continue
        for rank, position in enumerate(ranking, start=1):
            fused[int(position)] = fused.get(int(position), 0.0) + weight / (rrf_k + rank)
    ordered = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [p for p, _s in ordered], [s for _p, s in ordered]


def hybrid_fusion(
    dense: Sequence[int], lexical: Sequence[int], k: int, *, dense_weight: float = 0.5
) -> tuple[list[int], list[float]]:
    """The hybrid ranking: weighted reciprocal-rank fusion of the dense and the BM25 list,
    the dense list weighted ``dense_weight`` and BM25 ``1 - dense_weight`` (0.5: plain RRF,
    with the same scores; the weights are doubled so that they sum to the two lists' 2)."""
    weights = (2.0 * dense_weight, 2.0 * (1.0 - dense_weight))
    return reciprocal_rank_fusion([dense, lexical], k, weights=weights)
