"""Embedding throughput of our encode() vs sentence-transformers' own encode(), same texts, one run.

Takes a seeded sample of ``--n`` real Chorus/Icecat products (all four ``*.json.zip`` files) as
"title | brand | description" texts (HTML stripped, description cut to 300 characters, as the
pipeline's product texts), loads the shipped all-MiniLM-L6-v2 once through
``recsys.pipelines.encoding`` and once as ``SentenceTransformer(<the same folder>)`` (offline),
warms both up, then times them interleaved ``--repeats`` times (best rate counts; the shared
machine's load hits both alike; each round's ratio is reported too). Ours runs in bf16 when
``choose_bf16`` accepts it on a sample of the texts, else in fp32, with length-sorted dynamic
padding. Both truncate at ``--max-length`` (default 256, sentence-transformers' own setting for
this model). On a loaded 2-core machine ``--threads 1`` avoids thread oversubscription.

Reports texts/s for each, the speed-up and the top-10 neighbour agreement between the two
embeddings (``encoding.topk_overlap``). Target: speed-up >= 3 with agreement >= 0.98. Exit 1
only when sentence-transformers was measured and the target missed. Prints JSON and a table.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/encode_vs_st.py [--n 2000] [--repeats 1]
        [--max-length 256] [--batch-size 64] [--st-batch-size 32] [--also-fp32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
from bench_common import print_result  # noqa: E402
from chorus import chorus_dir, product_text  # noqa: E402

from recsys.pipelines import encoding  # noqa: E402

TARGET_SPEEDUP = 3.0
TARGET_AGREEMENT = 0.98


def load_texts(n: int, seed: int) -> list[str] | None:
    """A seeded sample of ``n`` distinct product texts from every *.json.zip (None if absent)."""
    files = sorted(chorus_dir().glob("*.json.zip"))
    if not files:
        return None
    texts: list[str] = []
    for path in files:
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                texts += [product_text(r) for r in json.loads(archive.read(name))]
    unique = sorted({t for t in texts if t})
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(unique))[: min(n, len(unique))]
    return [unique[i] for i in pick]


def load_st(path: str, max_length: int, batch_size: int):
    """sentence-transformers' encode() of the model folder as a callable, or the reason why
    it could not be loaded offline."""
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as exc:  # any failure is reported; ours is still measured
        return None, f"{type(exc).__name__}: {exc}"
    model.max_seq_length = max_length

    def run(texts: list[str]) -> np.ndarray:
        emb = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(emb, dtype=np.float32)

    return run, None


def timed_round_robin(variants: dict, texts: list[str], repeats: int) -> dict:
    """Every variant ``repeats`` times, interleaved; {name: (embeddings, [texts/s per run])}."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    embeddings: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            embeddings[name] = fn(texts)
            rates[name].append(len(texts) / (time.perf_counter() - start))
    return {name: (embeddings[name], rates[name]) for name in variants}


def run(args: argparse.Namespace) -> dict:
    """Measure both encoders on the same texts; returns the JSON-able result."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    texts = load_texts(args.n, args.seed)
    if texts is None:
        return {"skipped": f"no *.json.zip under {chorus_dir()}"}
    path = encoding.default_model_path()
    enc = encoding.load_encoder(path)
    kw = {"batch_size": args.batch_size, "max_length": args.max_length}
    lengths = np.array([len(ids) for ids in encoding.tokenize_lengths(enc, texts, 100_000)])
    use_bf16, choice_overlap = encoding.choose_bf16(enc, texts[: args.choose_sample], **kw)
    variants = {"ours": lambda t: encoding.encode(enc, t, bf16=use_bf16, **kw)}
    if args.also_fp32 and use_bf16:
        variants["ours_fp32"] = lambda t: encoding.encode(enc, t, bf16=False, **kw)
    st, st_error = load_st(path, args.max_length, args.st_batch_size)
    if st is not None:
        variants["st"] = st
    for fn in variants.values():
        fn(texts[: args.warmup])
    measured = timed_round_robin(variants, texts, args.repeats)
    ours, ours_rates = measured["ours"]
    result: dict = {
        "texts": len(texts),
        "seed": args.seed,
        "tokens_per_text": {
            "mean": round(float(lengths.mean()), 1),
            "p95": int(np.percentile(lengths, 95)),
            "max": int(lengths.max()),
            "truncated_fraction": round(float((lengths > args.max_length).mean()), 4),
        },
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "st_batch_size": args.st_batch_size,
        "repeats": args.repeats,
        "warmup_texts": args.warmup,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "bf16_supported": encoding.bf16_supported(),
        "choose_bf16": {
            "use_bf16": use_bf16,
            "overlap": round(choice_overlap, 4),
            "sample": min(args.choose_sample, len(texts)),
        },
        "ours_precision": "bf16" if use_bf16 else "fp32",
        "ours_texts_per_s": round(max(ours_rates), 1),
        "ours_runs_texts_per_s": [round(r, 1) for r in ours_rates],
    }
    if "ours_fp32" in measured:
        fp32, fp32_rates = measured["ours_fp32"]
        result["ours_fp32_texts_per_s"] = round(max(fp32_rates), 1)
        result["top10_agreement_ours_vs_ours_fp32"] = round(encoding.topk_overlap(ours, fp32), 4)
    if st is None:
        result["st_error"] = st_error
        result["target_met"] = None
    else:
        st_emb, st_rates = measured["st"]
        speedup = max(ours_rates) / max(st_rates)
        agreement = encoding.topk_overlap(ours, st_emb, k=10)
        cosine = (ours * st_emb).sum(axis=1)
        result |= {
            "st_texts_per_s": round(max(st_rates), 1),
            "st_runs_texts_per_s": [round(r, 1) for r in st_rates],
            "speedup_vs_st": round(speedup, 2),
            "speedup_per_round": [
                round(o / r, 2) for o, r in zip(ours_rates, st_rates, strict=True)
            ],
            "top10_agreement_vs_st": round(agreement, 4),
            "cosine_vs_st": {"mean": round(float(cosine.mean()), 5), "min": float(cosine.min())},
            "target": {"speedup": TARGET_SPEEDUP, "agreement": TARGET_AGREEMENT},
            "target_met": bool(speedup >= TARGET_SPEEDUP and agreement >= TARGET_AGREEMENT),
        }
        if "ours_fp32" in measured:
            agree = encoding.topk_overlap(measured["ours_fp32"][0], st_emb)
            result["top10_agreement_ours_fp32_vs_st"] = round(agree, 4)
    result["load_average_start"] = [round(x, 2) for x in load_start]
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def table(result: dict) -> str:
    """The result as a small text table."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    rows = [(f"ours encode() ({result['ours_precision']})", result["ours_texts_per_s"])]
    if "ours_fp32_texts_per_s" in result:
        rows.append(("ours encode() (fp32)", result["ours_fp32_texts_per_s"]))
    if "st_texts_per_s" in result:
        rows.append(("sentence-transformers encode()", result["st_texts_per_s"]))
    lines = [f"{'variant':<34}{'texts/s':>10}"]
    lines += [f"{name:<34}{rate:>10.1f}" for name, rate in rows]
    if "st_texts_per_s" in result:
        lines.append(f"{'speed-up vs sentence-transformers':<34}{result['speedup_vs_st']:>9.2f}x")
        lines.append(f"{'top-10 agreement vs st':<34}{result['top10_agreement_vs_st']:>10.4f}")
        lines.append(f"{'target met (>=3x, >=0.98)':<34}{result['target_met']!s:>10}")
    else:
        lines.append(f"sentence-transformers not measured: {result['st_error']}")
    lines.append(
        f"{result['texts']} texts, max_length {result['max_length']}, load average "
        f"{result['load_average_start'][0]} -> {result['load_average_end'][0]}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print JSON then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of product texts")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of ours")
    parser.add_argument("--st-batch-size", type=int, default=32, help="st's default is 32")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (best counts)")
    parser.add_argument("--warmup", type=int, default=64, help="texts encoded before timing")
    parser.add_argument("--choose-sample", type=int, default=256, help="texts for choose_bf16")
    parser.add_argument("--also-fp32", action="store_true", help="time ours in fp32 too")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    args = parser.parse_args(argv)
    result = run(args)
    print_result(result, table)
    return 1 if result.get("target_met") is False else 0


if __name__ == "__main__":
    sys.exit(main())
