"""Decoding: text from bytes in blocks (BOM or UTF-16 detected, undecodable bytes replaced and
counted), and lines from text blocks with a bound on their length."""

from __future__ import annotations

import codecs
import contextlib
import io
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import IO

from datafiles.errors import DatasetReadError
from datafiles.limits import Budget, byte_size
from datafiles.report import ReadReport

HEAD_BYTES = 1 << 16
_BLOCK_CHARS = 1 << 20
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


def text_encoding(head: bytes) -> tuple[str, str]:
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


def text_blocks(binary: IO[bytes], report: ReadReport, budget: Budget) -> Iterator[str]:
    """Decode a binary stream in ~1 MiB blocks, universal newlines, counting replaced bytes;
    the time limit is checked at each block."""
    codec, label = text_encoding(binary.peek(HEAD_BYTES)[:512])
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
        f"Line {number}{where} is longer than {byte_size(limit)}, the longest line that is read "
        "(is a line break missing, or is this not line-based text?); the stored file is kept.",
        line=number,
    )


def split_lines(
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


def lines(blocks: Iterable[str], max_chars: int, member: str | None = None) -> Iterator[str]:
    """Split text blocks into lines, each ending with "\\n" (one is added to a last bare line)."""
    for parts in split_lines(blocks, max_chars, member):
        for part in parts:
            yield part + "\n"
