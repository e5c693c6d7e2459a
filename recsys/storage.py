"""Deterministic artifact paths: ARTIFACT_ROOT/runs/<job key>/<attempt>/..."""

import json
import shutil
from pathlib import Path

from django.conf import settings


def run_dir(job_key: str, attempt: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "runs" / job_key / str(attempt)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# Files an attempt stored outside its folder (e.g. the cleaned catalog, in the dataset storage)
# before its run recorded them: listed here so that whoever removes a lost attempt's folder
# can remove them too (a killed worker runs no clean-up of its own).
STORED_FILES = "stored-files.json"


def note_stored_file(workdir: Path, name: str) -> None:
    names = stored_files(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / STORED_FILES).write_text(json.dumps([*names, name]))


def stored_files(workdir: Path) -> list[str]:
    try:
        return list(json.loads((workdir / STORED_FILES).read_text()))
    except (OSError, ValueError):
        return []
