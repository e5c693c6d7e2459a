"""Opening a file as its data streams: the file itself, its gzip content, or each member of a
zip archive, with what they decompress to counted against the read's limits."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from datafiles.decoding import HEAD_BYTES
from datafiles.errors import DatasetReadError
from datafiles.limits import Budget, byte_size


class _Guarded(io.RawIOBase):
    """A raw stream over a decompressing reader that turns the errors of a cut or damaged archive
    into DatasetReadError("truncated") at the read that meets them, and counts what it
    decompresses against the read's limits."""

    def __init__(self, inner: IO[bytes], what: str, budget: Budget):
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
class Member:
    name: str | None  # the zip member, or None for a plain or gzip file
    stream: IO[bytes]  # buffered, so .peek() works
    packed: bool  # True when decompressed on the fly (not seekable like the file itself)


def members(path: Path, budget: Budget) -> Iterator[Member]:
    """The file's data streams: the file itself, its gzip content, or each zip member in turn.
    Wrappers are recognised by their magic numbers, whatever the name says."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"\x1f\x8b"):
        with gzip.open(path, "rb") as unzipped:
            guarded = _Guarded(unzipped, "gzip file", budget)
            yield Member(None, io.BufferedReader(guarded, HEAD_BYTES), packed=True)
    elif magic in (b"PK\x03\x04", b"PK\x05\x06"):
        yield from _zip_members(path, budget)
    else:
        with open(path, "rb", buffering=HEAD_BYTES) as fh:
            yield Member(None, fh, packed=False)


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


def _open_zip(path: Path, budget: Budget) -> zipfile.ZipFile:
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
                f"The zip archive's table of contents ({byte_size(directory_bytes)}) is larger "
                f"than {limit:,} members need; it is not read. The stored file is kept.",
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


def _zip_members(path: Path, budget: Budget) -> Iterator[Member]:
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
                yield Member(info.filename, io.BufferedReader(guarded, HEAD_BYTES), packed=True)
