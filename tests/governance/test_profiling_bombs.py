"""Profiling bombs end to end: a file that is small on disk but huge once read (one endless line,
a zip of many members, a compression bomb, a slow read) fails its version with the reason, within
seconds and in bounded memory, and the stored original is kept.

The reading bounds themselves are tested on the library in test_profiling_limits.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import AuditEvent
from governance import services
from governance.choices import ProfileStatus
from governance.models import DatasetVersion
from tests.conftest import _worker_database_url

ROOT = Path(__file__).resolve().parents[2]
LINE_MB = 300  # the measurement: a ~300 KB gzip holding one 300 MB line
PEAK_LIMIT_MIB = 512
WALL_LIMIT_S = 30  # Django start-up included; the old code needed about a minute, then more
KILL_AFTER_S = 60


def one_line_gzip(path: Path, megabytes: int) -> Path:
    """A gzip of a single line of `megabytes` MiB of "a" without a newline (~1 KB per MB)."""
    block = b"a" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        for _ in range(megabytes):
            out.write(block)
    return path


# The child's own peak: VmHWM of its process image, written at exit. `ru_maxrss` from wait4 is no
# measure here: a child forked from this test process starts with its memory (the whole test
# session's, torch included) counted in, whatever it then execs.
MEASURED_MAIN = """
import atexit, os, re, runpy, sys
def _peak():
    status = open("/proc/self/status").read()
    kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
    open(os.environ["STEWARD_TEST_PEAK"], "w").write(str(kib))
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_measured(argv: list[str], env: dict, timeout: float) -> SimpleNamespace:
    """Run a Python script child (`argv` = [python, script, args...]); its exit code, output,
    wall time and peak resident memory (MiB, the child's own VmHWM). Killed after `timeout`."""
    out_path = Path(env["STEWARD_TEST_OUT"])
    peak_path = out_path.with_suffix(".peak")
    env = {**env, "STEWARD_TEST_PEAK": str(peak_path)}
    with open(out_path, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            [argv[0], "-c", MEASURED_MAIN, *argv[1:]],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
        try:
            proc.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        wall = time.monotonic() - started
    peak_kib = int(peak_path.read_text()) if peak_path.exists() else 0
    return SimpleNamespace(
        code=proc.returncode,
        output=out_path.read_text(errors="replace"),
        wall=wall,
        peak_mib=peak_kib / 1024,
        killed=killed,
    )


@pytest.mark.django_db(transaction=True)
def test_import_dataset_profile_now_on_one_huge_gzipped_line_fails_fast_in_bounded_memory(
    org, tmp_path
):
    """`import_dataset --profile-now` of a 300 KB gzip holding one 300 MB line (measured before
    the fix: 58 s and 764 MiB, then a failure; ten times the line exhausted memory)."""
    bomb = one_line_gzip(tmp_path / "catalog.csv.gz", LINE_MB)
    assert bomb.stat().st_size < 400_000
    media = tmp_path / "media"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_worker_database_url(),
        MEDIA_ROOT=str(media),
        # The command profiles in-process; the job it also enqueues must not reach the session's
        # worker (other MEDIA_ROOT: "the stored file is missing"): a broker nobody consumes.
        CELERY_BROKER_URL="memory://",
        STEWARD_TEST_OUT=str(tmp_path / "output.txt"),
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "manage.py", "import_dataset", "--asset", "catalog"]
    argv += ["--as", "alpha.steward", "--profile-now", str(bomb)]
    result = run_measured(argv, env, KILL_AFTER_S)
    print(f"wall {result.wall:.1f} s, peak RSS {result.peak_mib:.0f} MiB")

    assert not result.killed, f"still profiling after {KILL_AFTER_S} s ({result.peak_mib:.0f} MiB)"
    assert result.wall < WALL_LIMIT_S, result.output[-2000:]
    assert 0 < result.peak_mib < PEAK_LIMIT_MIB, result.output[-2000:]
    assert result.code == 1 and "Line 1 is longer than 16 MiB" in result.output, result.output

    version = DatasetVersion.objects.get(asset=org.asset)
    assert version.profile_status == ProfileStatus.FAILED
    assert version.profile_error.startswith("Line 1 is longer than 16 MiB"), version.profile_error
    event = AuditEvent.objects.get(verb="datasetversion.profile_failed")
    assert event.after == {"error": version.profile_error}
    # The stored original is kept, byte for byte.
    stored = media / version.file.name
    assert stored.read_bytes() == bomb.read_bytes()
    assert version.sha256 == hashlib.sha256(bomb.read_bytes()).hexdigest()


# --- each limit, from its setting, fails the version with the reason ---------------------------


def gzip_rows(rows: int) -> bytes:
    return gzip.compress(b"id,name\n" + b"1,apple\n" * rows, compresslevel=1)


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_of_zeros(megabytes: int) -> bytes:
    """A zip whose one member is `megabytes` MiB of "0" lines (about 1 KB on disk per MiB)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.csv", "w") as member,
    ):
        member.write(b"id\n")
        for _ in range(megabytes):
            member.write(b"0\n" * (1 << 19))
    return buffer.getvalue()


BOMBS = [
    pytest.param(
        {"STEWARD_PROFILE_MAX_LINE_BYTES": 100},
        "catalog.csv",
        lambda: b"id,name\n1,ok\n2," + b"x" * 200 + b"\n",
        "Line 3 is longer than 100 bytes",
        id="line",
    ),
    pytest.param(
        {"STEWARD_PROFILE_MAX_DECOMPRESSED_BYTES": 1 << 20},
        "catalog.csv.gz",
        lambda: gzip_rows(200_000),
        "The file decompresses to more than 1 MiB",
        id="decompressed",
    ),
    pytest.param(
        {},
        "catalog.csv.zip",
        lambda: zip_of_zeros(80),
        "The file decompresses to more than 100 times its size",
        id="ratio",
    ),
    pytest.param(
        {"STEWARD_PROFILE_MAX_ZIP_MEMBERS": 3},
        "catalog.csv.zip",
        lambda: zip_of({f"part{n}.csv": b"id\n1\n" for n in range(4)}),
        "The zip archive holds more than 3 members (4)",
        id="zip-members",
    ),
    pytest.param(
        {"STEWARD_PROFILE_MAX_SECONDS": 1e-6},
        "catalog.csv",
        lambda: b"id,name\n1,ok\n",
        "Profiling took longer than 1e-06 s",
        id="time",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("limits", "name", "make", "reason"), BOMBS)
def test_each_limit_fails_the_version_with_its_reason_and_keeps_the_file(
    org, settings, tmp_path, limits, name, make, reason
):
    content = make()  # built here, not when the tests are collected
    settings.MEDIA_ROOT = tmp_path / "media"
    for setting, value in limits.items():
        setattr(settings, setting, value)
    version = services.dataset_version_upload(
        actor=org.user("alpha.steward"),
        asset=org.asset,
        file=SimpleUploadedFile(name, content),
        name=name,
    )
    services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profile_status == ProfileStatus.FAILED
    assert version.profile_error.startswith(reason), version.profile_error
    assert "stored file is kept" in version.profile_error
    event = AuditEvent.objects.get(verb="datasetversion.profile_failed")
    assert event.after == {"error": version.profile_error}
    assert Path(default_storage.path(version.file.name)).read_bytes() == content


@pytest.mark.django_db
def test_the_pipeline_reads_with_the_same_bounds_but_no_profiling_time_limit(settings, tmp_path):
    from datafiles import DatasetReadError
    from recsys.execution import _read

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STEWARD_PROFILE_MAX_SECONDS = 1e-6  # profiling's alone
    content = b"query,product_id,grade\nshoe,1,3\n"
    stored = default_storage.save("datasets/t/labels.csv", ContentFile(content))
    sha256 = hashlib.sha256(content).hexdigest()  # the worker re-checks it before reading
    version = SimpleNamespace(file=SimpleNamespace(name=stored), format="csv", sha256=sha256)
    assert len(_read(version, kind="relevance_labels")) == 1

    settings.STEWARD_PROFILE_MAX_LINE_BYTES = 10
    with pytest.raises(DatasetReadError, match="Line 1 is longer than 10 bytes"):
        _read(version, kind="relevance_labels")
