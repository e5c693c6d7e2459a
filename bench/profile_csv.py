"""Benchmark governance.profiling on a large CSV catalog: rows/s and peak memory.

Generates a deterministic (seeded) product catalog CSV, 1,000,000 rows (~200 MB) by default, in a
temporary folder, then profiles it with a key and a schema contract in a child process and reads
that process's peak RSS (ru_maxrss), so the generator's memory does not count. Prints a JSON
object and a small table.

    .venv/bin/python bench/profile_csv.py [--rows N] [--chunk-rows N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_PEAK_MB = 2048
CONTRACT = {
    "columns": {
        "id": "integer",
        "sku": "string",
        "title": "string",
        "description": "string",
        "brand": "string",
        "category": "string",
        "price": "float",
        "rating": "float",
        "in_stock": "boolean",
        "released": "datetime",
        "ean": "integer",
    },
    "key": "id",
}


def _words(rng, vocabulary, rows: int, count: int):
    """`count` random words per row, joined by spaces (vectorised)."""
    import pandas as pd

    picks = [pd.Series(vocabulary[rng.integers(0, len(vocabulary), rows)]) for _ in range(count)]
    return picks[0].str.cat(picks[1:], sep=" ")


def _catalog_chunk(rng, start: int, rows: int):
    """One block of catalog rows: ~0.5% duplicated ids, a few nulls, ~200 bytes a row."""
    import numpy as np
    import pandas as pd

    vocabulary = np.array([f"w{n:03d}{'xyzab'[n % 5] * (n % 7 + 1)}" for n in range(800)])
    ids = np.arange(start, start + rows, dtype=np.int64)
    duplicate = rng.random(rows) < 0.005
    ids[duplicate] = rng.integers(0, max(start, 1), duplicate.sum())
    price = np.round(rng.gamma(2.0, 40.0, rows), 2)
    rating = np.round(rng.uniform(1, 5, rows), 1)
    frame = pd.DataFrame(
        {
            "id": ids,
            "sku": pd.Series(rng.integers(10**7, 10**8, rows)).map("SKU-{}".format),
            "title": _words(rng, vocabulary, rows, 5),
            "description": _words(rng, vocabulary, rows, 11),
            "brand": pd.Series(rng.integers(0, 40, rows)).map("Brand{:02d}".format),
            "category": pd.Series(rng.integers(0, 25, rows)).map("cat-{:02d}".format),
            "price": pd.Series(price).mask(rng.random(rows) < 0.01),
            "rating": pd.Series(rating).mask(rng.random(rows) < 0.2),
            "in_stock": rng.random(rows) < 0.8,
            "released": (
                pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3650, rows), "D")
            ).strftime("%Y-%m-%d"),
            "ean": rng.integers(10**12, 10**13, rows),
        }
    )
    return frame


def generate(path: Path, rows: int, seed: int = 20240601) -> float:
    """Write the catalog CSV in blocks of 100k rows; returns its size in MB."""
    import numpy as np

    rng = np.random.default_rng(seed)
    block = 100_000
    with open(path, "w", encoding="utf-8", newline="") as out:
        for start in range(0, rows, block):
            frame = _catalog_chunk(rng, start, min(block, rows - start))
            frame.to_csv(out, index=False, header=start == 0)
    return path.stat().st_size / 1e6


def _child(path: str, chunk_rows: int, queue) -> None:
    """Profile in a fresh process and report the profile with that process's peak RSS."""
    sys.path.insert(0, str(ROOT))
    from governance.profiling import SchemaContract, profile_file

    started = time.perf_counter()
    result = profile_file(
        path, fmt="csv", contract=SchemaContract.from_dict(CONTRACT), chunk_rows=chunk_rows
    )
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    queue.put({"profile": result, "wall_seconds": wall, "peak_rss_mb": peak_mb})


def run(rows: int, chunk_rows: int, folder: Path) -> dict:
    path = folder / "catalog.csv"
    started = time.perf_counter()
    size_mb = generate(path, rows)
    generated = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(str(path), chunk_rows, queue))
    child.start()
    measured = queue.get()
    child.join()
    profile = measured["profile"]
    return {
        "rows": profile["rows"],
        "file_mb": round(size_mb, 1),
        "chunk_rows": chunk_rows,
        "generate_seconds": round(generated, 2),
        "profile_seconds": round(measured["wall_seconds"], 2),
        "rows_per_second": round(profile["rows"] / measured["wall_seconds"]),
        "mb_per_second": round(size_mb / measured["wall_seconds"], 1),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "peak_target_mb": TARGET_PEAK_MB,
        "peak_ok": measured["peak_rss_mb"] < TARGET_PEAK_MB,
        "key": profile["key"],
        "schema_ok": profile["schema"]["ok"],
        "malformed_rows": profile["malformed_rows"]["count"],
        "path": str(path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated CSV")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="steward-bench-"))
    try:
        result = run(args.rows, args.chunk_rows, folder)
    finally:
        if not args.keep:
            for item in folder.iterdir():
                item.unlink()
            folder.rmdir()
    print(json.dumps(result, indent=2))
    print()
    for label in ("rows", "file_mb", "profile_seconds", "rows_per_second", "peak_rss_mb"):
        print(f"{label:<18}{result[label]:>14}")
    return 0 if result["peak_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
