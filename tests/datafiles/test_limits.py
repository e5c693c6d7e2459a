"""datafiles.ReadLimits: every bound on reading a file, each tested with a crafted file that is
small on disk (no database). End to end (settings, the version's reason, memory of
import_dataset) in tests/governance/test_profiling_bombs.py."""

from __future__ import annotations

import gzip
import io
import json
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datafiles.limits
from datafiles import ReadLimits, decoding, iter_frames
from tests.datafiles.files import read_error, rows_read, write, zipped

MIB = 1 << 20


def gzip_of_chunks(path: Path, head: bytes, chunk: bytes, count: int, tail: bytes = b"") -> Path:
    """A gzip of head + chunk * count + tail, written without holding it whole."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(head)
        for _ in range(count):
            out.write(chunk)
        out.write(tail)
    return path


# --- line length -------------------------------------------------------------------------------


def test_defaults():
    limits = ReadLimits()
    assert (limits.max_line_chars, limits.max_unpacked_bytes) == (16 * MIB, 4 << 30)
    assert (limits.max_ratio, limits.ratio_from_bytes) == (100, 64 * MIB)
    assert (limits.max_zip_members, limits.max_seconds) == (1000, None)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_one_huge_gzipped_line_fails_fast_at_the_default_limit(tmp_path, fmt):
    """A 40 KB gzip holding one 40 MiB line without a newline: refused once 16 MiB are read,
    instead of building the whole line by quadratic copying (the old reader)."""
    name, head = ("a.csv.gz", b"") if fmt == "csv" else ("a.jsonl.gz", b'{"a": "')
    path = gzip_of_chunks(tmp_path / name, head, b"a" * MIB, 40)
    assert path.stat().st_size < 60_000
    started = time.monotonic()
    error = read_error(path, fmt=fmt)
    assert time.monotonic() - started < 20  # seconds, not minutes; generous for a loaded CI machine
    assert (error.code, error.line) == ("too_large", 1)
    assert error.message.startswith("Line 1 is longer than 16 MiB"), error.message
    assert "stored file is kept" in error.message


@pytest.mark.parametrize(
    ("fmt", "name", "lines"),
    [
        ("csv", "a.csv", ["id,name", "1,ok", "2," + "x" * 200, "3,ok"]),
        ("tsv", "a.tsv", ["id\tname", "1\tok", "2\t" + "x" * 200, "3\tok"]),
        ("jsonl", "a.jsonl", ['{"id": 1}', '{"id": 2}', '{"id": "' + "x" * 200 + '"}']),
    ],
)
def test_the_first_line_over_the_limit_is_named(tmp_path, fmt, name, lines):
    path = write(tmp_path, name, "\n".join(lines) + "\n")
    error = read_error(path, fmt=fmt, limits=ReadLimits(max_line_chars=100))
    assert (error.code, error.line) == ("too_large", 3)
    assert error.message.startswith("Line 3 is longer than 100 bytes"), error.message


def test_a_line_exactly_at_the_limit_is_read(tmp_path):
    longest = "2," + "x" * 98  # 100 characters
    path = write(tmp_path, "a.csv", f"id,name\n1,ok\n{longest}\n")
    assert rows_read(path, fmt="csv", limits=ReadLimits(max_line_chars=100)) == 2


def test_a_long_line_across_many_blocks_counts_from_its_start(tmp_path):
    """The unfinished line is carried over block boundaries (1 Mi characters) and checked as it
    grows: 3 MiB of header with a 2 MiB limit fails on line 1."""
    path = write(tmp_path, "a.csv", "x" * (3 * MIB) + "\n1\n")
    error = read_error(path, fmt="csv", limits=ReadLimits(max_line_chars=2 * MIB))
    assert error.line == 1 and "Line 1 is longer than 2 MiB" in error.message


def test_a_long_line_in_a_zip_member_names_the_member(tmp_path):
    path = write(
        tmp_path, "a.csv.zip", zipped({"ok.csv": "id\n1\n", "bad.csv": "id\n" + "9" * 500})
    )
    error = read_error(path, fmt="csv", limits=ReadLimits(max_line_chars=100))
    assert error.message.startswith("Line 2 of zip member 'bad.csv' is longer than 100 bytes")


def test_a_json_record_over_the_limit(tmp_path):
    records = [{"id": 1}, {"id": 2, "text": "x" * 5000}]
    path = write(tmp_path, "a.json", json.dumps(records, indent=1))
    error = read_error(path, fmt="json", limits=ReadLimits(max_line_chars=1000))
    assert error.code == "too_large"
    assert error.message.startswith("The JSON record starting on line 5 is longer than 1000 bytes")


def test_a_json_array_on_one_line_is_not_bound_by_the_line_limit(tmp_path):
    """A minified JSON array is one long line of small records: only each record is bounded."""
    records = [{"id": n, "name": f"item {n}"} for n in range(2000)]
    path = write(tmp_path, "a.json", json.dumps(records))
    assert path.stat().st_size > 10_000
    assert rows_read(path, fmt="json", limits=ReadLimits(max_line_chars=1000)) == 2000


# --- decompressed bytes: absolute and ratio ----------------------------------------------------


def test_gzip_decompressing_past_the_absolute_limit(tmp_path):
    path = gzip_of_chunks(tmp_path / "a.csv.gz", b"id,name\n", b"1,apple\n" * 1000, 1000)
    limits = ReadLimits(max_unpacked_bytes=2 * MIB, max_ratio=10_000)
    error = read_error(path, fmt="csv", limits=limits)
    assert error.code == "too_large"
    assert error.message.startswith("The file decompresses to more than 2 MiB"), error.message


def test_gzip_with_a_huge_ratio_is_a_bomb(tmp_path):
    """8 MB of repeated rows gzip to ~20 KB (400x): refused once 100x is passed."""
    path = gzip_of_chunks(tmp_path / "a.csv.gz", b"id,name\n", b"1,apple\n" * 1000, 1000)
    limits = ReadLimits(ratio_from_bytes=MIB)
    error = read_error(path, fmt="csv", limits=limits)
    assert error.code == "too_large"
    assert "decompresses to more than 100 times its size" in error.message, error.message
    assert "compression bomb" in error.message


def test_the_ratio_applies_only_beyond_its_floor(tmp_path):
    """Small files that compress very well (here ~400x) still read under the defaults."""
    path = gzip_of_chunks(tmp_path / "a.csv.gz", b"id,name\n", b"1,apple\n" * 1000, 100)
    assert rows_read(path, fmt="csv") == 100_000


def test_zip_bomb_is_refused_from_its_stated_sizes_before_reading(tmp_path):
    """A zip of 64 MiB of zeros (~64 KB on disk): its table of contents already says too much."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("a.csv", "w") as member,
    ):
        member.write(b"id\n")
        for _ in range(64):
            member.write(b"0\n" * (MIB // 2))
    path = write(tmp_path, "a.csv.zip", buffer.getvalue())
    assert path.stat().st_size < 200_000
    started = time.monotonic()
    error = read_error(path, fmt="csv", limits=ReadLimits(ratio_from_bytes=MIB))
    assert time.monotonic() - started < 10  # generous for a loaded CI machine
    assert "decompresses to more than 100 times its size" in error.message, error.message


def test_zip_members_decompressed_bytes_add_up(tmp_path):
    members = {f"part{n}.csv": "id\n" + "1\n" * 300_000 for n in range(4)}  # 600 KB each
    path = write(tmp_path, "a.csv.zip", zipped(members))
    limits = ReadLimits(max_unpacked_bytes=2 * MIB, max_ratio=10_000)
    assert "decompresses to more than 2 MiB" in read_error(path, fmt="csv", limits=limits).message


def test_gzipped_parquet_is_not_unpacked_past_the_limit(tmp_path):
    """The temporary copy of a compressed Parquet file is bounded like any decompression."""
    frame = pa.table({"id": np.arange(1_000_000), "zero": np.zeros(1_000_000)})
    buffer = io.BytesIO()
    pq.write_table(frame, buffer, compression="none")
    path = write(tmp_path, "a.parquet.gz", gzip.compress(buffer.getvalue(), compresslevel=1))
    limits = ReadLimits(max_unpacked_bytes=4 * MIB, max_ratio=10_000)
    error = read_error(path, fmt="parquet", limits=limits)
    assert error.message.startswith("The file decompresses to more than 4 MiB"), error.message


def test_parquet_of_a_billion_equal_values_is_refused_from_its_footer(tmp_path):
    """Run-length encoding makes 10 million zeros a few KB on disk; decoded they are 80 MB. The
    default limits refuse it before decoding anything."""
    path = tmp_path / "zeros.parquet"
    pq.write_table(pa.table({"zero": np.zeros(10_000_000, dtype="int64")}), path)
    assert path.stat().st_size < 200_000
    started = time.monotonic()
    error = read_error(path, fmt="parquet")
    assert time.monotonic() - started < 10  # generous for a loaded CI machine
    assert error.code == "too_large"
    assert "The Parquet data decodes to more than 100 times its size" in error.message


def test_parquet_with_one_huge_compressed_value(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": ["a" * (4 * MIB)]}), path, compression="zstd")
    assert path.stat().st_size < 10_000
    error = read_error(path, fmt="parquet", limits=ReadLimits(ratio_from_bytes=MIB))
    assert "The Parquet data decodes to more than 100 times its size" in error.message
    limits = ReadLimits(max_unpacked_bytes=2 * MIB)
    error = read_error(path, fmt="parquet", limits=limits)
    assert error.message.startswith("The Parquet data decodes to more than 2 MiB")


# --- zip members -------------------------------------------------------------------------------


def test_zip_with_more_members_than_the_default_limit(tmp_path):
    members = {f"part{n:04d}.csv": "id\n1\n" for n in range(1001)}
    path = write(tmp_path, "a.csv.zip", zipped(members))
    assert path.stat().st_size < 200_000
    error = read_error(path, fmt="csv")
    assert error.code == "too_large"
    assert error.message.startswith("The zip archive holds more than 1,000 members (1,001)")


def test_zip_with_exactly_the_limit_of_members(tmp_path):
    path = write(tmp_path, "a.csv.zip", zipped({f"p{n}.csv": "id\n1\n" for n in range(5)}))
    assert rows_read(path, fmt="csv", limits=ReadLimits(max_zip_members=5)) == 5


def _understate_entries(data: bytes, entries: int) -> bytes:
    """The zip with its end record claiming `entries` members."""
    at = data.rfind(b"PK\x05\x06")
    return data[: at + 8] + struct.pack("<2H", entries, entries) + data[at + 12 :]


def test_zip_whose_end_record_understates_its_members(tmp_path):
    data = _understate_entries(zipped({f"p{n}.csv": "id\n1\n" for n in range(5)}), 1)
    path = write(tmp_path, "a.csv.zip", data)
    error = read_error(path, fmt="csv", limits=ReadLimits(max_zip_members=2))
    assert error.message.startswith("The zip archive holds more than 2 members (5)")


def test_zip_whose_table_of_contents_is_too_large_is_not_parsed(tmp_path):
    long_names = {f"{n}{'x' * 5000}.csv": "id\n1\n" for n in range(3)}
    path = write(tmp_path, "a.csv.zip", _understate_entries(zipped(long_names), 1))
    error = read_error(path, fmt="csv", limits=ReadLimits(max_zip_members=2))
    assert error.message.startswith("The zip archive's table of contents (14.")
    assert "larger than 2 members need" in error.message


# --- time --------------------------------------------------------------------------------------


def test_reading_stops_at_its_time_limit(tmp_path):
    """A slow path (one row per chunk) with a tiny limit: stopped mid-way, soon after it."""
    path = write(tmp_path, "a.csv", "id,name\n" + "".join(f"{n},x{n}\n" for n in range(50_000)))
    started = time.monotonic()
    error = read_error(path, fmt="csv", chunk_rows=1, limits=ReadLimits(max_seconds=0.3))
    assert time.monotonic() - started < 10  # generous for a loaded CI machine
    assert error.code == "too_slow"
    assert error.message.startswith("Profiling took longer than 0.3 s"), error.message


def test_without_a_time_limit_the_same_read_completes(tmp_path):
    path = write(tmp_path, "a.csv", "id,name\n" + "".join(f"{n},x{n}\n" for n in range(100)))
    frames = list(iter_frames(path, fmt="csv", chunk_rows=1))
    assert len(frames) == 100


# --- chunks: rows, and characters --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_a_chunk_also_ends_when_its_text_is_long(tmp_path, monkeypatch, fmt):
    """Long lines under the line limit: a chunk of `chunk_rows` of them could still be most of a
    4 GiB decompressed file, so a chunk also ends at CHUNK_CHARS characters."""
    monkeypatch.setattr(datafiles.limits, "CHUNK_CHARS", 2500)
    monkeypatch.setattr(decoding, "_BLOCK_CHARS", 100)  # little read ahead of the chunk
    texts = [f"{n}" + "x" * 1000 for n in range(10)]
    if fmt == "csv":
        data = "text\n" + "\n".join(texts) + "\n"
    elif fmt == "jsonl":
        data = "\n".join(json.dumps({"text": t}) for t in texts) + "\n"
    else:
        data = json.dumps([{"text": t} for t in texts])
    path = write(tmp_path, f"a.{fmt}", data)
    frames = list(iter_frames(path, fmt=fmt))
    assert [len(frame) for frame in frames] == [3, 3, 3, 1]
    assert pd.concat(frames)["text"].tolist() == texts
