"""Deterministic artifact paths: ARTIFACT_ROOT/runs/<job key>/<attempt>/..."""

import shutil
from pathlib import Path

from django.conf import settings


def run_dir(job_key: str, attempt: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "runs" / job_key / str(attempt)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
