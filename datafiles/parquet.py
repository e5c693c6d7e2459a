"""Parquet, through pyarrow (imported only when a Parquet file is read)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from datafiles.archives import Member
from datafiles.errors import DatasetReadError
from datafiles.limits import Budget, Expansion
from datafiles.report import ReadReport


def arrow_nullable(arrow_type):
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
    source, size: int, report: ReadReport, chunk_rows: int, budget: Budget
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
    decoded = Expansion(budget.limits, size, "The Parquet data decodes")
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
        yield batch.to_pandas(types_mapper=arrow_nullable)


def parquet_frames(member: Member, path: Path, report: ReadReport, chunk_rows: int, budget: Budget):
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
