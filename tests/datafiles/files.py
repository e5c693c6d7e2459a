"""Small files for the datafiles tests (and the profiling tests, which read through datafiles)."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from datafiles import DatasetReadError, iter_frames

CHORUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "chorus-icecat"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
CSV = "id,name,price\n1,apple,1.5\n2,pear,2.25\n3,plum,\n"
CHORUS_RECORDS = [
    {
        "id": "1",
        "name": "X1",
        "title": "Xerox toner",
        "supplier": "Xerox",
        "price": 4995,
        "ean": ["0095205603217", "123"],
        "short_description": "Toner",
        "attr_t_type": "Original",
        "attr_n_quantity_per_pack": 6.0,
    },
    {"id": "2", "title": "HP laptop", "supplier": "HP", "price": 10995, "ean": []},
    {"id": "1", "title": "Xerox toner again", "supplier": "Xerox", "price": None, "ean": ["9"]},
]


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def zipped(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def gzipped_with_name(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buffer) as archive:
        archive.write(data)
    return buffer.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def rows_read(path: Path, **kwargs) -> int:
    """The number of rows iter_frames reads from the whole file."""
    return sum(len(frame) for frame in iter_frames(path, **kwargs))


def read_error(path: Path, **kwargs) -> DatasetReadError:
    """The DatasetReadError that reading the whole file raises."""
    with pytest.raises(DatasetReadError) as caught:
        rows_read(path, **kwargs)
    assert caught.value.message and str(caught.value) == caught.value.message
    return caught.value
