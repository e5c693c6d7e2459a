"""The steps every run kind is made of, as plain functions over frames and folders (no
Django): clean the catalog, build training pairs, fine-tune, index the catalog, evaluate.

recsys/execution.py composes them into each kind's job, with the approved inputs, and reports
progress; they only need parameters (a dict validated by the run's service) and paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.pipelines.common import ProgressFn
from recsys.pipelines.engine import SEARCH_MODES
from recsys.pipelines.fusion import cached_search, rankings, tune_fusion


@dataclass
class Pairs:
    train: pd.DataFrame
    heldout: pd.DataFrame
    heldout_judgments: pd.DataFrame  # query, product_id, grade of the held-out queries
    report: dict


@dataclass
class FineTuned:
    path: str
    checksum: str
    base_model: str
    config: dict
    curve: list
    seconds: float
    pairs_per_second: float


def _pairs_config(params: dict):
    from recsys.pipelines.pairs import PairsConfig

    return PairsConfig(
        min_grade=params["min_grade"],
        held_out_fraction=params["held_out_fraction"],
        seed=params["seed"],
    )


def product_texts(catalog: pd.DataFrame, params: dict) -> pd.Series:
    """The text training saw for each product (title | brand | description), indexed by id:
    the index embeds exactly the same text."""
    from recsys.pipelines.pairs import product_texts as texts_of

    texts = texts_of(catalog, _pairs_config(params))
    return texts[~texts.index.duplicated()]


def clean_catalog(df: pd.DataFrame, *, should_stop: Callable[[], bool] | None = None):
    from recsys.pipelines.cleaning import CleanConfig, clean

    return clean(df, "product_catalog", CleanConfig(), should_stop=should_stop)


def training_pairs(
    catalog: pd.DataFrame, labels: pd.DataFrame, events: pd.DataFrame | None, params: dict
) -> Pairs:
    from recsys.pipelines.pairs import build_pairs

    train, heldout, report = build_pairs(catalog, labels, events, _pairs_config(params))
    judgments = heldout[["query", "product_id", "gain"]].rename(columns={"gain": "grade"})
    if judgments.empty:
        raise ValueError("No held-out query has judgments: add relevance labels.")
    return Pairs(train=train, heldout=heldout, heldout_judgments=judgments, report=report)


def fine_tune(
    train: pd.DataFrame,
    params: dict,
    out_dir: Path,
    progress: ProgressFn,
    should_stop: Callable[[], bool],
    *,
    bf16: bool | None = None,
    group_by_length: bool = True,
) -> FineTuned:
    """Fine-tune the base model on ``train``, on the job's device (``current_device``: the
    worker's STEWARD_PIPELINE_DEVICE). Forward passes run under bf16 autocast where that device
    has native bf16 kernels (``bf16`` None), and batches group texts of similar length: 3.4x the
    plain fp32 loop's pairs/s on this project's CPU (bench/train_speed.py); held-out quality
    against that loop: bench/search_quality.py --training (docs/benchmarks-search.md). Both
    choices and the device are recorded in the model version's training config."""
    from recsys.pipelines.encoding import bf16_supported, current_device, default_model_path
    from recsys.pipelines.training import TrainConfig, finetune

    if train.empty:
        raise ValueError("No training pairs: the labels match no product of the catalog.")
    base = params["base_model"] or default_model_path()
    cfg = TrainConfig(
        base_model=base,
        epochs=params["epochs"],
        batch_size=params["batch_size"],
        lr=params["lr"],
        max_length=params["max_length"],
        seed=params["seed"],
        max_steps=params["max_steps"],
        bf16=bf16_supported(current_device()) if bf16 is None else bf16,
        group_by_length=group_by_length,
    )
    result = finetune(cfg, train, str(out_dir), progress=progress, should_stop=should_stop)
    return FineTuned(
        path=result.path,
        checksum=result.checksum,
        base_model=base,
        config={**cfg.__dict__, "config_hash": cfg.config_hash(), "device": current_device()},
        curve=result.curve,
        seconds=result.seconds,
        pairs_per_second=result.pairs_per_second,
    )


BF16_SAMPLE = 256


def embed_catalog(
    catalog: pd.DataFrame,
    model_path: str,
    params: dict,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, list[str], dict]:
    """(vectors, product ids, precision) of the catalog under the model at `model_path`.

    bf16 is used only where the device runs it natively and the top-10 neighbours of a sample agree
    with fp32 on at least 0.98; otherwise fp32."""
    from recsys.pipelines.encoding import choose_bf16, encode, load_encoder

    texts = product_texts(catalog, params)
    encoder = load_encoder(model_path)
    sample = texts.iloc[:: max(1, len(texts) // BF16_SAMPLE)].tolist()[:BF16_SAMPLE]
    use_bf16, overlap = choose_bf16(encoder, sample, max_length=params["max_length"])
    vectors = encode(
        encoder,
        texts.tolist(),
        max_length=params["max_length"],
        bf16=use_bf16,
        should_stop=should_stop,
    )
    precision = {"bf16": use_bf16, "bf16_top10_overlap": round(overlap, 4)}
    return vectors, [str(i) for i in texts.index], precision


def build_catalog_index(
    catalog: pd.DataFrame,
    model_path: str,
    params: dict,
    out_dir: Path,
    should_stop: Callable[[], bool],
    *,
    events: pd.DataFrame | None = None,
):
    """Embed the catalog and build its index artifact: the dense index plus, checksummed with
    it, the BM25 index over the same texts, the product table (display fields and filters)
    and the behaviour events on indexed products (for per-user recommendations)."""
    from recsys.pipelines import products
    from recsys.pipelines.indexing import build_index
    from recsys.pipelines.lexical import LexicalIndex

    vectors, ids, precision = embed_catalog(catalog, model_path, params, should_stop)
    texts = product_texts(catalog, params)

    def write_companions(folder: str) -> list[str]:
        lexical = LexicalIndex.build_if_possible(texts.tolist())
        written = lexical.save(folder) if lexical is not None else []
        written.append(products.save_table(products.product_table(catalog, ids), folder))
        written.append(products.save_events(products.event_table(events), folder))
        return written

    return build_index(
        vectors,
        ids,
        str(out_dir),
        extra_meta={"model_path": model_path, "max_length": params["max_length"], **precision},
        write_extra=write_companions,
    )


def _dense_search(model_path: str, params: dict, search: Callable):
    from recsys.pipelines.encoding import encode, load_encoder

    encoder = load_encoder(model_path)

    def run(queries: list[str], k: int) -> list[list[str]]:
        vectors = encode(encoder, queries, max_length=params["max_length"])
        return search(vectors, k)

    return run


def mode_search(index, lexical, encoder, params: dict, mode: str) -> Callable:
    """A batch search function (queries, k) -> ranked product ids for one retrieval mode over
    one index artifact: dense (faiss), bm25, or hybrid (plain reciprocal-rank fusion of both;
    an index's tuned weight is applied by the engine)."""
    from recsys.pipelines.encoding import encode
    from recsys.pipelines.lexical import FUSION_DEPTH, hybrid_fusion

    def dense(queries: list[str], k: int) -> list[list[str]]:
        vectors = encode(encoder, queries, max_length=params["max_length"])
        return index.search(vectors, k)[1]

    def bm25(queries: list[str], k: int) -> list[list[str]]:
        return [[index.ids[p] for p in lexical.search(q, k)[0]] for q in queries]

    def hybrid(queries: list[str], k: int) -> list[list[str]]:
        depth = max(k, FUSION_DEPTH)
        fused = []
        for q, dense_ids in zip(queries, dense(queries, depth), strict=True):
            dense_positions = [index.position(pid) for pid in dense_ids]
            lexical_positions = lexical.search(q, depth)[0].tolist()
            positions, _scores = hybrid_fusion(dense_positions, lexical_positions, k)
            fused.append([index.ids[p] for p in positions])
        return fused

    return {"dense": dense, "bm25": bm25, "hybrid": hybrid}[mode]


def best_mode(metrics: dict) -> str:
    """The retrieval mode with the best held-out nDCG@10 (dense on ties)."""
    scores = {mode: metrics.get(mode, {}).get("ndcg@10", -1.0) for mode in SEARCH_MODES}
    return max(SEARCH_MODES, key=lambda mode: (scores[mode], mode == "dense"))


def evaluate_models(
    catalog: pd.DataFrame,
    judgments: pd.DataFrame,
    params: dict,
    *,
    fine_tuned: str,
    index_path: str,
    active: dict | None,
) -> dict:
    """nDCG@10, Recall@100, MRR@10 on the held-out queries for the zero-shot base model (exact
    search), the fine-tuned index in each retrieval mode (dense = "fine_tuned", "bm25",
    "hybrid"), and the index served now (if any, in its own default mode).

    Hybrid fusion is tuned on these queries (``fusion.tune_fusion``): "fusion" records the
    dense weight the new index would serve, "hybrid" its cross-fitted metrics. "default_mode"
    names the mode with the best nDCG@10: the one the new index serves by default."""
    from recsys.pipelines.encoding import default_model_path, load_encoder
    from recsys.pipelines.evaluation import evaluate
    from recsys.pipelines.indexing import exact_search, load_index
    from recsys.pipelines.lexical import FUSION_DEPTH, RRF_K, LexicalIndex

    base = params["base_model"] or default_model_path()
    base_vectors, ids, _precision = embed_catalog(catalog, base, params)
    zero_shot = _dense_search(base, params, lambda q, k: exact_search(base_vectors, ids, q, k)[1])
    results = {"zero_shot": evaluate(zero_shot, judgments)}
    index = load_index(index_path)
    lexical = LexicalIndex.load_if_present(index_path)
    encoder = load_encoder(fine_tuned)
    queries = sorted(judgments["query"].astype(str).unique())
    dense, bm25 = rankings(index, lexical, encoder, params, queries, FUSION_DEPTH)

    def ids_of(ranked: dict[str, list[int]]) -> dict[str, list[str]]:
        return {q: [index.ids[p] for p in positions] for q, positions in ranked.items()}

    results["fine_tuned"] = evaluate(cached_search(ids_of(dense)), judgments)
    fusion = None
    if bm25 is not None:
        results["bm25"] = evaluate(cached_search(ids_of(bm25)), judgments)
        tuned = tune_fusion(dense, bm25, index.ids, judgments, seed=int(params.get("seed") or 0))
        results["hybrid"] = tuned["result"]
        fusion = {
            "method": "weighted_rrf",
            "rrf_k": RRF_K,
            "dense_weight": tuned["dense_weight"],
            "tuned": tuned["tuned"],
            "ndcg@10_by_weight": tuned["ndcg@10_by_weight"],
        }
    if active:
        results["active"] = _evaluate_served(active, params, judgments, queries)
    metrics = {
        name: {**value["metrics"], "n_queries": value["n_queries"]}
        for name, value in results.items()
    }
    if fusion is not None:
        metrics["hybrid"]["dense_weight"] = fusion["dense_weight"]
        metrics["fusion"] = fusion
    by_mode = {
        "dense": metrics["fine_tuned"],
        **{m: metrics[m] for m in ("bm25", "hybrid") if m in metrics},
    }
    return {**metrics, "default_mode": best_mode(by_mode)}


def _evaluate_served(active: dict, params: dict, judgments: pd.DataFrame, queries: list[str]):
    """The served index in its own mode. Serving hybrid, it is scored like the candidate's
    hybrid: cross-fitted, so that the quality gate compares like with like (the weight it
    serves may have been tuned on these very queries)."""
    from recsys.pipelines.encoding import load_encoder
    from recsys.pipelines.evaluation import evaluate
    from recsys.pipelines.indexing import load_index
    from recsys.pipelines.lexical import FUSION_DEPTH, LexicalIndex

    served = load_index(active["index_path"])
    lexical = LexicalIndex.load_if_present(active["index_path"])
    mode = active.get("mode") or "dense"
    if lexical is None:  # built before lexical retrieval existed
        mode = "dense"
    encoder = load_encoder(active["model_path"])
    if mode != "hybrid":
        return evaluate(mode_search(served, lexical, encoder, params, mode), judgments)
    dense, bm25 = rankings(served, lexical, encoder, params, queries, FUSION_DEPTH)
    return tune_fusion(dense, bm25, served.ids, judgments, seed=int(params.get("seed") or 0))[
        "result"
    ]
