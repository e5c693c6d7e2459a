"""Benchmark recsys.pipelines.indexing: build time, memory, size, search latency and recall@10.

For each size (default 20,000; ``--sizes 20000,200000,1000000`` for the full set) a fresh child
process generates seeded random L2-normalised float32 vectors (dim 384; ``--clustered`` draws
them around random centres so they are less uniform), builds the index with ``build_index``
(``--kind auto``: flat below 200k, HNSW from there, as ``choose_kind``; efSearch tuning included
in the build time), and measures:

- build seconds and the peak RSS above the RSS just before the build (the child resets its
  high-water mark through /proc/self/clear_refs; ru_maxrss when that is not allowed);
- the artifact's size on disk (index.faiss, and the folder with ids.json and meta.json);
- load seconds (``load_index``, checksums verified, memory-mapped where faiss allows);
- single-query latency p50/p99 of ``LoadedIndex.search`` (k=10, 1,000 queries, after warm-up);
- recall@10 against ``exact_search`` on 200 queries.

When HNSW cannot reach its recall target with an efSearch cheaper than a flat scan (uniform
random vectors at 384 dims are the hard case), ``build_index`` ships an exact flat index instead:
the row's kind reads ``flat*`` and the reason (with the recall the graph reached) is printed
under the table and kept in the JSON as ``fallback_reason``.

Queries are catalogue vectors plus Gaussian noise of about their own norm, re-normalised (as the
build's tuning queries, with another seed). Prints a JSON object and a table.

    .venv/bin/python bench/index_build.py [--sizes 20000,200000,1000000] [--kind auto]
        [--clustered] [--dim 384] [--queries 1000] [--recall-queries 200] [--seed 0] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

from bench_common import print_result

ROOT = Path(__file__).resolve().parents[1]


def _rss_kib(field: str) -> int | None:
    """A Vm* field of /proc/self/status in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def make_vectors(n: int, dim: int, seed: int, clustered: bool):
    """Seeded L2-normalised float32 vectors, generated in blocks (bounded temporaries).

    Clustered: ~sqrt(n) random centres, each vector a centre plus noise of norm ~0.6 of it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    centres = None
    if clustered:
        centres = rng.standard_normal((max(2, int(np.sqrt(n))), dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    block = 50_000
    for start in range(0, n, block):
        rows = min(block, n - start)
        x = rng.standard_normal((rows, dim), dtype=np.float32)
        if centres is not None:
            x *= 0.6 / np.sqrt(dim)
            x += centres[rng.integers(0, len(centres), rows)]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + rows] = x
    return out


def make_queries(emb, n: int, seed: int):
    """Catalogue vectors plus Gaussian noise of about their own norm, re-normalised."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(emb), size=min(n, len(emb)), replace=False)
    noise = rng.standard_normal((len(pick), emb.shape[1]), dtype=np.float32)
    q = emb[pick] + noise / np.sqrt(emb.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _folder_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def measure(size: int, opts: dict, folder: str) -> dict:
    """Generate, build, load, search and check recall for one size (run in a child process)."""
    sys.path.insert(0, str(ROOT))
    import faiss
    import numpy as np

    if opts["threads"]:
        faiss.omp_set_num_threads(opts["threads"])
    from recsys.pipelines.indexing import (
        INDEX_FILE,
        build_index,
        exact_search,
        load_index,
        recall_vs_exact,
    )

    started = time.perf_counter()
    emb = make_vectors(size, opts["dim"], opts["seed"], opts["clustered"])
    ids = [f"p{i:07d}" for i in range(size)]
    queries = make_queries(emb, max(opts["queries"], opts["recall_queries"]), opts["seed"] + 1)
    generate_s = time.perf_counter() - started

    out = os.path.join(folder, f"index-{size}")
    rss_before = _rss_kib("VmRSS")
    reset = _reset_peak()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    info = build_index(emb, ids, out, kind=opts["kind"])
    build_s = time.perf_counter() - started
    if reset:
        peak_delta_kib = (_rss_kib("VmHWM") or 0) - (rss_before or 0)
        peak_method = "VmHWM after clear_refs"
    else:
        peak_delta_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
        peak_method = "ru_maxrss delta (lower bound)"

    started = time.perf_counter()
    loaded = load_index(out)
    load_s = time.perf_counter() - started

    k = 10
    for q in queries[:20]:  # warm-up
        loaded.search(q[None, :], k)
    latencies = []
    for q in queries[: opts["queries"]]:
        t0 = time.perf_counter_ns()
        loaded.search(q[None, :], k)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    lat = np.array(latencies)

    recall_q = queries[: opts["recall_queries"]]
    _scores, found = loaded.search(recall_q, k)
    started = time.perf_counter()
    _scores, exact = exact_search(emb, ids, recall_q, k)
    exact_s = time.perf_counter() - started
    recall = recall_vs_exact(found, exact, k)
    return {
        "n": size,
        "kind": info.kind,
        "params": info.params,
        "fallback_reason": info.params.get("fallback_reason"),
        "generate_seconds": round(generate_s, 2),
        "build_seconds": round(build_s, 2),
        "build_recall_at_10_tuning": round(float(info.recall_at_10 or 0.0), 4),
        "vectors_mb": round(emb.nbytes / 2**20, 1),
        "rss_before_build_mb": round((rss_before or 0) / 1024, 1),
        "peak_rss_delta_mb": round(peak_delta_kib / 1024, 1),
        "peak_method": peak_method,
        "index_file_mb": round(os.path.getsize(os.path.join(out, INDEX_FILE)) / 2**20, 1),
        "artifact_mb": round(_folder_bytes(out) / 2**20, 1),
        "load_seconds": round(load_s, 3),
        "mmapped": loaded.mmapped,
        "latency_ms": {
            "queries": len(lat),
            "p50": round(float(np.percentile(lat, 50)), 3),
            "p99": round(float(np.percentile(lat, 99)), 3),
            "mean": round(float(lat.mean()), 3),
        },
        "recall_at_10_vs_exact": round(recall, 4),
        "recall_queries": len(recall_q),
        "exact_search_ms_per_query": round(1000 * exact_s / len(recall_q), 3),
        "faiss_threads": faiss.omp_get_max_threads(),
    }


def _child(size: int, opts: dict, folder: str, queue) -> None:
    try:
        queue.put(measure(size, opts, folder))
    except Exception as exc:  # reported in the JSON; the parent must not hang
        queue.put({"n": size, "error": f"{type(exc).__name__}: {exc}"})


def _wait(child, queue, size: int) -> dict:
    """The child's result, or an error entry if it died without one (e.g. killed for memory)."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not child.is_alive():
                return {"n": size, "error": f"child exited with code {child.exitcode}"}


def run(sizes: list[int], opts: dict) -> dict:
    """One child process per size (clean memory accounting); returns the JSON-able result."""
    load_start = os.getloadavg()
    context = multiprocessing.get_context("spawn")
    results = []
    folder = tempfile.mkdtemp(prefix="steward-bench-index-")
    try:
        for size in sizes:
            queue = context.Queue()
            child = context.Process(target=_child, args=(size, opts, folder, queue))
            child.start()
            results.append(_wait(child, queue, size))
            child.join()
            shutil.rmtree(os.path.join(folder, f"index-{size}"), ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "dim": opts["dim"],
        "kind": opts["kind"],
        "clustered": opts["clustered"],
        "seed": opts["seed"],
        "cpus": os.cpu_count(),
        "results": results,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }


def table(result: dict) -> str:
    """The results as a small text table, one row per size."""
    head = (
        f"{'n':>9} {'kind':<6}{'build s':>9}{'peak MB':>9}{'disk MB':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}  params"
    )
    lines, notes = [head], []
    for r in result["results"]:
        if "error" in r:
            lines.append(f"{r['n']:>9} error: {r['error']}")
            continue
        lat = r["latency_ms"]
        kind, params = r["kind"], r["params"]
        if r.get("fallback_reason"):
            kind, params = f"{kind}*", params.get("hnsw_tried", {})
            notes.append(f"* n={r['n']}: {r['fallback_reason']}")
        lines.append(
            f"{r['n']:>9} {kind:<6}{r['build_seconds']:>9.2f}{r['peak_rss_delta_mb']:>9.1f}"
            f"{r['artifact_mb']:>9.1f}{lat['p50']:>9.3f}{lat['p99']:>9.3f}"
            f"{r['recall_at_10_vs_exact']:>11.4f}  {json.dumps(params)}"
        )
    lines += notes
    lines.append(
        f"dim {result['dim']}, {'clustered' if result['clustered'] else 'uniform'} vectors, "
        f"load average {result['load_average_start'][0]} -> {result['load_average_end'][0]}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print JSON then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000", help="comma-separated vector counts")
    parser.add_argument("--kind", default="auto", choices=["auto", "flat", "hnsw", "ivfpq"])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clustered", action="store_true", help="vectors around random centres")
    parser.add_argument("--queries", type=int, default=1000, help="single-query latency runs")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="faiss threads (0: default)")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    opts = {
        "dim": args.dim,
        "kind": args.kind,
        "clustered": args.clustered,
        "seed": args.seed,
        "queries": args.queries,
        "recall_queries": args.recall_queries,
        "threads": args.threads,
    }
    result = run(sizes, opts)
    print_result(result, table)
    return 1 if any("error" in r for r in result["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
