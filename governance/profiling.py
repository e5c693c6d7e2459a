"""Profile a stored dataset file: row count, per-column types and statistics, key duplicates,
schema-contract check, encoding problems and malformed rows.

A Celery worker calls `profile_file` on a file that was stored first; the result is a plain,
JSON-serialisable dict that the services layer keeps on the dataset version and checks SLAs
against. The module has no Django imports so that it can be tested (and benchmarked) alone.

Memory stays bounded whatever the file size: files are read in chunks of `chunk_rows` rows, text is
decoded in blocks of about 1 MiB, and only these survive between chunks: per-column running
statistics, at most `low_cardinality` distinct values per column, and one 64-bit hash per non-null
key value (8 bytes a row, compacted to the distinct keys) for the duplicate rate. A line (or a
JSON record) is held whole, and a compressed Parquet file is first unpacked to a temporary file.

A file that is small on disk can still be huge once read (one endless line, a compression bomb, a
zip of a million members, a Parquet column of a billion zeros), so every read is bounded by
`ReadLimits`: line length, decompressed bytes (absolute, and as a multiple of the size on disk),
zip members and, for profiling, wall-clock time. Passing one ends the read with a
DatasetReadError naming the limit (code `too_large`, or `too_slow` for the time).

`iter_frames` (and `read_chorus_products`) expose the same chunk reader to the cleaning code.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gzip
import io
import itertools
import json
import math
import re
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import pandas as pd
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
)

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "chorus-products", "chorus-judgments")
COLUMN_TYPES = ("string", "integer", "float", "boolean", "datetime")

CHORUS_PRODUCT_COLUMNS = ("id", "title", "brand", "price", "ean", "description", "attributes")
CHORUS_JUDGMENT_COLUMNS = ("query", "product_id", "grade")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
_WRAPPERS = {".gz": "gzip", ".zip": "zip"}
_BASE_OF = {"chorus-products": "json", "chorus-judgments": "csv"}
_DEFAULT_KEYS = {"chorus-products": "id"}
_FORMAT_NAMES = {
    "csv": "CSV",
    "tsv": "TSV",
    "jsonl": "JSON Lines",
    "json": "JSON",
    "parquet": "Parquet",
    "chorus-products": "Chorus product JSON",
    "chorus-judgments": "Chorus judgments CSV",
}
# What the first bytes (after unwrapping) may look like for each base format; "empty" and
# "blank" always pass here and are reported as code="empty" once reading finds no rows.
_ACCEPTS = {
    "csv": {"text"},
    "tsv": {"text"},
    "jsonl": {"json-object"},
    "json": {"json-array", "json-object"},
    "parquet": {"parquet"},
}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"%PDF-", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"PAR1", "parquet"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x7fELF", "elf"),
    (b"SQLite format 3\x00", "sqlite"),
)
_CONTENT_NAMES = {
    "png": "a PNG image",
    "pdf": "a PDF document",
    "zip": "a zip archive",
    "xlsx": "an Excel workbook (.xlsx)",
    "gzip": "gzip-compressed data",
    "parquet": "a Parquet file",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "ole": "a legacy Office document (such as .xls or .doc)",
    "bzip2": "bzip2-compressed data",
    "xz": "xz-compressed data",
    "7z": "a 7-Zip archive",
    "elf": "an executable program",
    "sqlite": "an SQLite database",
    "json-array": "a JSON array",
    "json-object": "JSON objects",
    "text": "delimited text (CSV/TSV)",
    "binary": "binary data",
}

_HEAD_BYTES = 1 << 16
_BLOCK_CHARS = 1 << 20
_CHUNK_CHARS = 64 << 20  # a chunk also ends once its text reaches this many characters
_KEY_COMPACT_AT = 4_000_000
_NON_SPACE = re.compile(r"[^ \t\r\n]")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_INFERRED_KINDS = {
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "boolean",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


class DatasetReadError(Exception):
    """A file that cannot be profiled.

    `code` is a short machine word (empty, truncated, wrong_content, malformed, too_large,
    too_slow, unsupported_format), `message` a specific sentence for the uploader, `line` the
    1-based line where the problem sits when one is known."""

    def __init__(self, code: str, message: str, *, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "line": self.line}


@dataclass(frozen=True)
class SchemaContract:
    """The columns a dataset must have, with their types, and the key whose duplicates count."""

    columns: dict[str, str]
    key: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> SchemaContract | None:
        """Build a contract from its stored form {"columns": {name: type}, "key": name}; None
        stays None. Raises ValueError naming the bad part, so a form can show it."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError("A schema contract must be an object with 'columns' and 'key'.")
        unknown = sorted(set(data) - {"columns", "key"})
        if unknown:
            raise ValueError(f"Unknown schema contract field(s): {', '.join(unknown)}.")
        columns = data.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise ValueError("'columns' must be a non-empty object of column name -> type.")
        for name, kind in columns.items():
            if not isinstance(name, str) or not name:
                raise ValueError("Column names must be non-empty strings.")
            if kind not in COLUMN_TYPES:
                raise ValueError(
                    f"Column {name!r} has type {kind!r}; use one of {', '.join(COLUMN_TYPES)}."
                )
        key = data.get("key")
        if key is not None and key not in columns:
            raise ValueError(f"The key {key!r} must be one of the contract's columns.")
        return cls(columns=dict(columns), key=key)

    def to_dict(self) -> dict:
        return {"columns": dict(self.columns), "key": self.key}


@dataclass
class ReadReport:
    """What reading a file found besides its rows: the text encoding, how many undecodable byte
    sequences were replaced by U+FFFD, and the malformed rows that were skipped."""

    max_examples: int = 50
    encoding: str = "utf-8"
    replaced_characters: int = 0
    rows: int = 0
    malformed_count: int = 0
    malformed_examples: list[dict] = field(default_factory=list)
    header: list[str] | None = None
    member: str | None = None
    hint: str = ""

    def bad(self, line: int | None, error: str) -> None:
        """Count a skipped row; keep the first `max_examples` with their physical line."""
        self.malformed_count += 1
        if len(self.malformed_examples) < self.max_examples:
            example: dict[str, Any] = {"line": line, "error": error}
            if self.member:
                example["member"] = self.member
            self.malformed_examples.append(example)


# --- limits: what reading one file may cost ----------------------------------------------------


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


def _size(count: float) -> str:
    """A byte count for a message: 16 MiB, 4 GiB, 1.5 KiB, 300 bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(count)} bytes"


class _Budget:
    """What one read has used of its ReadLimits: the time since it started, and the bytes that
    its gzip or zip wrapper has decompressed so far."""

    def __init__(self, limits: ReadLimits, packed_bytes: int):
        self.limits = limits
        self.started = time.monotonic()
        self.unpacked = _Expansion(limits, packed_bytes, "The file decompresses")

    def tick(self) -> None:
        """Raise too_slow once the read has taken longer than `max_seconds`."""
        limit = self.limits.max_seconds
        if limit is not None and time.monotonic() - self.started > limit:
            raise DatasetReadError(
                "too_slow",
                f"Profiling took longer than {limit:g} s and was stopped; the stored file is "
                "kept. Split the file, or ask an administrator to raise the time limit.",
            )


class _Expansion:
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
                f"{self.what} to more than {_size(limits.max_unpacked_bytes)}, the most that "
                "is read; the stored file is kept.",
            )
        if total > max(limits.ratio_from_bytes, limits.max_ratio * self.packed):
            raise DatasetReadError(
                "too_large",
                f"{self.what} to more than {limits.max_ratio:g} times its size "
                f"(at least {_size(total)} from {_size(self.packed)} on disk): this looks like a "
                "compression bomb and is not read further; the stored file is kept.",
            )


# --- decoding: replace undecodable bytes, and count them --------------------------------------

_ERRORS = "steward-count-replace"
_DECODING_REPORT: ContextVar[ReadReport | None] = ContextVar("steward_decoding", default=None)


def _count_and_replace(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: like errors="replace", and counts into the active ReadReport."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    report = _DECODING_REPORT.get()
    if report is not None:
        report.replaced_characters += 1
    return "\ufffd", exc.end


codecs.register_error(_ERRORS, _count_and_replace)


def _text_encoding(head: bytes) -> tuple[str, str]:
    """(codec, label) for a text stream from its first bytes: a BOM decides; UTF-16 without a BOM
    is recognised by its zero bytes; anything else is read as UTF-8."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "utf-8"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32", "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "utf-16"
    even, odd = head[0:512:2], head[1:512:2]
    if len(odd) >= 2:
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le", "utf-16-le"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be", "utf-16-be"
    return "utf-8", "utf-8"


def _text_blocks(binary: IO[bytes], report: ReadReport, budget: _Budget) -> Iterator[str]:
    """Decode a binary stream in ~1 MiB blocks, universal newlines, counting replaced bytes;
    the time limit is checked at each block."""
    codec, label = _text_encoding(binary.peek(_HEAD_BYTES)[:512])
    if label != "utf-8":
        report.encoding = label
    text = io.TextIOWrapper(binary, encoding=codec, errors=_ERRORS, newline=None)
    try:
        while True:
            budget.tick()
            token = _DECODING_REPORT.set(report)
            try:
                block = text.read(_BLOCK_CHARS)
            finally:
                _DECODING_REPORT.reset(token)
            if not block:
                return
            yield block
    finally:
        with contextlib.suppress(ValueError):  # the stream may be closed already
            text.detach()


def _line_too_long(number: int, limit: int, member: str | None) -> DatasetReadError:
    where = f" of zip member {member!r}" if member else ""
    return DatasetReadError(
        "too_large",
        f"Line {number}{where} is longer than {_size(limit)}, the longest line that is read (is "
        "a line break missing, or is this not line-based text?); the stored file is kept.",
        line=number,
    )


def _split_lines(
    blocks: Iterable[str], max_chars: int, member: str | None = None
) -> Iterator[list[str]]:
    """The lines of text blocks (without their "\\n"), a list per block; a last line without
    "\\n" comes alone at the end. An unfinished line is kept as a list of pieces (joined once,
    when it ends), and a line longer than `max_chars` raises too_large as soon as it is seen."""
    pending: list[str] = []  # pieces of the line that the next block continues
    pending_chars = 0
    number = 1  # line number of the first line not yet yielded
    for block in blocks:
        if "\n" not in block:
            pending.append(block)
            pending_chars += len(block)
            if pending_chars > max_chars:
                raise _line_too_long(number, max_chars, member)
            continue
        parts = block.split("\n")
        if pending:
            parts[0] = "".join(pending) + parts[0]
        tail = parts.pop()
        pending, pending_chars = ([tail], len(tail)) if tail else ([], 0)
        lengths = list(map(len, parts))
        if max(lengths) > max_chars:
            longest = next(i for i, length in enumerate(lengths) if length > max_chars)
            raise _line_too_long(number + longest, max_chars, member)
        number += len(parts)
        if pending_chars > max_chars:
            raise _line_too_long(number, max_chars, member)
        yield parts
    if pending:
        yield ["".join(pending)]


def _lines(blocks: Iterable[str], max_chars: int, member: str | None = None) -> Iterator[str]:
    """Split text blocks into lines, each ending with "\\n" (one is added to a last bare line)."""
    for parts in _split_lines(blocks, max_chars, member):
        for part in parts:
            yield part + "\n"


# --- content sniffing and detect_format --------------------------------------------------------


def _sniff(head: bytes) -> str:
    """Name what the first bytes look like: a known binary format by its magic number, else
    "json-array", "json-object", "text", "binary", "blank" (whitespace) or "empty"."""
    for magic, label in _MAGIC:
        if head.startswith(magic):
            return label
    if not head:
        return "empty"
    codec, _label = _text_encoding(head)
    text = head[:8192].decode(codec, errors="replace")
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        return "blank"
    odd = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r\f") or ch == "\ufffd")
    if odd > 0.3 * len(text):
        return "binary"
    return {"[": "json-array", "{": "json-object"}.get(stripped[0], "text")


def _zip_first_member(head: bytes) -> tuple[str | None, bytes | None]:
    """Name and first decompressed bytes of the first member, from a zip's local header."""
    if len(head) < 30 or not head.startswith(b"PK\x03\x04"):
        return None, None
    method = int.from_bytes(head[8:10], "little")
    name_len = int.from_bytes(head[26:28], "little")
    extra_len = int.from_bytes(head[28:30], "little")
    name = head[30 : 30 + name_len].decode("utf-8", errors="replace")
    data = head[30 + name_len + extra_len :]
    try:
        if method == 0:
            return name, data[:_HEAD_BYTES]
        if method == 8:
            return name, zlib.decompressobj(-15).decompress(data, _HEAD_BYTES)
    except zlib.error:
        pass
    return name, None


def _gzip_first_bytes(head: bytes) -> tuple[str | None, bytes | None]:
    """Original file name (when the gzip header stores one) and first decompressed bytes."""
    name = None
    if len(head) > 10 and head[3] & 0x08:
        start = 10
        if head[3] & 0x04:
            start += 2 + int.from_bytes(head[10:12], "little")
        end = head.find(b"\x00", start)
        if end > start:
            name = head[start:end].decode("latin-1")
    try:
        return name, zlib.decompressobj(wbits=31).decompress(head, _HEAD_BYTES)
    except zlib.error:
        return name, None


def _format_from_name(name: str) -> str | None:
    lowered = PurePosixPath(name).name.lower()
    return next((fmt for ext, fmt in _EXTENSIONS.items() if lowered.endswith(ext)), None)


def _unsupported(filename: str) -> DatasetReadError:
    return DatasetReadError(
        "unsupported_format",
        f"{filename!r} is not a supported file type. Supported: {', '.join(_EXTENSIONS)}, each "
        "optionally compressed as .gz or packed in a .zip (e.g. items.csv.gz, 1.json.zip).",
    )


def _wrong_content(claimed: str, content: str) -> DatasetReadError:
    return DatasetReadError(
        "wrong_content",
        f"The file name says {claimed}, but the content looks like "
        f"{_CONTENT_NAMES.get(content, content)}. Check that the right file was uploaded.",
    )


def _split_name(filename: str) -> tuple[str | None, str | None]:
    """(base format by extension or None, wrapper "gzip"/"zip" or None) from a file name."""
    name = PurePosixPath(filename.replace("\\", "/")).name.lower()
    for ext, wrapper in _WRAPPERS.items():
        if name.endswith(ext):
            return _format_from_name(name[: -len(ext)]), wrapper
    return _format_from_name(name), None


def _unwrap_head(head: bytes, wrapper: str, base: str | None) -> tuple[str | None, str]:
    """Base format (from the name inside when the outer name has none) and content label of the
    first decompressed bytes; "unknown" when they cannot be decompressed from the head alone."""
    inner_name, inner = (_gzip_first_bytes if wrapper == "gzip" else _zip_first_member)(head)
    base = base or _format_from_name(inner_name or "")
    return base, (_sniff(inner) if inner is not None else "unknown")


def detect_format(filename: str, head: bytes) -> str:
    """The base format (csv, tsv, jsonl, json, parquet) of an upload, from its name checked
    against its first bytes, so a mislabelled file is refused before it is profiled.

    The name decides (.csv .tsv .jsonl/.ndjson .json .parquet, optionally + .gz or .zip; a bare
    .zip/.gz uses the member or original name stored in its header); the content must agree,
    else code="wrong_content". Unknown names give code="unsupported_format". An empty head has
    nothing to contradict the name: reading reports such a file as code="empty"."""
    base, wrapper = _split_name(filename)
    if base is None and wrapper is None:
        raise _unsupported(filename)
    content = _sniff(head)
    if wrapper is not None and head:
        if content != wrapper:
            packing = "compressed with gzip" if wrapper == "gzip" else "in a zip archive"
            raise _wrong_content(f"{_FORMAT_NAMES.get(base or '', 'data')} {packing}", content)
        base, content = _unwrap_head(head, wrapper, base)
    elif content == "zip":
        inner_name, _inner = _zip_first_member(head)
        if inner_name and (inner_name == "[Content_Types].xml" or inner_name.startswith("xl/")):
            content = "xlsx"
    if base is None:
        raise _unsupported(filename)
    if content not in _ACCEPTS[base] and content not in ("empty", "blank", "unknown"):
        raise _wrong_content(_FORMAT_NAMES[base], content)
    return base


# --- opening: plain, gzip or zip, by magic number ---------------------------------------------


class _Guarded(io.RawIOBase):
    """A raw stream over a decompressing reader that turns the errors of a cut or damaged archive
    into DatasetReadError("truncated") at the read that meets them, and counts what it
    decompresses against the read's limits."""

    def __init__(self, inner: IO[bytes], what: str, budget: _Budget):
        super().__init__()
        self._inner = inner
        self._what = what
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, zlib.error, OSError, zipfile.BadZipFile) as exc:
            raise DatasetReadError(
                "truncated",
                f"The {self._what} is truncated or damaged ({exc}); upload the complete file.",
            ) from exc
        self._budget.tick()
        self._budget.unpacked.add(len(data))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class _Member:
    name: str | None  # the zip member, or None for a plain or gzip file
    stream: IO[bytes]  # buffered, so .peek() works
    packed: bool  # True when decompressed on the fly (not seekable like the file itself)


def _members(path: Path, budget: _Budget) -> Iterator[_Member]:
    """The file's data streams: the file itself, its gzip content, or each zip member in turn.
    Wrappers are recognised by their magic numbers, whatever the name says."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"\x1f\x8b"):
        with gzip.open(path, "rb") as unzipped:
            guarded = _Guarded(unzipped, "gzip file", budget)
            yield _Member(None, io.BufferedReader(guarded, _HEAD_BYTES), packed=True)
    elif magic in (b"PK\x03\x04", b"PK\x05\x06"):
        yield from _zip_members(path, budget)
    else:
        with open(path, "rb", buffering=_HEAD_BYTES) as fh:
            yield _Member(None, fh, packed=False)


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP_ENTRY_BYTES = 4096  # generous room per member in the table of contents (46 + name + extras)


def _zip_directory(path: Path) -> tuple[int, int] | None:
    """(entries, bytes) of a zip's table of contents as its end record states them (zip64
    included), read without reading the table itself; None when no end record is found
    (zipfile then reports the archive as damaged)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        start = max(0, size - _EOCD.size - 0xFFFF)  # the record, then a comment of at most 64 KiB
        fh.seek(start)
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _EOCD.size:
            return None
        entries, directory = _EOCD.unpack_from(tail, at)[4:6]
        locator = at - _ZIP64_LOCATOR.size
        if (entries == 0xFFFF or directory == 0xFFFFFFFF) and locator >= 0:
            signature, _disk, offset, _disks = _ZIP64_LOCATOR.unpack_from(tail, locator)
            if signature == b"PK\x06\x07":
                fh.seek(offset)
                record = fh.read(_ZIP64_EOCD.size)
                if len(record) == _ZIP64_EOCD.size and record.startswith(b"PK\x06\x06"):
                    entries, directory = _ZIP64_EOCD.unpack(record)[7:9]
    return entries, directory


def _too_many_members(count: int, limit: int) -> DatasetReadError:
    return DatasetReadError(
        "too_large",
        f"The zip archive holds more than {limit:,} members ({count:,}), the most that are "
        "read; pack the data into fewer files. The stored file is kept.",
    )


def _open_zip(path: Path, budget: _Budget) -> zipfile.ZipFile:
    """The archive, once its end record shows at most `max_zip_members` entries and a table of
    contents they can fill (zipfile holds the whole table in memory: a million entries would
    take gigabytes), and their stated sizes stay within the decompression limits."""
    limit = budget.limits.max_zip_members
    directory = _zip_directory(path)
    if directory is not None:
        entries, directory_bytes = directory
        if entries > limit:
            raise _too_many_members(entries, limit)
        if directory_bytes > max(limit, 1) * _ZIP_ENTRY_BYTES:
            raise DatasetReadError(
                "too_large",
                f"The zip archive's table of contents ({_size(directory_bytes)}) is larger than "
                f"{limit:,} members need; it is not read. The stored file is kept.",
            )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetReadError(
            "truncated",
            "The zip archive is truncated or damaged (its table of contents cannot be read); "
            "upload the complete file.",
        ) from exc
    infos = archive.infolist()
    try:
        if len(infos) > limit:  # an end record that understates the entries
            raise _too_many_members(len(infos), limit)
        budget.unpacked.check(sum(info.file_size for info in infos))
    except DatasetReadError:
        archive.close()
        raise
    return archive


def _zip_members(path: Path, budget: _Budget) -> Iterator[_Member]:
    """Each data member of a zip archive (folders and macOS metadata skipped), in stored order."""
    archive = _open_zip(path, budget)
    with archive:
        for info in archive.infolist():
            base = PurePosixPath(info.filename).name
            if info.is_dir() or info.filename.startswith("__MACOSX/") or base.startswith("._"):
                continue
            try:
                member = archive.open(info)
            except (NotImplementedError, RuntimeError) as exc:
                raise DatasetReadError(
                    "unsupported_format",
                    f"Zip member {info.filename!r} cannot be read ({exc}); use plain deflate "
                    "compression without a password.",
                ) from exc
            with member:
                guarded = _Guarded(member, f"zip member {info.filename!r}", budget)
                yield _Member(info.filename, io.BufferedReader(guarded, _HEAD_BYTES), packed=True)


def _check_content(member: _Member, fmt: str) -> None:
    """Refuse a member whose first bytes contradict the requested format (wrong_content)."""
    content = _sniff(member.stream.peek(_HEAD_BYTES)[:_HEAD_BYTES])
    if content in _ACCEPTS[_BASE_OF.get(fmt, fmt)] or content in ("empty", "blank"):
        return
    where = f"Zip member {member.name!r}" if member.name else "The file"
    raise DatasetReadError(
        "wrong_content",
        f"{where} was given as {_FORMAT_NAMES[fmt]}, but its content looks like "
        f"{_CONTENT_NAMES.get(content, content)}.",
    )


# --- CSV / TSV ---------------------------------------------------------------------------------


class _CsvText:
    """The lines of a decoded CSV stream (without their newline), fed to csv.reader at C speed and
    kept from the start of the current chunk, so its good records reach pandas verbatim."""

    def __init__(self, blocks: Iterable[str], max_chars: int, member: str | None = None):
        self._blocks = blocks
        self._max_chars = max_chars
        self._member = member
        self.kept: list[str] = []
        self.kept_chars = 0  # characters in `kept`
        self.first = 1  # physical line number of kept[0]

    def lines(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._split())

    def _split(self) -> Iterator[list[str]]:
        for parts in _split_lines(self._blocks, self._max_chars, self._member):
            self.kept.extend(parts)
            self.kept_chars += sum(map(len, parts))
            yield parts

    def take(self, last: int, skip: list[tuple[int, int]]) -> str:
        """Text of the kept lines up to line `last`, without the `skip` (first, last) ranges;
        those lines are then forgotten."""
        count = last - self.first + 1
        lines = self.kept[:count]
        del self.kept[:count]
        self.kept_chars -= sum(map(len, lines))
        pieces: list[str] = []
        cursor = 0
        for start, stop in skip:
            pieces.extend(lines[cursor : start - self.first])
            cursor = stop - self.first + 1
        pieces.extend(lines[cursor:])
        self.first = last + 1
        return "\n".join(pieces) + "\n" if pieces else ""


def _csv_rows(reader) -> Iterator[tuple[int, int, list[str], str]]:
    """(first line, last line, fields, error) of each record; a blank line comes as []."""
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row, error = [], f"unreadable CSV record: {exc}"
        else:
            error = ""
        yield previous + 1, reader.line_num, row, error
        previous = reader.line_num


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _csv_header(reader, text: _CsvText, report: ReadReport, sep: str) -> tuple[str, int] | None:
    """(raw header text, number of fields) of the first non-blank record, or None if there is
    none; a single-column header that contains other delimiters leaves a hint in the report."""
    for start, end, row, error in _csv_rows(reader):
        if error:
            raise DatasetReadError(
                "malformed", f"The header row (line {start}) cannot be read: {error}.", line=start
            )
        if _blank(row):
            text.take(end, [(text.first, end)])  # forget it: a blank file may be large
            continue
        report.header = row
        if len(row) == 1 and any(other in row[0] for other in ",;\t|" if other != sep):
            report.hint = f" The header has a single column; is the delimiter {sep!r} right?"
        return text.take(end, []), len(row)
    return None


def _csv_frames(
    blocks: Iterable[str],
    report: ReadReport,
    *,
    sep: str,
    chunk_rows: int,
    max_line_chars: int,
    member: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Check every record's field count against the header with the csv module (bad records are
    reported by first physical line and left out), then let pandas parse each chunk of good
    records: exact line numbers, and both too many and too few fields are caught."""
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    text = _CsvText(blocks, max_line_chars, member)
    reader = csv.reader(text.lines(), delimiter=sep, quoting=quoting)
    header = _csv_header(reader, text, report, sep)
    if header is None:
        return
    header_text, width = header
    skip: list[tuple[int, int]] = []
    good = 0
    for start, end, row, error in _csv_rows(reader):
        if error or len(row) != width or (width == 1 and not row[0].strip()):
            if error or not _blank(row):
                found = f"found {len(row)}"
                report.bad(start, error or f"expected {width} fields as in the header, {found}")
            skip.append((start, end))
        else:
            good += 1
        # bad and blank records count, to bound memory; so do long lines
        if good + len(skip) >= chunk_rows or text.kept_chars >= _CHUNK_CHARS:
            chunk_text = text.take(end, skip)
            if good:
                yield _parse_csv_chunk(header_text + chunk_text, sep, quoting)
            skip, good = [], 0
    if good:
        yield _parse_csv_chunk(header_text + text.take(reader.line_num, skip), sep, quoting)


def _parse_csv_chunk(chunk_text: str, sep: str, quoting: int) -> pd.DataFrame:
    """pandas' C parser on already-validated records. Arrow-backed parsing keeps an integer
    column with gaps integer, and is then mapped to pandas' nullable dtypes (Int64, Float64,
    boolean, string), the same as the other readers give."""
    frame = pd.read_csv(
        io.StringIO(chunk_text),
        sep=sep,
        quoting=quoting,
        index_col=False,
        dtype_backend="pyarrow",
        on_bad_lines="skip",
        low_memory=False,
    )
    return frame.apply(_from_arrow) if len(frame.columns) else frame


def _from_arrow(series: pd.Series) -> pd.Series:
    """An arrow-backed column as the matching pandas nullable dtype (an all-empty one as object)."""
    if isinstance(series.dtype, pd.ArrowDtype):
        arrow_type = series.dtype.pyarrow_dtype
        target = _arrow_nullable(arrow_type)
        if target is not None:
            return series.astype(target)
        if str(arrow_type) == "null":
            return series.astype(object)
    return series


# --- JSON Lines and JSON arrays ----------------------------------------------------------------


class _JsonStream:
    """The values of a top-level JSON array (or of a sequence of values, e.g. one object) read
    from text blocks with JSONDecoder.raw_decode: memory holds about one block plus one value."""

    def __init__(self, blocks: Iterator[str], max_chars: int):
        self._blocks = blocks
        self._max_chars = max_chars
        self._buf = ""
        self._pos = 0  # next unread index in _buf
        self._mark = 0  # index in _buf that starts line number _line
        self._line = 1
        self._eof = False
        self._decoder = json.JSONDecoder()
        self.count = 0
        self.last_chars = 0  # length of the last value's text

    def values(self) -> Iterator[tuple[int, Any]]:
        """(line, value) for each element; raises truncated/malformed/too_large."""
        if self._peek() != "[":
            while self._peek() is not None:
                yield self._value()
            return
        self._pos += 1
        while (char := self._peek()) != "]":
            if char is None:
                raise DatasetReadError(
                    "truncated",
                    f"The JSON array ends after {self.count} records without its closing ']'; "
                    "the file looks truncated.",
                    line=self._line_at(self._pos),
                )
            if self.count:
                if char != ",":
                    raise self._malformed(self._pos, f"expected ',' or ']' but found {char!r}")
                self._pos += 1
                if self._peek() is None:
                    continue  # reported as truncated above
            yield self._value()
        self._pos += 1
        if self._peek() is not None:
            raise self._malformed(self._pos, "unexpected data after the closing ']'")

    def _value(self) -> tuple[int, Any]:
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(self._buf) - 32 or exc.msg.startswith("Unterminated")
                if near_end and not self._eof:
                    self._grow()
                    continue
                raise self._decode_error(exc) from exc
            if end >= len(self._buf) and not self._eof:
                self._grow()  # a number at the end of a block may go on in the next one
                continue
            if end - self._pos > self._max_chars:
                raise self._too_large()
            line = self._line_at(self._pos)
            self.last_chars = end - self._pos
            self._pos = end
            self.count += 1
            return line, value

    def _decode_error(self, exc: json.JSONDecodeError) -> DatasetReadError:
        tail = self._buf[exc.pos :].strip()
        if exc.msg.startswith("Unterminated") or (len(tail) < 12 and not set(tail) & set("]},")):
            line = self._line_at(self._pos)
            return DatasetReadError(
                "truncated",
                f"The JSON data ends in the middle of the record starting on line {line}; "
                "the file looks truncated.",
                line=line,
            )
        return self._malformed(exc.pos, exc.msg)

    def _malformed(self, pos: int, why: str) -> DatasetReadError:
        line = self._line_at(pos)
        column = pos - self._buf.rfind("\n", 0, pos)
        return DatasetReadError(
            "malformed", f"Invalid JSON on line {line}, column {column}: {why}.", line=line
        )

    def _peek(self) -> str | None:
        while True:
            match = _NON_SPACE.search(self._buf, self._pos)
            if match:
                self._pos = match.start()
                return self._buf[self._pos]
            self._pos = len(self._buf)
            if not self._fill():
                return None

    def _too_large(self) -> DatasetReadError:
        line = self._line_at(self._pos)
        return DatasetReadError(
            "too_large",
            f"The JSON record starting on line {line} is longer than {_size(self._max_chars)}, "
            "the longest record that is read; the stored file is kept.",
            line=line,
        )

    def _grow(self) -> None:
        """Read on until the unparsed text doubles (so a long record is re-parsed O(log n)
        times; the blocks are joined once), refusing a record beyond `max_chars`."""
        pending = len(self._buf) - self._pos
        if pending > self._max_chars:
            raise self._too_large()
        self._line_at(self._pos)
        pieces, size = [self._buf[self._pos :]], pending
        while size < 2 * pending or size == pending:
            block = next(self._blocks, "")
            if not block:
                self._eof = True
                break
            pieces.append(block)
            size += len(block)
            if size > self._max_chars:
                break
        self._buf = "".join(pieces)
        self._pos = self._mark = 0

    def _fill(self) -> bool:
        block = next(self._blocks, "")
        if not block:
            self._eof = True
            return False
        self._line_at(self._pos)
        self._buf = self._buf[self._pos :] + block
        self._pos = self._mark = 0
        return True

    def _line_at(self, index: int) -> int:
        self._line += self._buf.count("\n", self._mark, index)
        self._mark = index
        return self._line


def _json_kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _json_records(
    blocks: Iterator[str], report: ReadReport, max_chars: int
) -> Iterator[tuple[dict, int]]:
    """(object, length of its text) of a JSON array / value sequence; other elements are
    malformed rows."""
    stream = _JsonStream(blocks, max_chars)
    for line, value in stream.values():
        if isinstance(value, dict):
            yield value, stream.last_chars
        else:
            report.bad(line, f"expected a JSON object, found {_json_kind(value)}")


def _jsonl_records(lines: Iterator[str], report: ReadReport) -> Iterator[tuple[dict, int]]:
    """(object, length of its line), one per line; a line that is not valid JSON or not an
    object is a malformed row."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            report.bad(number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if isinstance(value, dict):
            yield value, len(line)
        else:
            report.bad(number, f"expected a JSON object, found {_json_kind(value)}")


def _batched(items: Iterable[tuple[Any, int]], size: int) -> Iterator[list[Any]]:
    """Lists of at most `size` items, and of items whose text adds up to about _CHUNK_CHARS."""
    batch: list[Any] = []
    chars = 0
    for item, length in items:
        batch.append(item)
        chars += length
        if len(batch) >= size or chars >= _CHUNK_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _nullable_column(series: pd.Series) -> pd.Series:
    """An object column of JSON values as a nullable pandas dtype when its values agree."""
    target = {"integer": "Int64", "floating": "Float64", "mixed-integer-float": "Float64"}
    target |= {"boolean": "boolean", "string": "string"}
    dtype = target.get(infer_dtype(series, skipna=True))
    if dtype is not None:
        try:
            return series.astype(dtype)
        except (TypeError, ValueError, OverflowError):
            pass
    return series


def _records_frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(records, dtype=object)
    return frame.apply(_nullable_column) if len(frame.columns) else frame


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def _chorus_row(record: dict) -> tuple:
    attributes = {k: v for k, v in record.items() if k.startswith("attr_")}
    ean = record.get("ean")
    if isinstance(ean, list):
        ean = ",".join(str(code) for code in ean if code is not None) or None
    return (
        _text(record.get("id")),
        _text(record.get("title")),
        _text(record.get("supplier")),
        record.get("price"),
        _text(ean),
        _text(record.get("short_description")),
        json.dumps(attributes, ensure_ascii=False, sort_keys=True) if attributes else None,
    )


def _chorus_frame(records: list[dict]) -> pd.DataFrame:
    """Chorus/Icecat records as catalog rows: brand from supplier, price from integer cents,
    EANs comma-joined, description from short_description, attr_* fields as one JSON string."""
    frame = pd.DataFrame([_chorus_row(r) for r in records], columns=list(CHORUS_PRODUCT_COLUMNS))
    for name in ("id", "title", "brand", "ean", "description", "attributes"):
        frame[name] = frame[name].astype("string")
    frame["price"] = (pd.to_numeric(frame["price"], errors="coerce") / 100).astype("Float64")
    return frame


# --- Parquet -----------------------------------------------------------------------------------


def _arrow_nullable(arrow_type):
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) and arrow_type != pa.uint64():
        return pd.Int64Dtype()
    if pa.types.is_floating(arrow_type):
        return pd.Float64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None


def _min_row_bytes(schema) -> float:
    """Bytes that one row takes at least once decoded by pyarrow: the width of each fixed-width
    column, 4 (an offset) for each string, binary or list column, the index of a dictionary."""
    import pyarrow as pa

    total = 0.0
    for column in schema:
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.index_type
        if pa.types.is_boolean(kind):
            total += 1 / 8
        elif isinstance(kind, pa.FixedSizeBinaryType) or pa.types.is_primitive(kind):
            total += kind.bit_width / 8
        elif pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_list(kind):
            total += 4
    return total


def _parquet_batches(
    source, size: int, report: ReadReport, chunk_rows: int, budget: _Budget
) -> Iterator[pd.DataFrame]:
    """Record batches of a Parquet file (`size` bytes) as nullable-dtype frames. What its footer
    says it decodes to (its pages before compression, and its rows times their least width,
    since run-length and dictionary encoding make a billion equal values tiny) is checked
    before anything is decoded, and what it really decodes to as it goes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetReadError(
            "truncated",
            "The Parquet file is truncated or damaged: its footer (schema and row index) cannot "
            "be read. Upload the complete file.",
        ) from exc
    report.header = list(parquet.schema_arrow.names)
    meta = parquet.metadata
    decoded = _Expansion(budget.limits, size, "The Parquet data decodes")
    pages = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    decoded.check(max(pages, int(meta.num_rows * _min_row_bytes(parquet.schema_arrow))))
    batches = parquet.iter_batches(batch_size=chunk_rows)
    while True:
        budget.tick()
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetReadError("malformed", f"The Parquet data is damaged: {exc}") from exc
        if batch is None:
            return
        decoded.add(batch.nbytes)
        yield batch.to_pandas(types_mapper=_arrow_nullable)


def _parquet_frames(
    member: _Member, path: Path, report: ReadReport, chunk_rows: int, budget: _Budget
):
    """A plain Parquet file is read in place; a compressed one is unpacked to a temporary file
    first, because Parquet needs random access (its index is at the end): the decompression
    limits bound that copy."""
    if not member.packed:
        yield from _parquet_batches(path, path.stat().st_size, report, chunk_rows, budget)
        return
    with tempfile.TemporaryFile() as unpacked:
        shutil.copyfileobj(member.stream, unpacked, 1 << 20)
        size = unpacked.tell()
        unpacked.seek(0)
        yield from _parquet_batches(unpacked, size, report, chunk_rows, budget)


# --- the chunk reader --------------------------------------------------------------------------


def _member_frames(
    member: _Member, path: Path, fmt: str, report: ReadReport, chunk_rows: int, budget: _Budget
) -> Iterator[pd.DataFrame]:
    """Frames of one data stream in the requested format."""
    _check_content(member, fmt)
    base = _BASE_OF.get(fmt, fmt)
    if base == "parquet":
        return _parquet_frames(member, path, report, chunk_rows, budget)
    blocks = _text_blocks(member.stream, report, budget)
    max_chars = budget.limits.max_line_chars
    if base in ("csv", "tsv"):
        sep = "\t" if base == "tsv" else ","
        return _csv_frames(
            blocks,
            report,
            sep=sep,
            chunk_rows=chunk_rows,
            max_line_chars=max_chars,
            member=member.name,
        )
    if base == "jsonl":
        records = _jsonl_records(_lines(blocks, max_chars, member.name), report)
    else:
        records = _json_records(blocks, report, max_chars)
    build = _chorus_frame if fmt == "chorus-products" else _records_frame
    return (build(batch) for batch in _batched(records, chunk_rows))


def _finish_frame(frame: pd.DataFrame, fmt: str, report: ReadReport) -> pd.DataFrame:
    """Format-specific checks on a chunk: the Chorus formats must look like Chorus data."""
    if fmt == "chorus-judgments":
        missing = [c for c in CHORUS_JUDGMENT_COLUMNS if c not in frame.columns]
        if missing:
            found = ", ".join(map(str, frame.columns))
            raise DatasetReadError(
                "wrong_content",
                f"A Chorus judgments file needs the columns {', '.join(CHORUS_JUDGMENT_COLUMNS)}; "
                f"this one lacks {', '.join(missing)} (found: {found}).",
            )
        frame["product_id"] = frame["product_id"].astype("string")
    elif fmt == "chorus-products" and report.rows == 0 and frame["id"].isna().all():
        raise DatasetReadError(
            "wrong_content",
            "None of the records has an 'id' field; this does not look like Chorus product data.",
        )
    return frame


def _raise_if_no_rows(path: Path, report: ReadReport) -> None:
    """A file that yielded no row is empty, or malformed when every row was bad."""
    if report.rows:
        return
    if report.malformed_count:
        first = report.malformed_examples[0]
        raise DatasetReadError(
            "malformed",
            f"None of the {report.malformed_count} data rows could be read; the first bad one "
            f"is on line {first['line']}: {first['error']}.{report.hint}",
            line=first["line"],
        )
    if path.stat().st_size == 0:
        message = "The file is empty (0 bytes)."
    elif report.header:
        more = ", ..." if len(report.header) > 10 else ""
        shown = ", ".join(map(str, report.header[:10])) + more
        message = f"The file has a header ({shown}) but no data rows."
    else:
        message = "The file holds no data rows (it is blank, whitespace or an empty list)."
    raise DatasetReadError("empty", message)


def iter_frames(
    path: str | Path,
    *,
    fmt: str,
    chunk_rows: int = 100_000,
    report: ReadReport | None = None,
    limits: ReadLimits | None = None,
) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of at most `chunk_rows` rows, gzip/zip unwrapped, text
    decoded (bad bytes replaced), malformed rows skipped; pass a ReadReport to learn what was
    replaced or skipped. Chorus formats come normalised (see `read_chorus_products`).

    Types are inferred per chunk (nullable Int64/Float64/boolean/string dtypes), so one column
    may differ between chunks. Raises DatasetReadError when nothing usable can be read, or when
    reading passes one of `limits` (default: ReadLimits(), no time limit)."""
    if fmt not in FORMATS:
        raise DatasetReadError(
            "unsupported_format", f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}."
        )
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    path = Path(path)
    report = report if report is not None else ReadReport()
    budget = _Budget(limits or ReadLimits(), path.stat().st_size)
    for member in _members(path, budget):
        report.member = member.name
        for frame in _member_frames(member, path, fmt, report, chunk_rows, budget):
            budget.tick()
            if len(frame):
                frame = _finish_frame(frame, fmt, report)
                report.rows += len(frame)
                yield frame
    _raise_if_no_rows(path, report)


def read_chorus_products(
    path: str | Path, *, chunk_rows: int = 100_000, limits: ReadLimits | None = None
) -> Iterator[pd.DataFrame]:
    """Chorus/Icecat product files (a JSON array, or a zip of them such as 1.json.zip) as catalog
    frames with columns id, title, brand, price (float, from cents), ean (comma-joined),
    description and attributes (JSON string of the record's attr_* fields, or null)."""
    return iter_frames(path, fmt="chorus-products", chunk_rows=chunk_rows, limits=limits)


# --- statistics --------------------------------------------------------------------------------


def _merge_kind(old: str | None, new: str | None) -> str | None:
    """Combine the types seen in two chunks: integer + float is float, other mixes are string."""
    if old is None or old == new:
        return new if old is None else old
    if new is None:
        return old
    return "float" if {old, new} == {"integer", "float"} else "string"


def _as_datetimes(values: pd.Series) -> pd.Series | None:
    """The values as UTC timestamps when every one is an ISO-8601 date/time string, else None."""
    sample = values.iloc[:20]
    if not all(isinstance(v, str) and _ISO_DATETIME.fullmatch(v) for v in sample):
        return None
    if not values.astype("string").str.fullmatch(_ISO_DATETIME.pattern).all():
        return None
    parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    return None if parsed.isna().any() else parsed


def _chunk_kind(values: pd.Series) -> tuple[str | None, pd.Series | None]:
    """(type, timestamps when the type is datetime) of a chunk's non-null values."""
    if values.empty:
        return None, None
    dtype = values.dtype
    if is_bool_dtype(dtype):
        return "boolean", None
    if is_integer_dtype(dtype):
        return "integer", None
    if is_float_dtype(dtype):
        return "float", None
    if is_datetime64_any_dtype(dtype):
        utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return "datetime", utc
    inferred = infer_dtype(values, skipna=True)
    if inferred == "string":
        parsed = _as_datetimes(values)
        return ("string", None) if parsed is None else ("datetime", parsed)
    kind = _INFERRED_KINDS.get(inferred, "string")
    if kind == "datetime":
        return kind, pd.to_datetime(values, utc=True, errors="coerce").dropna()
    return kind, None


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, dict, tuple, set)):
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return value


def _json_value(value: Any) -> Any:
    """A statistic as a plain JSON value (numpy scalars unwrapped, NaN/inf as null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


class _ColumnStats:
    """Running statistics of one column over the chunks."""

    def __init__(self, name: str, low_cardinality: int, nulls_before: int):
        self.name = name
        self.low_cardinality = low_cardinality
        self.null_count = nulls_before  # rows of earlier chunks that lacked the column
        self.kind: str | None = None
        self.minimum: Any = None
        self.maximum: Any = None
        self.total = 0.0
        self.count = 0
        self.counts: Counter | None = Counter()

    def add(self, series: pd.Series) -> None:
        values = series.dropna()
        self.null_count += len(series) - len(values)
        kind, timestamps = _chunk_kind(values)
        self.kind = _merge_kind(self.kind, kind)
        if kind in ("integer", "float"):
            numbers = pd.to_numeric(values, errors="coerce").dropna()
            if len(numbers):
                self._extremes(numbers.min(), numbers.max())
            self.total += float(numbers.astype("float64").sum())
            self.count += len(numbers)
        elif kind == "datetime" and timestamps is not None and len(timestamps):
            self._extremes(timestamps.min(), timestamps.max())
        self._count_values(values)

    def _extremes(self, low: Any, high: Any) -> None:
        low = low.item() if isinstance(low, np.generic) else low
        high = high.item() if isinstance(high, np.generic) else high
        if self.minimum is None or low < self.minimum:
            self.minimum = low
        if self.maximum is None or high > self.maximum:
            self.maximum = high

    def _count_values(self, values: pd.Series) -> None:
        """Merge value counts until the column shows more than `low_cardinality` distinct values."""
        if self.counts is None or values.empty:
            return
        if values.dtype == object:
            values = values.map(_hashable)
        counts = values.value_counts(sort=False)
        if len(counts) > self.low_cardinality:
            self.counts = None
            return
        for value, count in counts.items():
            self.counts[_json_value(value)] += int(count)
        if len(self.counts) > self.low_cardinality:
            self.counts = None

    def result(self, rows: int, top_k: int) -> dict:
        numeric = self.kind in ("integer", "float")
        shown = self.kind in ("integer", "float", "datetime")
        top = None
        if self.counts is not None:
            ranked = sorted(self.counts.items(), key=lambda item: (-item[1], str(item[0])))
            top = [[value, count] for value, count in ranked[:top_k]]
        return {
            "name": str(self.name),
            "dtype": self.kind or "null",
            "null_count": self.null_count,
            "null_rate": self.null_count / rows if rows else 0.0,
            "min": _json_value(self.minimum) if shown else None,
            "max": _json_value(self.maximum) if shown else None,
            "mean": _json_value(self.total / self.count) if numeric and self.count else None,
            "distinct": len(self.counts) if self.counts is not None else None,
            "top_values": top,
        }


class _KeyStats:
    """Duplicate count of a key column: 64-bit hashes of the non-null values, compacted to the
    distinct ones now and then (8 bytes per distinct key; collisions are negligible)."""

    def __init__(self, column: str):
        self.column = column
        self.hashes: list[np.ndarray] = []
        self.pending = 0
        self.non_null = 0
        self.seen = False

    def add(self, frame: pd.DataFrame) -> None:
        if self.column not in frame.columns:
            return
        self.seen = True
        # Hash the text form so that a key parsed as Int64 in one chunk and as string in another
        # still compares equal.
        values = frame[self.column].dropna().astype(str).to_numpy(dtype=object)
        self.non_null += len(values)
        self.hashes.append(pd.util.hash_array(values, categorize=False))
        self.pending += len(values)
        if self.pending > _KEY_COMPACT_AT:
            self.hashes = [_distinct(np.concatenate(self.hashes))]
            self.pending = 0

    def result(self, rows: int) -> dict | None:
        if not self.seen:
            return None
        distinct = len(_distinct(np.concatenate(self.hashes))) if self.hashes else 0
        duplicates = self.non_null - distinct
        return {
            "column": self.column,
            "duplicates": duplicates,
            "duplicate_rate": duplicates / rows if rows else 0.0,
        }


def _distinct(hashes: np.ndarray) -> np.ndarray:
    """The distinct values of a hash array (sorted)."""
    hashes = np.sort(hashes)
    return hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))] if len(hashes) else hashes


class _FrameStats:
    """Statistics of all columns (a column missing from a chunk counts as null there)."""

    def __init__(self, low_cardinality: int, key: str | None):
        self.low_cardinality = low_cardinality
        self.columns: dict[Any, _ColumnStats] = {}
        self.rows = 0
        self.key = _KeyStats(key) if key else None

    def add(self, frame: pd.DataFrame) -> None:
        for position, name in enumerate(frame.columns):
            stats = self.columns.get(name)
            if stats is None:
                stats = self.columns[name] = _ColumnStats(name, self.low_cardinality, self.rows)
            stats.add(frame.iloc[:, position])
        for name, stats in self.columns.items():
            if name not in frame.columns:
                stats.null_count += len(frame)
        self.rows += len(frame)
        if self.key is not None:
            self.key.add(frame)

    def kinds(self) -> dict[str, str | None]:
        return {str(name): stats.kind for name, stats in self.columns.items()}


def _type_fits(expected: str, found: str | None) -> bool:
    """Whether a column's inferred type satisfies the contract: an all-null column fits any type,
    integers fit float, and anything can be read as string."""
    if found is None or found == expected or expected == "string":
        return True
    return expected == "float" and found == "integer"


def _schema_check(contract: SchemaContract, kinds: dict[str, str | None]) -> dict:
    """Missing and extra columns and type mismatches; extra columns alone do not fail it."""
    missing = [name for name in contract.columns if name not in kinds]
    extra = [name for name in kinds if name not in contract.columns]
    mismatches = [
        {"column": name, "expected": expected, "found": kinds[name] or "null"}
        for name, expected in contract.columns.items()
        if name in kinds and not _type_fits(expected, kinds[name])
    ]
    return {
        "ok": not missing and not mismatches,
        "missing": missing,
        "extra": extra,
        "type_mismatches": mismatches,
    }


def profile_file(
    path: str | Path,
    *,
    fmt: str,
    contract: SchemaContract | None = None,
    chunk_rows: int = 100_000,
    top_k: int = 10,
    low_cardinality: int = 50,
    max_malformed_examples: int = 50,
    limits: ReadLimits | None = None,
) -> dict:
    """Profile a stored dataset file in bounded memory and return a JSON-serialisable dict:
    format, rows, columns, key, schema, encoding, malformed_rows, elapsed_seconds and
    rows_per_second (the shape is in the module's tests).

    Per column: dtype (one of COLUMN_TYPES, or "null" when it holds no value; integer + float
    chunks make float, other mixes make string; datetime means ISO-8601 text or a timestamp
    type), null_count/null_rate, min/max (numeric and datetime), mean (numeric), and distinct +
    top_values only while the column has at most `low_cardinality` distinct values. The key is
    the contract's, or "id" for Chorus products: nulls are not duplicates, and duplicate_rate is
    over all rows. The schema check fails on missing columns and type mismatches (an all-null
    column fits any type, integer fits float, anything fits string); extra columns are listed.

    Raises DatasetReadError for a file that cannot be profiled (empty, truncated, wrong content,
    every row malformed, unsupported format) or that passes one of `limits` (too_large: a line
    or JSON record, decompressed or decoded bytes, zip members; too_slow: the time, which
    includes computing the statistics)."""
    started = time.perf_counter()
    report = ReadReport(max_examples=max_malformed_examples)
    key = contract.key if contract is not None else _DEFAULT_KEYS.get(fmt)
    stats = _FrameStats(low_cardinality, key)
    frames = iter_frames(path, fmt=fmt, chunk_rows=chunk_rows, report=report, limits=limits)
    for frame in frames:
        stats.add(frame)
    elapsed = time.perf_counter() - started
    return {
        "format": fmt,
        "rows": stats.rows,
        "columns": [column.result(stats.rows, top_k) for column in stats.columns.values()],
        "key": stats.key.result(stats.rows) if stats.key is not None else None,
        "schema": _schema_check(contract, stats.kinds()) if contract is not None else None,
        "encoding": {
            "encoding": report.encoding,
            "replaced_characters": report.replaced_characters,
        },
        "malformed_rows": {
            "count": report.malformed_count,
            "examples": report.malformed_examples,
        },
        "elapsed_seconds": round(elapsed, 4),
        "rows_per_second": round(stats.rows / elapsed, 1) if elapsed > 0 else 0.0,
    }
