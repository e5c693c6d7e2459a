"""What reading one file may cost: `ReadLimits`, and the running count of one read against them.

A file that is small on disk can still be huge once read (one endless line, a compression bomb, a
zip of a million members, a Parquet column of a billion zeros), so every read is bounded: line
length, decompressed bytes (absolute, and as a multiple of the size on disk), zip members and,
for profiling, wall-clock time. Passing one ends the read with a DatasetReadError naming the
limit (code `too_large`, or `too_slow` for the time)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from datafiles.errors import DatasetReadError

CHUNK_CHARS = 64 << 20  # a chunk also ends once its text reaches this many characters


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on reading one file, so that a file small on disk cannot make a reader build a
    multi-GB string, fill the disk or memory, or run for hours.

    - `max_line_chars`: a line of CSV, TSV or JSON Lines, or one record of a JSON array (counted
      in decoded characters; each is at least one byte, so "longer than 16 MiB" holds).
    - `max_unpacked_bytes`: what a gzip or zip may decompress to, and what a Parquet file may
      decode to (all its columns).
    - `max_ratio`: the same, as a multiple of the compressed size on disk; checked only beyond
      `ratio_from_bytes`, so a small file that compresses extremely well still reads.
    - `max_zip_members`: entries in a zip archive (checked before its table of contents is read).
    - `max_seconds`: wall-clock time of the whole read (None: no limit).

    The defaults are those of the settings (STEWARD_PROFILE_*), except the time, which only
    profiling bounds."""

    max_line_chars: int = 16 << 20
    max_unpacked_bytes: int = 4 << 30
    max_ratio: float = 100.0
    ratio_from_bytes: int = 64 << 20
    max_zip_members: int = 1000
    max_seconds: float | None = None


def byte_size(count: float) -> str:
    """A byte count for a message: 16 MiB, 4 GiB, 1.5 KiB, 300 bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(count)} bytes"


class Budget:
    """What one read has used of its ReadLimits: the time since it started, and the bytes that
    its gzip or zip wrapper has decompressed so far."""

    def __init__(self, limits: ReadLimits, packed_bytes: int):
        self.limits = limits
        self.started = time.monotonic()
        self.unpacked = Expansion(limits, packed_bytes, "The file decompresses")

    def tick(self) -> None:
        """Raise too_slow once the read has taken longer than `max_seconds`."""
        limit = self.limits.max_seconds
        if limit is not None and time.monotonic() - self.started > limit:
            raise DatasetReadError(
                "too_slow",
                f"Profiling took longer than {limit:g} s and was stopped; the stored file is "
                "kept. Split the file, or ask an administrator to raise the time limit.",
            )


class Expansion:
    """Bytes produced from `packed_bytes` on disk (decompressed, or decoded from Parquet),
    checked against the absolute limit and the ratio."""

    def __init__(self, limits: ReadLimits, packed_bytes: int, what: str):
        self.limits = limits
        self.packed = max(packed_bytes, 1)
        self.what = what
        self.count = 0

    def add(self, count: int) -> None:
        self.count += count
        self.check(self.count)

    def check(self, total: int) -> None:
        """Raise too_large when `total` bytes would pass a limit."""
        limits = self.limits
        if total > limits.max_unpacked_bytes:
            raise DatasetReadError(
                "too_large",
                f"{self.what} to more than {byte_size(limits.max_unpacked_bytes)}, the most that "
                "is read; the stored file is kept.",
            )
        if total > max(limits.ratio_from_bytes, limits.max_ratio * self.packed):
            raise DatasetReadError(
                "too_large",
                f"{self.what} to more than {limits.max_ratio:g} times its size "
                f"(at least {byte_size(total)} from {byte_size(self.packed)} on disk): this looks "
                "like a compression bomb and is not read further; the stored file is kept.",
            )
