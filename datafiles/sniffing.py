"""Content sniffing: what the first bytes of a file look like, and `detect_format`, which checks
an upload's name against them."""

from __future__ import annotations

import zlib
from pathlib import PurePosixPath

from datafiles.decoding import HEAD_BYTES, text_encoding
from datafiles.errors import DatasetReadError
from datafiles.formats import ACCEPTS, EXTENSIONS, FORMAT_NAMES, WRAPPERS

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
CONTENT_NAMES = {
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


def sniff(head: bytes) -> str:
    """Name what the first bytes look like: a known binary format by its magic number, else
    "json-array", "json-object", "text", "binary", "blank" (whitespace) or "empty"."""
    for magic, label in _MAGIC:
        if head.startswith(magic):
            return label
    if not head:
        return "empty"
    codec, _label = text_encoding(head)
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
            return name, data[:HEAD_BYTES]
        if method == 8:
            return name, zlib.decompressobj(-15).decompress(data, HEAD_BYTES)
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
        return name, zlib.decompressobj(wbits=31).decompress(head, HEAD_BYTES)
    except zlib.error:
        return name, None


def _format_from_name(name: str) -> str | None:
    lowered = PurePosixPath(name).name.lower()
    return next((fmt for ext, fmt in EXTENSIONS.items() if lowered.endswith(ext)), None)


def _unsupported(filename: str) -> DatasetReadError:
    return DatasetReadError(
        "unsupported_format",
        f"{filename!r} is not a supported file type. Supported: {', '.join(EXTENSIONS)}, each "
        "optionally compressed as .gz or packed in a .zip (e.g. items.csv.gz, 1.json.zip).",
    )


def _wrong_content(claimed: str, content: str) -> DatasetReadError:
    return DatasetReadError(
        "wrong_content",
        f"The file name says {claimed}, but the content looks like "
        f"{CONTENT_NAMES.get(content, content)}. Check that the right file was uploaded.",
    )


def _split_name(filename: str) -> tuple[str | None, str | None]:
    """(base format by extension or None, wrapper "gzip"/"zip" or None) from a file name."""
    name = PurePosixPath(filename.replace("\\", "/")).name.lower()
    for ext, wrapper in WRAPPERS.items():
        if name.endswith(ext):
            return _format_from_name(name[: -len(ext)]), wrapper
    return _format_from_name(name), None


def _unwrap_head(head: bytes, wrapper: str, base: str | None) -> tuple[str | None, str]:
    """Base format (from the name inside when the outer name has none) and content label of the
    first decompressed bytes; "unknown" when they cannot be decompressed from the head alone."""
    inner_name, inner = (_gzip_first_bytes if wrapper == "gzip" else _zip_first_member)(head)
    base = base or _format_from_name(inner_name or "")
    return base, (sniff(inner) if inner is not None else "unknown")


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
    content = sniff(head)
    if wrapper is not None and head:
        if content != wrapper:
            packing = "compressed with gzip" if wrapper == "gzip" else "in a zip archive"
            raise _wrong_content(f"{FORMAT_NAMES.get(base or '', 'data')} {packing}", content)
        base, content = _unwrap_head(head, wrapper, base)
    elif content == "zip":
        inner_name, _inner = _zip_first_member(head)
        if inner_name and (inner_name == "[Content_Types].xml" or inner_name.startswith("xl/")):
            content = "xlsx"
    if base is None:
        raise _unsupported(filename)
    if content not in ACCEPTS[base] and content not in ("empty", "blank", "unknown"):
        raise _wrong_content(FORMAT_NAMES[base], content)
    return base
