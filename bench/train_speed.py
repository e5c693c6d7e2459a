"""Fine-tuning throughput of recsys.pipelines.training.finetune: fp32 vs bf16 autocast, plain vs
length-grouped batches.

Builds real (query, product text) pairs from the Chorus/Icecat set: judgments.csv rows with grade
>= 2 joined to their products ("title | brand | description", HTML stripped, description cut to
300 characters, as the pipeline's product texts), then runs ``finetune`` with the shipped
all-MiniLM-L6-v2 for a fixed number of steps (``--steps``, default 20) at batch 32 and max
length 64 (dynamic padding), once per variant (``--precisions``): fp32 or bf16 autocast
(``TrainConfig.bf16``), with plain batches or batches of similar text length
(``TrainConfig.group_by_length``; different batches, same seed). Each model is written to a
temporary folder and deleted. On this data the product texts average 33 tokens but almost every
plain batch of 32 holds one cut at 64, so dynamic padding alone pads nearly to the maximum.

Reports, per variant: the loop's pairs/s (from the per-step progress callbacks, steps 2..N, so
model loading, tokenisation, the first step and saving are excluded), the end-to-end pairs/s of
``TrainResult`` (all of those included), and the loss after the last step (mean of the last five
too). Reference on this machine kind (issue 4): 48 pairs/s fp32 with dynamic padding.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_speed.py [--steps 20] [--batch-size 32]
        [--max-length 64] [--repeats 1] [--precisions fp32,bf16,fp32+grouped,bf16+grouped]
        [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bench_common import TRAINING_VARIANTS, print_result, training_flags  # noqa: E402
from chorus import chorus_dir, clean_text, product_records, product_text  # noqa: E402

from recsys.pipelines import encoding, training  # noqa: E402

REFERENCE_FP32_PAIRS_PER_S = 48.0


def product_texts() -> dict[str, str]:
    """Product id -> "title | brand | description" over every *.json.zip (first record wins)."""
    texts: dict[str, str] = {}
    for record in product_records():
        texts.setdefault(str(record.get("id")), product_text(record))
    return texts


def load_pairs(min_grade: int) -> pd.DataFrame | None:
    """(query, product_text) for judgments with grade >= ``min_grade`` whose product is known,
    one row per (query, product), in file order; None when the data set is missing."""
    judgments = chorus_dir() / "judgments.csv"
    if not judgments.exists():
        return None
    labels = pd.read_csv(judgments, dtype={"product_id": str})
    labels = labels[labels["grade"] >= min_grade]
    labels = labels.assign(query=labels["query"].map(clean_text).str.casefold())
    labels = labels.drop_duplicates(["query", "product_id"])
    texts = product_texts()
    labels = labels.assign(product_text=labels["product_id"].map(texts))
    labels = labels[labels["product_text"].fillna("") != ""]
    return labels[["query", "product_text"]].reset_index(drop=True)


def train_once(pairs: pd.DataFrame, cfg: training.TrainConfig, folder: str) -> dict:
    """One fine-tune into ``folder``/model (deleted afterwards); timings and losses."""
    stamps: list[float] = []
    out = os.path.join(folder, f"model-{'bf16' if cfg.bf16 else 'fp32'}-{int(cfg.group_by_length)}")
    result = training.finetune(
        cfg, pairs, out, progress=lambda _f, _m: stamps.append(time.perf_counter())
    )
    try:
        losses = [point["loss"] for point in result.curve]
        loop_steps = len(stamps) - 1
        loop_seconds = stamps[-1] - stamps[0] if loop_steps > 0 else float("nan")
        loop_rate = loop_steps * cfg.batch_size / loop_seconds if loop_steps > 0 else None
        return {
            "steps": result.steps,
            "pairs_seen": result.pairs_seen,
            "loop_pairs_per_s": None if loop_rate is None else round(loop_rate, 1),
            "loop_seconds_steps_2_to_n": round(loop_seconds, 2),
            "end_to_end_seconds": round(result.seconds, 2),
            "end_to_end_pairs_per_s": round(result.pairs_per_second, 1),
            "first_loss": round(losses[0], 4),
            "final_loss": round(result.final_loss, 4),
            "mean_loss_last_5": round(float(np.mean(losses[-5:])), 4),
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(args: argparse.Namespace) -> dict:
    """Train once per precision (``--repeats`` rounds, interleaved); returns the JSON result."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    pairs = load_pairs(args.min_grade)
    if pairs is None:
        return {"skipped": f"{chorus_dir()}/judgments.csv not found"}
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = set(precisions) - set(TRAINING_VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)} ({', '.join(TRAINING_VARIANTS)})")
    runs: dict[str, list[dict]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory(prefix="steward-bench-train-") as folder:
        for _ in range(args.repeats):
            for precision in precisions:
                cfg = training.TrainConfig(
                    batch_size=args.batch_size,
                    max_length=args.max_length,
                    max_steps=args.steps,
                    seed=args.seed,
                    **training_flags(precision),
                )
                runs[precision].append(train_once(pairs, cfg, folder))
        leftovers = os.listdir(folder)
    best = {p: max(rs, key=lambda r: r["loop_pairs_per_s"] or 0.0) for p, rs in runs.items() if rs}
    result: dict = {
        "pairs": len(pairs),
        "queries": int(pairs["query"].nunique()),
        "min_grade": args.min_grade,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "steps": args.steps,
        "seed": args.seed,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "bf16_supported": encoding.bf16_supported(),
        "reference_fp32_pairs_per_s": REFERENCE_FP32_PAIRS_PER_S,
        "best": best,
        "runs": runs,
        "temp_files_left": leftovers,
    }
    plain = best.get("fp32", {}).get("loop_pairs_per_s")
    for variant, r in best.items():
        if plain and r["loop_pairs_per_s"] and variant != "fp32":
            result[f"{variant}_speedup_vs_fp32"] = round(r["loop_pairs_per_s"] / plain, 2)
    for precision, r in best.items():
        if r["loop_pairs_per_s"]:
            ratio = r["loop_pairs_per_s"] / REFERENCE_FP32_PAIRS_PER_S
            result[f"{precision}_vs_reference"] = round(ratio, 2)
    result["load_average_start"] = [round(x, 2) for x in load_start]
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def table(result: dict) -> str:
    """The best run per precision as a small text table."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    lines = [
        f"{'variant':<14}{'loop pairs/s':>14}{'end-to-end':>12}{'first loss':>12}"
        f"{'final loss':>12}{'last-5 loss':>13}"
    ]
    for precision, r in result["best"].items():
        lines.append(
            f"{precision:<14}{r['loop_pairs_per_s'] or float('nan'):>14.1f}"
            f"{r['end_to_end_pairs_per_s']:>12.1f}{r['first_loss']:>12.4f}"
            f"{r['final_loss']:>12.4f}{r['mean_loss_last_5']:>13.4f}"
        )
    lines.append(
        f"reference fp32 (issue 4): {result['reference_fp32_pairs_per_s']} pairs/s; "
        f"{result['pairs']} pairs, batch {result['batch_size']}, max length "
        f"{result['max_length']}, {result['steps']} steps"
    )
    lines.append(
        f"load average {result['load_average_start'][0]} -> {result['load_average_end'][0]}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print JSON then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--min-grade", type=int, default=2, help="judgments kept as positives")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=1, help="rounds (best loop rate counts)")
    parser.add_argument(
        "--precisions",
        default=",".join(TRAINING_VARIANTS),
        help=f"comma-separated: {','.join(TRAINING_VARIANTS)}",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    args = parser.parse_args(argv)
    result = run(args)
    print_result(result, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
