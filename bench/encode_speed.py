"""Benchmark recsys.pipelines.encoding on real product texts: fp32 vs bf16 throughput.

Reads ~2,000 real Chorus/Icecat products (title + short description) from
../shared/data/chorus-icecat/1.json.zip (or $STEWARD_CHORUS_DIR), encodes them with the shipped
all-MiniLM-L6-v2 in length-sorted, dynamically padded batches, once in fp32 and once under bf16
autocast, and reports texts/s, the cosine between the two embeddings of each text and the
top-10 neighbour overlap. When sentence-transformers is installed, its default ``encode()`` of
the same model on the same texts is measured too, as the baseline. Each variant runs
``--repeats`` times and the best rate counts. Prints a JSON object and a table. Skips (exit 0)
when the data set is missing.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/encode_speed.py [--n 2000] [--max-length 256]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from recsys.pipelines import encoding  # noqa: E402


def chorus_dir() -> Path:
    """The Chorus data folder: $STEWARD_CHORUS_DIR or ../shared/data/chorus-icecat."""
    default = ROOT.parent / "shared" / "data" / "chorus-icecat"
    return Path(os.environ.get("STEWARD_CHORUS_DIR") or default)


def load_texts(n: int) -> list[str] | None:
    """The first ``n`` products of 1.json.zip as "title. short description" (tags stripped)."""
    path = chorus_dir() / "1.json.zip"
    if not path.exists():
        return None
    with zipfile.ZipFile(path) as archive:
        records = json.loads(archive.read(archive.namelist()[0]))
    texts = []
    for record in records[:n]:
        description = re.sub(r"<[^>]+>", " ", html.unescape(record.get("short_description") or ""))
        texts.append(f"{record.get('title') or ''}. {description}".strip())
    return texts


def round_robin(variants: dict, texts: list[str], repeats: int) -> dict:
    """Run every variant ``repeats`` times, interleaved (so background load on a shared machine
    hits all of them alike); returns {name: (embeddings, best texts per second)}."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    embeddings: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            embeddings[name] = fn(texts)
            rates[name].append(len(texts) / (time.perf_counter() - start))
    return {name: (embeddings[name], max(rates[name])) for name in variants}


def st_encoder(path: str, max_length: int):
    """sentence-transformers' default encode() (fp32, batch 32) as a callable, or None if the
    library is not installed."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = max_length
    return lambda t: model.encode(t, normalize_embeddings=True)


def run(n: int, max_length: int, batch_size: int, repeats: int) -> dict:
    """Measure every variant on the same ``n`` texts; returns the JSON-able result."""
    texts = load_texts(n)
    if texts is None:
        return {"skipped": f"{chorus_dir()}/1.json.zip not found"}
    path = encoding.default_model_path()
    enc = encoding.load_encoder(path)
    kw = {"batch_size": batch_size, "max_length": max_length}
    variants = {
        "fp32": lambda t: encoding.encode(enc, t, bf16=False, **kw),
        "bf16": lambda t: encoding.encode(enc, t, bf16=True, **kw),
    }
    st = st_encoder(path, max_length)
    if st is not None:
        variants["st"] = st
    for fn in variants.values():
        fn(texts[:64])  # warm-up
    measured = round_robin(variants, texts, repeats)
    (fp32, fp32_rate), (bf16, bf16_rate) = measured["fp32"], measured["bf16"]
    cos = (fp32 * bf16).sum(axis=1)
    result = {
        "texts": len(texts),
        "max_length": max_length,
        "batch_size": batch_size,
        "repeats": repeats,
        "load_average_at_start": os.getloadavg()[0],
        "torch_threads": __import__("torch").get_num_threads(),
        "bf16_supported": encoding.bf16_supported(),
        "fp32_sorted_texts_per_s": round(fp32_rate, 1),
        "bf16_sorted_texts_per_s": round(bf16_rate, 1),
        "bf16_speedup_vs_fp32": round(bf16_rate / fp32_rate, 2),
        "cosine_bf16_vs_fp32": {"mean": float(cos.mean()), "min": float(cos.min())},
        "top10_overlap_bf16_vs_fp32": encoding.topk_overlap(fp32, bf16, k=10),
    }
    if "st" in measured:
        st_emb, st_rate = measured["st"]
        result["st_encode_texts_per_s"] = round(st_rate, 1)
        result["bf16_speedup_vs_st"] = round(bf16_rate / st_rate, 2)
        result["top10_overlap_bf16_vs_st"] = encoding.topk_overlap(st_emb, bf16, k=10)
        result["cosine_fp32_vs_st_min"] = float((st_emb * fp32).sum(axis=1).min())
    return result


def table(result: dict) -> str:
    """The result as a small text table."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    rows = [("fp32, length-sorted", result["fp32_sorted_texts_per_s"], 1.0)]
    rows.append(
        (
            "bf16, length-sorted",
            result["bf16_sorted_texts_per_s"],
            result["top10_overlap_bf16_vs_fp32"],
        )
    )
    if "st_encode_texts_per_s" in result:
        rows.insert(0, ("sentence-transformers encode()", result["st_encode_texts_per_s"], None))
    lines = [f"{'variant':<32}{'texts/s':>10}{'top-10 overlap vs fp32':>26}"]
    for name, rate, overlap in rows:
        shown = "-" if overlap is None else f"{overlap:.4f}"
        lines.append(f"{name:<32}{rate:>10.1f}{shown:>26}")
    cos = result["cosine_bf16_vs_fp32"]
    lines.append(f"cosine bf16 vs fp32: mean {cos['mean']:.5f}, min {cos['min']:.5f}")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print JSON then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    result = run(args.n, args.max_length, args.batch_size, args.repeats)
    print(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
