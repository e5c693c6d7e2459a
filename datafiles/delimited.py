"""CSV and TSV: every record's field count checked against the header (bad records reported by
their first physical line), then each chunk of good records parsed by pandas."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator

import pandas as pd

from datafiles import limits
from datafiles.decoding import split_lines
from datafiles.errors import DatasetReadError
from datafiles.parquet import arrow_nullable
from datafiles.report import ReadReport


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
        for parts in split_lines(self._blocks, self._max_chars, self._member):
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


def csv_frames(
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
        if good + len(skip) >= chunk_rows or text.kept_chars >= limits.CHUNK_CHARS:
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
        target = arrow_nullable(arrow_type)
        if target is not None:
            return series.astype(target)
        if str(arrow_type) == "null":
            return series.astype(object)
    return series
