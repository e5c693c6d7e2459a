"""JSON Lines and JSON arrays (or a sequence of JSON values), streamed: memory holds about one
block of text plus one record."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
from pandas.api.types import infer_dtype

from datafiles import limits
from datafiles.errors import DatasetReadError
from datafiles.limits import byte_size
from datafiles.report import ReadReport

_NON_SPACE = re.compile(r"[^ \t\r\n]")


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
            f"The JSON record starting on line {line} is longer than {byte_size(self._max_chars)}, "
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


def json_records(
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


def jsonl_records(lines: Iterator[str], report: ReadReport) -> Iterator[tuple[dict, int]]:
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


def batched(items: Iterable[tuple[Any, int]], size: int) -> Iterator[list[Any]]:
    """Lists of at most `size` items, and of items whose text adds up to about CHUNK_CHARS."""
    batch: list[Any] = []
    chars = 0
    for item, length in items:
        batch.append(item)
        chars += length
        if len(batch) >= size or chars >= limits.CHUNK_CHARS:
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


def records_frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(records, dtype=object)
    return frame.apply(_nullable_column) if len(frame.columns) else frame
