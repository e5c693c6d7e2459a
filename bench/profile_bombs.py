"""Benchmark governance.profiling (reading through datafiles) on files that are small on disk but
huge once read.

Crafts each bomb in a temporary folder (one endless line in a gzip, a JSON record of one huge
string, a zip of many members, a zip of 1 GiB of zeros, a Parquet file of 50 million zeros),
profiles it in a child process with the default limits (and profiling's default time limit),
and reports how it ended, the wall time and the child's peak RSS. A child still running after
--timeout seconds is killed and reported as such. Prints a JSON object, then a table.

    .venv/bin/python bench/profile_bombs.py [--line-mb 300,3000] [--timeout 120]

--profiling FILE profiles with an old single-file copy of governance/profiling.py (reading and
statistics were one module until datafiles/ was split out), e.g. the code before the limits
(`git show 11c2522:governance/profiling.py > /tmp/old.py`), to measure it the same way (give it
a smaller --line-mb: the old reader's time grows with the square of the line).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import print_result  # noqa: E402

MIB = 1 << 20
PEAK_TARGET_MIB = 512
SECONDS_TARGET = 10


def one_line_gzip(path: Path, megabytes: int, head: bytes = b"", tail: bytes = b"") -> Path:
    block = b"a" * MIB
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(head)
        for _ in range(megabytes):
            out.write(block)
        out.write(tail)
    return path


def many_members(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(count):
            archive.writestr(f"part{n:05d}.csv", "id\n1\n")
    return path


def zeros_zip(path: Path, megabytes: int) -> Path:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.csv", "w", force_zip64=True) as member,
    ):
        member.write(b"id\n")
        block = b"0\n" * (MIB // 2)
        for _ in range(megabytes):
            member.write(block)
    return path


def zeros_parquet(path: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    group = pa.table({"zero": np.zeros(1_000_000, dtype="int64")})
    with pq.ParquetWriter(path, group.schema) as writer:
        for _ in range(rows // 1_000_000):
            writer.write_table(group)
    return path


def bombs(folder: Path, line_mbs: list[int]) -> list[tuple[str, Path, str]]:
    """(label, path, format) of each crafted file."""
    made = []
    for mb in line_mbs:
        made.append((f"one {mb} MB line, gzip", one_line_gzip(folder / f"l{mb}.csv.gz", mb), "csv"))
    made.append(
        (
            f"JSON record of {line_mbs[0]} MB, gzip",
            one_line_gzip(folder / "r.json.gz", line_mbs[0], b'[{"a": "', b'"}]'),
            "json",
        )
    )
    made.append(("zip of 10,000 members", many_members(folder / "m.csv.zip", 10_000), "csv"))
    made.append(("zip of 1 GiB of zeros", zeros_zip(folder / "z.csv.zip", 1024), "csv"))
    made.append(("Parquet, 50M zeros", zeros_parquet(folder / "z.parquet", 50_000_000), "parquet"))
    return made


def _child(module_file: str | None, path: str, fmt: str, queue) -> None:
    """Profile in a fresh process; report how it ended and that process's peak RSS."""
    if module_file:  # an old single-file copy: reading and statistics in one module
        spec = importlib.util.spec_from_file_location("profiling_under_test", module_file)
        profiling = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = profiling  # dataclasses look their module up
        spec.loader.exec_module(profiling)
        profile_file, read_error = profiling.profile_file, profiling.DatasetReadError
        limits_type = getattr(profiling, "ReadLimits", None)
    else:
        import datafiles
        from governance.profiling import profile_file

        read_error, limits_type = datafiles.DatasetReadError, datafiles.ReadLimits
    kwargs = {}
    if limits_type is not None:
        kwargs["limits"] = limits_type(max_seconds=1800)
    started = time.perf_counter()
    try:
        result = profile_file(path, fmt=fmt, **kwargs)
        outcome = f"profiled: {result['rows']:,} rows"
    except read_error as exc:
        outcome = f"{exc.code}: {exc.message}"
    except MemoryError:
        outcome = "MemoryError"
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    queue.put({"outcome": outcome, "seconds": round(wall, 2), "peak_rss_mib": round(peak)})


def measure(module_file: str | None, path: Path, fmt: str, timeout: float) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(module_file, str(path), fmt, queue))
    started = time.perf_counter()
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return {"outcome": f"killed after {timeout:g} s", "seconds": None, "peak_rss_mib": None}
    if queue.empty():
        wall = round(time.perf_counter() - started, 2)
        return {"outcome": f"died (exit {child.exitcode})", "seconds": wall, "peak_rss_mib": None}
    return queue.get()


def run(line_mbs: list[int], timeout: float, module_file: str | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="steward-bombs-"))
    try:
        rows = []
        for label, path, fmt in bombs(folder, line_mbs):
            measured = measure(module_file, path, fmt, timeout)
            seconds, peak = measured["seconds"], measured["peak_rss_mib"]
            ok = seconds is not None and seconds < SECONDS_TARGET
            ok = ok and peak is not None and peak < PEAK_TARGET_MIB
            ok = ok and not measured["outcome"].startswith("profiled")
            rows.append({"file": label, "on_disk_bytes": path.stat().st_size, **measured, "ok": ok})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "profiling": module_file or "governance/profiling.py",
        "targets": {"seconds": SECONDS_TARGET, "peak_rss_mib": PEAK_TARGET_MIB},
        "bombs": rows,
    }


def table(result: dict) -> str:
    lines = [f"{'file':<32}{'on disk':>12}{'seconds':>9}{'peak MiB':>10}  outcome"]
    for row in result["bombs"]:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        peak = "-" if row["peak_rss_mib"] is None else str(row["peak_rss_mib"])
        lines.append(
            f"{row['file']:<32}{row['on_disk_bytes']:>12,}{seconds:>9}{peak:>10}  "
            f"{row['outcome'][:70]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line-mb", default="300,3000", help="comma-separated line sizes, MB")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per bomb")
    parser.add_argument("--profiling", default=None, metavar="FILE", help="another profiling.py")
    args = parser.parse_args(argv)
    line_mbs = [int(part) for part in args.line_mb.split(",") if part]
    result = run(line_mbs, args.timeout, args.profiling)
    print_result(result, table)
    return 0 if all(row["ok"] for row in result["bombs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
