"""Reading the Chorus/Icecat products for the benchmarks: where the set lies, and each product's
"title | brand | description" text (the same text recsys.pipelines.pairs.product_texts builds)."""

import html
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def chorus_dir() -> Path:
    """The Chorus data folder: $STEWARD_CHORUS_DIR or ../shared/data/chorus-icecat."""
    default = ROOT.parent / "shared" / "data" / "chorus-icecat"
    return Path(os.environ.get("STEWARD_CHORUS_DIR") or default)


def clean_text(value) -> str:
    """HTML entities decoded, tags removed, whitespace collapsed."""
    text = _TAG.sub(" ", html.unescape(str(value or "")))
    return _SPACE.sub(" ", text).strip()


def product_text(record: dict, max_description: int = 300) -> str:
    """ "title | brand | description" with empty parts left out."""
    parts = [
        clean_text(record.get("title")),
        clean_text(record.get("supplier")),
        clean_text(record.get("short_description"))[:max_description].rstrip(),
    ]
    return " | ".join(p for p in parts if p)


def product_records() -> Iterator[dict]:
    """Every product record of every *.json.zip, in file order."""
    for path in sorted(chorus_dir().glob("*.json.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                yield from json.loads(archive.read(name))
