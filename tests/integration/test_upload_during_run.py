"""A 200 MB upload while a run is running on a real worker: the upload is hashed and copied
outside any transaction, so the worker's progress writes never wait for it, and the run
succeeds. SQLite only (PostgreSQL has no database-wide write lock). That the write lock is free
during the hashing and the copy is shown directly in test_io_outside_transactions.py (under
tests/governance); here the whole path runs together."""

import hashlib
import time

import pytest
from django.conf import settings
from django.core.files.base import File

from governance import services as gov
from governance.models import DatasetVersion
from recsys.models import PipelineRun
from recsys.pipelines.encoding import tiny_encoder
from tests.conftest import build_org, wait_for
from tests.db_probe import database_writable_now, require_sqlite
from tests.recsys.pipeline_setup import approve_run, build_pipeline_org, request_run

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SIZE = 200 * 1024 * 1024
BLOCK = 8 * 1024 * 1024


def run_state(run) -> str:
    return PipelineRun.objects.values_list("state", flat=True).get(pk=run.pk)


def test_a_200_mb_upload_during_a_run_leaves_the_run_succeeding(celery_worker, tmp_path):
    require_sqlite()  # the embedded default's database-wide write lock is what this is about
    model_path = tiny_encoder(str(settings.ARTIFACT_ROOT / "test-models"), seed=1)
    org = build_pipeline_org(build_org(), model_path)
    run = request_run(org)
    approve_run(org, run)
    wait_for(lambda: run_state(run) in ("running", "succeeded", "failed"), timeout=120)
    assert run_state(run) == "running", PipelineRun.objects.get(pk=run.pk).log

    # Generated on the fly: a PNG signature under a .csv name, so the worker's profiling job
    # fails at once on the content ("unknown") instead of profiling 200 MB.
    big = tmp_path / "big.csv"
    digest = hashlib.sha256()
    with big.open("wb") as out:
        block = b"\x89PNG\r\n\x1a\n" + bytes(BLOCK - 8)
        for _ in range(SIZE // BLOCK):
            out.write(block)
            digest.update(block)
    started = time.monotonic()
    try:
        with big.open("rb") as handle:
            version = gov.dataset_version_upload(
                actor=org.user("alpha.engineer"),
                asset=org.asset,
                file=File(handle, name="big.csv"),
                name="big.csv",
            )
        upload_seconds = time.monotonic() - started
        overlapped = run_state(run) == "running"
        assert database_writable_now()

        def finished():
            state = run_state(run)
            return state if state in ("succeeded", "failed", "cancelled") else None

        assert wait_for(finished, timeout=240) == "succeeded", PipelineRun.objects.get(
            pk=run.pk
        ).log
        print(
            f"200 MB upload: {upload_seconds:.2f} s; the run was running throughout: {overlapped}"
        )
        assert version.size_bytes == SIZE and version.sha256 == digest.hexdigest()
        assert version.format == "unknown"
        wait_for(lambda: DatasetVersion.objects.get(pk=version.pk).profile_status == "failed")
    finally:
        big.unlink(missing_ok=True)
        for stored in (settings.MEDIA_ROOT / "datasets" / org.asset.slug).rglob("big.csv"):
            stored.unlink()
