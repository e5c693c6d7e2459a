"""Profiling on a real worker: the upload service stores the file and enqueues the profiling job
on commit; a separate Celery worker process (filesystem broker on the embedded pass, Redis on
the PostgreSQL pass) profiles the stored file and submits the version for approval, or records
why the file could not be profiled. The worker reads the real MEDIA_ROOT (under
STEWARD_VAR_DIR), so storage is not overridden here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from governance import services
from governance.choices import ApprovalState, ProfileStatus, VersionStatus
from governance.models import ApprovalRequest, DatasetVersion
from tests.conftest import build_org, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CSV = b"id,title,price\n" + b"".join(b"%d,product %d,%d.5\n" % (i, i, i) for i in range(1, 251))
HEADER_ONLY = b"id,title,price\n"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def stored_paths():
    """Files this test stored under the real MEDIA_ROOT, removed afterwards."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


def upload(org, name: str, content: bytes, stored_paths) -> DatasetVersion:
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile(name, content),
        name=name,
        note="nightly export",
    )
    path = Path(default_storage.path(version.file.name))
    stored_paths.append(path)
    # Committed (no surrounding transaction): stored before any processing.
    assert path.read_bytes() == content
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    return version


def profiled(version: DatasetVersion) -> DatasetVersion | None:
    version = DatasetVersion.objects.get(pk=version.pk)
    done = version.profile_status in (ProfileStatus.SUCCEEDED, ProfileStatus.FAILED)
    return version if done else None


def test_worker_profiles_good_and_bad_uploads(celery_worker, stored_paths):
    """Both files in one test: the session's worker process caches content-type ids, which the
    flush between transactional tests renumbers, so a second test's audit writes would fail
    there."""
    org = build_org()
    good = upload(org, "catalog.csv", CSV, stored_paths)
    bad = upload(org, "catalog.csv", HEADER_ONLY, stored_paths)

    good = wait_for(lambda: profiled(good), timeout=90)
    bad = wait_for(lambda: profiled(bad), timeout=90)

    # The good file: profiled and submitted automatically, with an approval request.
    assert good.profile_status == ProfileStatus.SUCCEEDED, good.profile_error
    assert good.row_count == 250
    assert [c["name"] for c in good.profile["columns"]] == ["id", "title", "price"]
    assert good.profiled_at is not None
    assert good.status == VersionStatus.SUBMITTED and good.submitted_at is not None
    request = ApprovalRequest.objects.get(
        subject_type=ContentType.objects.get_for_model(DatasetVersion), subject_id=good.pk
    )
    assert request.state == ApprovalState.PENDING
    assert request.requester == org.user("alpha.engineer")
    assert request.reason == "nightly export"
    assert list(request.requirements.values_list("team__slug", flat=True)) == ["alpha"]

    # The bad file: failed by the worker, with the reason; not submitted; file kept as received.
    assert bad.profile_status == ProfileStatus.FAILED
    assert "header (id, title, price) but no data rows" in bad.profile_error
    assert bad.profile is None and bad.row_count is None
    assert bad.status == VersionStatus.DRAFT
    assert not ApprovalRequest.objects.filter(
        subject_type=ContentType.objects.get_for_model(DatasetVersion), subject_id=bad.pk
    ).exists()
    path = Path(default_storage.path(bad.file.name))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == bad.sha256

    log = celery_worker.log()
    assert log.count("Task governance.profile_dataset_version") >= 4  # 2 received, 2 succeeded
    assert "raised unexpected" not in log
