"""`iter_frames`: a stored data file's rows as DataFrames, whatever its format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from datafiles.archives import Member, members
from datafiles.chorus import CHORUS_JUDGMENT_COLUMNS, chorus_frame
from datafiles.decoding import HEAD_BYTES, lines, text_blocks
from datafiles.delimited import csv_frames
from datafiles.errors import DatasetReadError
from datafiles.formats import ACCEPTS, BASE_OF, FORMAT_NAMES, FORMATS
from datafiles.jsonrecords import batched, json_records, jsonl_records, records_frame
from datafiles.limits import Budget, ReadLimits
from datafiles.parquet import parquet_frames
from datafiles.report import ReadReport
from datafiles.sniffing import CONTENT_NAMES, sniff


def _check_content(member: Member, fmt: str) -> None:
    """Refuse a member whose first bytes contradict the requested format (wrong_content)."""
    content = sniff(member.stream.peek(HEAD_BYTES)[:HEAD_BYTES])
    if content in ACCEPTS[BASE_OF.get(fmt, fmt)] or content in ("empty", "blank"):
        return
    where = f"Zip member {member.name!r}" if member.name else "The file"
    raise DatasetReadError(
        "wrong_content",
        f"{where} was given as {FORMAT_NAMES[fmt]}, but its content looks like "
        f"{CONTENT_NAMES.get(content, content)}.",
    )


def _member_frames(
    member: Member, path: Path, fmt: str, report: ReadReport, chunk_rows: int, budget: Budget
) -> Iterator[pd.DataFrame]:
    """Frames of one data stream in the requested format."""
    _check_content(member, fmt)
    base = BASE_OF.get(fmt, fmt)
    if base == "parquet":
        return parquet_frames(member, path, report, chunk_rows, budget)
    blocks = text_blocks(member.stream, report, budget)
    max_chars = budget.limits.max_line_chars
    if base in ("csv", "tsv"):
        sep = "\t" if base == "tsv" else ","
        return csv_frames(
            blocks,
            report,
            sep=sep,
            chunk_rows=chunk_rows,
            max_line_chars=max_chars,
            member=member.name,
        )
    if base == "jsonl":
        records = jsonl_records(lines(blocks, max_chars, member.name), report)
    else:
        records = json_records(blocks, report, max_chars)
    build = chorus_frame if fmt == "chorus-products" else records_frame
    return (build(batch) for batch in batched(records, chunk_rows))


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
    budget = Budget(limits or ReadLimits(), path.stat().st_size)
    for member in members(path, budget):
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
