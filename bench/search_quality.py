"""Search quality per retrieval mode on the real Chorus judged queries, cross-validated by query.

    STEWARD_VAR_DIR=/tmp/bench-var .venv/bin/python bench/search_quality.py [--folds 3]
        [--epochs 1] [--max-steps N] [--batch-size 32] [--max-length 64] [--seed 13]
        [--threads 1] [--splits 20] [--training bf16+grouped] [--keep]

nDCG@10, Recall@100 and MRR@10 (recsys.pipelines.evaluation.evaluate: grades 0-3, relevant =
grade >= 2, unjudged products count as irrelevant) for each mode:

- ``bm25``: BM25 over title | brand | description (the index artifact's lexical index);
- ``dense_zero_shot``: all-MiniLM-L6-v2 as shipped (exact search, flat index);
- ``dense_fine_tuned``: the model fine-tuned on the training folds' queries;
- ``hybrid``: fine-tuned dense + BM25, weighted reciprocal-rank fusion with the dense weight
  tuned on the held-out fold exactly as a pipeline run's evaluate step tunes it
  (``fusion.tune_fusion``): the figures are cross-fitted (each half of the fold's queries is
  scored with the weight chosen on the other half), the weight reported is the one an index
  would serve;
- ``hybrid_rrf``: the same two lists fused with plain RRF (equal weights);
- ``hybrid_zero_shot``: zero-shot dense + BM25, plain RRF (for reference: hybrid without
  training).

Catalog: all 19,406 Chorus/Icecat products as the importer reads them (ids are unique). The
pipeline's clean step is not applied, so that the catalog stays the full catalog the judgments
were made on (cleaning drops 28 near-duplicates, 2 of them relevant judged products).

Folds: the 78 judged queries are shuffled with ``--seed`` and dealt into ``--folds`` folds. For
each fold the model is fine-tuned (``steps.fine_tune``) on the training pairs (grade >= 2) of
the other folds' queries only (``pairs.build_pairs`` with nothing held out), the catalog is
indexed with it (``steps.build_catalog_index``) and every mode is scored on the held-out
fold's queries (``steps.mode_search`` + ``evaluation.evaluate``). BM25 and zero-shot do not
depend on the fold: one index with the base model (cached under
$STEWARD_VAR_DIR/bench/search-quality/) is scored on each fold's queries. Reported per fold,
as the mean of the fold means, and pooled over all evaluated queries.

Cost on this 2-core machine: one epoch at max_length 64 (``--max-steps`` caps the optimiser
steps), torch pinned to ``--threads`` (1: other processes share the cores). Prints a JSON
object and a table; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench_common import (  # noqa: E402
    TRAINING_VARIANTS,
    add_scratch_dir,
    check_scratch_dir,
    print_result,
    training_flags,
)
from chorus import chorus_dir  # noqa: E402

MODES = ("bm25", "dense_zero_shot", "dense_fine_tuned", "hybrid", "hybrid_rrf", "hybrid_zero_shot")
METRICS = ("ndcg@10", "recall@100", "mrr@10")
_STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def load_data(sample: int = 0, seed: int = 0):
    """(catalog, judgments): the raw Chorus products and the graded judgments. ``sample`` > 0
    keeps every judged product plus that many others (a cheap smoke run, not a measurement)."""
    import pandas as pd

    from datafiles import read_chorus_products

    paths = sorted(chorus_dir().glob("*.json.zip"))
    if not paths:
        raise SystemExit(f"No *.json.zip under {chorus_dir()} (set STEWARD_CHORUS_DIR).")
    catalog = pd.concat(
        [frame for path in paths for frame in read_chorus_products(path)], ignore_index=True
    )
    judgments = pd.read_csv(chorus_dir() / "judgments.csv", dtype={"product_id": str})
    if sample > 0:
        judged = catalog["id"].isin(judgments["product_id"])
        others = catalog[~judged].sample(n=min(sample, int((~judged).sum())), random_state=seed)
        catalog = pd.concat([catalog[judged], others], ignore_index=True)
    return catalog, judgments


def make_folds(queries: list[str], folds: int, seed: int) -> list[list[str]]:
    shuffled = sorted(set(queries))
    random.Random(seed).shuffle(shuffled)
    return [sorted(shuffled[i::folds]) for i in range(folds)]


def run_params(args) -> dict:
    from recsys.constants import RUN_PARAMETERS

    params = {name: spec[1] for name, spec in RUN_PARAMETERS.items()}
    return params | {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "held_out_fraction": 0.0,  # the folds are the held-out split
        "training": args.training,
    }


def zero_shot_index(catalog, params: dict, cache: Path) -> tuple[Path, float, bool]:
    """The catalog indexed with the base model (cached: it does not depend on the folds)."""
    from recsys.pipelines import steps
    from recsys.pipelines.encoding import default_model_path

    folder = cache / f"zero-shot-n{len(catalog)}-L{params['max_length']}"
    if (folder / "meta.json").exists():
        say(f"reusing the zero-shot index {folder}")
        return folder, 0.0, True
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    steps.build_catalog_index(catalog, default_model_path(), params, folder, lambda: False)
    return folder, time.monotonic() - started, False


def searchers(folder: Path, model_path: str, params: dict) -> dict:
    """Batch search functions per mode over one index artifact."""
    from recsys.pipelines import steps
    from recsys.pipelines.encoding import load_encoder
    from recsys.pipelines.indexing import load_index
    from recsys.pipelines.lexical import LexicalIndex

    index, lexical = load_index(str(folder)), LexicalIndex.load(str(folder))
    encoder = load_encoder(model_path)
    return {
        mode: steps.mode_search(index, lexical, encoder, params, mode)
        for mode in ("dense", "bm25", "hybrid")
    }


def tuned_fusion(
    folder: Path, model_path: str, params: dict, judgments, splits: int
) -> tuple[dict, list[dict]]:
    """Hybrid fusion tuned on ``judgments``' queries as a run's evaluate step does it (halves
    dealt with the run's seed), and the per-query figures of ``splits`` other deals (seeds
    0…splits-1): one deal of 20-odd queries is noisy."""
    from recsys.pipelines import fusion
    from recsys.pipelines.encoding import load_encoder
    from recsys.pipelines.indexing import load_index
    from recsys.pipelines.lexical import FUSION_DEPTH, LexicalIndex

    index, lexical = load_index(str(folder)), LexicalIndex.load(str(folder))
    queries = sorted(judgments["query"].unique())
    dense, bm25 = fusion.rankings(
        index, lexical, load_encoder(model_path), params, queries, FUSION_DEPTH
    )
    tuned = fusion.tune_fusion(dense, bm25, index.ids, judgments, seed=params["seed"])
    others = [
        fusion.tune_fusion(dense, bm25, index.ids, judgments, seed=seed)["result"]["per_query"]
        for seed in range(splits)
    ]
    return tuned, others


def fine_tune_fold(catalog, judgments, train_queries, params, out: Path) -> tuple[str, dict]:
    """Fine-tune on the training folds' pairs; returns (model folder, training summary)."""
    from recsys.pipelines import steps
    from recsys.pipelines.pairs import PairsConfig, build_pairs

    labels = judgments[judgments["query"].isin(train_queries)]
    config = PairsConfig(min_grade=params["min_grade"], held_out_fraction=0.0, seed=params["seed"])
    train, _heldout, report = build_pairs(catalog, labels, None, config)
    last = {"t": time.monotonic()}

    def progress(fraction: float, message: str) -> None:
        if time.monotonic() - last["t"] >= 60:
            last["t"] = time.monotonic()
            say(f"  fine-tuning {fraction:.0%}: {message}")

    flags = training_flags(params["training"])
    tuned = steps.fine_tune(train, params, out, progress, lambda: False, **flags)
    return tuned.path, {
        "train_queries": report["train_queries"],
        "train_pairs": report["train_pairs"],
        "steps": len(tuned.curve),
        "loss_first_last": [round(tuned.curve[0]["loss"], 4), round(tuned.curve[-1]["loss"], 4)]
        if tuned.curve
        else None,
        "train_seconds": round(tuned.seconds, 1),
        "pairs_per_second": round(tuned.pairs_per_second, 2),
    }


def score(search_fn, judgments) -> dict:
    from recsys.pipelines.evaluation import evaluate

    return rounded(evaluate(search_fn, judgments))


def rounded(result: dict) -> dict:
    return {
        "metrics": {name: round(result["metrics"][name], 4) for name in METRICS},
        "n_queries": result["n_queries"],
        "per_query": result["per_query"],
    }


def run_fold(n, held, catalog, judgments, params, zero, work: Path, splits: int) -> dict:
    """Fine-tune without the ``held`` queries, index, score every mode on ``held``."""
    from recsys.pipelines import steps

    train_queries = sorted(set(judgments["query"]) - set(held))
    say(f"fold {n}: fine-tuning on {len(train_queries)} queries")
    model, training = fine_tune_fold(catalog, judgments, train_queries, params, work / "model")
    say(f"fold {n}: indexing the catalog with the fine-tuned model")
    started = time.monotonic()
    steps.build_catalog_index(catalog, model, params, work / "index", lambda: False)
    index_s = time.monotonic() - started
    tuned = searchers(work / "index", model, params)
    held_judgments = judgments[judgments["query"].isin(held)]
    started = time.monotonic()
    fusion, split_scores = tuned_fusion(work / "index", model, params, held_judgments, splits)
    scores = {
        "bm25": score(zero["bm25"], held_judgments),
        "dense_zero_shot": score(zero["dense"], held_judgments),
        "dense_fine_tuned": score(tuned["dense"], held_judgments),
        "hybrid": rounded(fusion["result"]),
        "hybrid_rrf": score(tuned["hybrid"], held_judgments),
        "hybrid_zero_shot": score(zero["hybrid"], held_judgments),
    }
    say(
        f"fold {n}: nDCG@10 "
        + ", ".join(f"{m} {s['metrics']['ndcg@10']}" for m, s in scores.items())
    )
    return {
        "fold": n,
        "heldout_queries": held,
        **training,
        "dense_weight": fusion["dense_weight"],
        "cross_fit_weights": [part["weight"] for part in fusion.get("cross_fit", [])],
        "hybrid_splits_per_query": split_scores,
        "index_seconds": round(index_s, 1),
        "eval_seconds": round(time.monotonic() - started, 1),
        "scores": scores,
    }


def summarise(folds: list[dict]) -> tuple[dict, dict]:
    """(mean of the fold means, pooled over every evaluated query) per mode."""
    import numpy as np

    mean, pooled = {}, {}
    for mode in MODES:
        per_fold = [f["scores"][mode] for f in folds]
        mean[mode] = {
            name: round(float(np.mean([s["metrics"][name] for s in per_fold])), 4)
            for name in METRICS
        }
        rows = [row for s in per_fold for row in s["per_query"].values()]
        pooled[mode] = {name: round(float(np.mean([r[name] for r in rows])), 4) for name in METRICS}
        pooled[mode]["n_queries"] = len(rows)
    return mean, pooled


def split_summary(folds: list[dict]) -> dict | None:
    """Tuned hybrid pooled over the folds, for each deal of the cross-fit halves (seeds
    0…splits-1): the mean, min and max of each metric over the deals. Drops the per-query
    figures from ``folds``."""
    import numpy as np

    per_fold = [f.pop("hybrid_splits_per_query") for f in folds]
    n_splits = min((len(p) for p in per_fold), default=0)
    if not n_splits:
        return None
    values = {name: [] for name in METRICS}
    for seed in range(n_splits):
        rows = [row for deals in per_fold for row in deals[seed].values()]
        for name in METRICS:
            values[name].append(float(np.mean([r[name] for r in rows])))
    return {
        "splits": n_splits,
        **{
            name: {
                "mean": round(float(np.mean(v)), 4),
                "min": round(min(v), 4),
                "max": round(max(v), 4),
            }
            for name, v in values.items()
        },
    }


def run(args) -> dict:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    var = Path(args.var_dir).resolve()
    cache = var / "bench" / "search-quality"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=cache))
    params = run_params(args)
    catalog, judgments = load_data(args.sample, args.seed)
    from recsys.pipelines.encoding import default_model_path

    say(f"catalog {len(catalog)} products, {judgments['query'].nunique()} judged queries")
    zero_folder, zero_s, cached = zero_shot_index(catalog, params, cache)
    zero = searchers(zero_folder, default_model_path(), params)
    folds = []
    try:
        for n, held in enumerate(make_folds(judgments["query"].tolist(), args.folds, args.seed), 1):
            folds.append(
                run_fold(n, held, catalog, judgments, params, zero, work / f"fold-{n}", args.splits)
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    mean, pooled = summarise(folds)
    splits = split_summary(folds)
    for fold in folds:
        for s in fold["scores"].values():
            s.pop("per_query")
    meta = json.loads((zero_folder / "meta.json").read_text())
    return {
        "catalog_products": len(catalog),
        "sampled": bool(args.sample),
        "judged_queries": int(judgments["query"].nunique()),
        "folds": folds,
        "mean_over_folds": mean,
        "pooled": pooled,
        "hybrid_over_splits": splits,
        "best_mode_by_mean_ndcg": max(MODES, key=lambda m: mean[m]["ndcg@10"]),
        "params": {
            k: params[k]
            for k in ("epochs", "batch_size", "max_length", "max_steps", "lr", "training")
        },
        "folds_seed": args.seed,
        "catalog_precision": {"bf16": meta["extra"].get("bf16")},
        "zero_shot_index_seconds": round(zero_s, 1),
        "zero_shot_index_cached": cached,
        "torch_threads": torch.get_num_threads(),
        "kept": str(work) if args.keep else None,
        "cpus": os.cpu_count(),
        "load_average_end": round(os.getloadavg()[0], 2),
        "wall_seconds": round(time.monotonic() - _STARTED, 1),
    }


def table(result: dict) -> str:
    lines = [f"{'mode':<18}{'fold':>6}{'nDCG@10':>10}{'Recall@100':>12}{'MRR@10':>9}{'queries':>9}"]
    for mode in MODES:
        for fold in result["folds"]:
            s = fold["scores"][mode]
            m = s["metrics"]
            lines.append(
                f"{mode:<18}{fold['fold']:>6}{m['ndcg@10']:>10.4f}{m['recall@100']:>12.4f}"
                f"{m['mrr@10']:>9.4f}{s['n_queries']:>9}"
            )
        m, p = result["mean_over_folds"][mode], result["pooled"][mode]
        lines.append(
            f"{mode:<18}{'mean':>6}{m['ndcg@10']:>10.4f}{m['recall@100']:>12.4f}{m['mrr@10']:>9.4f}"
        )
        lines.append(
            f"{mode:<18}{'pool':>6}{p['ndcg@10']:>10.4f}{p['recall@100']:>12.4f}{p['mrr@10']:>9.4f}"
            f"{p['n_queries']:>9}"
        )
    for fold in result["folds"]:
        lines.append(
            f"fold {fold['fold']}: trained on {fold['train_queries']} queries / "
            f"{fold['train_pairs']} pairs in {fold['train_seconds']} s, hybrid dense weight "
            f"{fold['dense_weight']} (cross-fit halves {fold['cross_fit_weights']}), index "
            f"{fold['index_seconds']} s, eval {fold['eval_seconds']} s"
        )
    splits = result.get("hybrid_over_splits")
    if splits:
        lines.append(
            f"hybrid (tuned) pooled over {splits['splits']} deals of the cross-fit halves: "
            + ", ".join(
                f"{name} {splits[name]['mean']:.4f} ({splits[name]['min']:.4f}-"
                f"{splits[name]['max']:.4f})"
                for name in METRICS
            )
        )
    lines.append(
        f"best mode (mean nDCG@10): {result['best_mode_by_mean_ndcg']}; params "
        f"{json.dumps(result['params'])}; torch threads {result['torch_threads']}; "
        f"wall {result['wall_seconds']} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scratch_dir(parser)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--keep", action="store_true", help="keep the fold models and indexes")
    parser.add_argument(
        "--training",
        default="bf16+grouped",
        choices=TRAINING_VARIANTS,
        help="fine-tuning variant: fp32 = the plain loop; bf16+grouped = what the pipeline runs "
        "where the CPU has native bf16",
    )
    parser.add_argument(
        "--splits", type=int, default=20, help="deals of the cross-fit halves to average"
    )
    parser.add_argument(
        "--sample", type=int, default=0, help="smoke run: judged products + N others (0: all)"
    )
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    check_scratch_dir(parser, args)
    result = run(args)
    print_result(result, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
