"""The Chorus/Icecat data set: product records normalised to catalog columns, and a folder of
product zips bundled into one upload."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from datafiles.errors import DatasetReadError

CHORUS_PRODUCT_COLUMNS = ("id", "title", "brand", "price", "ean", "description", "attributes")
CHORUS_JUDGMENT_COLUMNS = ("query", "product_id", "grade")


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


def chorus_frame(records: list[dict]) -> pd.DataFrame:
    """Chorus/Icecat records as catalog rows: brand from supplier, price from integer cents,
    EANs comma-joined, description from short_description, attr_* fields as one JSON string."""
    frame = pd.DataFrame([_chorus_row(r) for r in records], columns=list(CHORUS_PRODUCT_COLUMNS))
    for name in ("id", "title", "brand", "ean", "description", "attributes"):
        frame[name] = frame[name].astype("string")
    frame["price"] = (pd.to_numeric(frame["price"], errors="coerce") / 100).astype("Float64")
    return frame


def bundle_product_zips(zips: list[Path], target: Path) -> Path:
    """One zip at `target` holding every member of the product `zips` (such as 1.json.zip,
    2.json.zip), folders left out. Byte-identical on every call (members in the given order, each
    with its own time and fixed permissions), so the same folder always makes the same upload
    and a checksum recognises it. Raises DatasetReadError (malformed) for a zip that cannot be
    read."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for member_zip in zips:
            try:
                with zipfile.ZipFile(member_zip) as inner:
                    for info in inner.infolist():
                        if info.is_dir():
                            continue
                        entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                        entry.compress_type = zipfile.ZIP_DEFLATED
                        entry.external_attr = 0o644 << 16
                        with inner.open(info) as src, out.open(entry, "w") as dst:
                            while chunk := src.read(1024 * 1024):
                                dst.write(chunk)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetReadError(
                    "malformed", f"{member_zip} is not a readable zip file: {exc}"
                ) from None
    return target
