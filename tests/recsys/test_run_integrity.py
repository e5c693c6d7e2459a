"""The worker trains only on the approved bytes (issue 11, item 8): a stored input file changed
after its version was approved fails the run with the reason, before anything is trained."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from recsys import services
from recsys.models import IndexVersion
from tests.recsys.pipeline_setup import approve_run, request_run

pytestmark = pytest.mark.django_db


def test_an_input_file_altered_after_approval_fails_the_run(
    porg, django_capture_on_commit_callbacks
):
    run = request_run(porg)
    with django_capture_on_commit_callbacks(execute=False):
        approve_run(porg, run)
    path = default_storage.path(porg.catalog_v.file.name)
    with open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    with open(path, "wb") as handle:  # still a valid catalog: one product row fewer
        handle.write(b"".join(lines[:-1]))
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed"
    assert "has sha256 " in run.error and porg.catalog_v.sha256 in run.error
    assert "altered after approval" in run.error
    assert not run.model_versions.exists() and not IndexVersion.objects.filter(run=run).exists()
