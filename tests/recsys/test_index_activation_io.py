"""Activating an index verifies its files (hashes every one of them) before the short transaction
that switches the active pointer, so the verification never holds a write lock (on SQLite the
database's one write lock, which a worker recording a run's progress waits for); the pointer
switch re-checks, under its lock, that the verified files did not change meanwhile."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from core.errors import ValidationError
from governance import services as gov
from recsys import services
from recsys.models import ActiveIndex, IndexVersion
from recsys.pipelines import indexing
from tests.conftest import build_org
from tests.db_probe import database_is_sqlite, database_writable_now
from tests.recsys.pipeline_setup import approve_run, build_pipeline_org, request_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def approved_index(settings, tmp_path, tiny_model_path):
    """A candidate index built by a run (executed here, as a worker would), its activation
    approved by the pipeline team's lead. No broker messages: the jobs are run directly."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    # Nothing reaches a broker: a session worker (committed rows) would take the run too.
    with mock.patch("core.queueing.send"), mock.patch("recsys.services.runs._enqueue"):
        org = build_pipeline_org(build_org(), tiny_model_path)
        run = request_run(org)
        approve_run(org, run)
        services.run_execute(run_id=run.pk, attempt=1)
        index = IndexVersion.objects.get(run=run)
        request = services.index_request_activation(actor=org.user("beta.ops"), index=index)
        gov.approval_decide(actor=org.user("beta.lead"), request=request, verdict="approve")
        yield org, index


def test_the_index_is_verified_outside_the_transaction_that_switches_the_pointer(
    approved_index,
):
    org, index = approved_index
    verify = indexing.verify_index

    def verify_then_rewrite(path):
        meta = verify(path)
        index_file = os.path.join(path, indexing.INDEX_FILE)
        os.utime(index_file, ns=(0, os.stat(index_file).st_mtime_ns + 10**9))  # rewritten
        return meta

    with (
        mock.patch.object(indexing, "verify_index", verify_then_rewrite),
        pytest.raises(ValidationError, match="changed while it was verified"),
    ):
        services.index_activate(actor=org.user("beta.ops"), index=index)
    assert not ActiveIndex.objects.exists()
    assert IndexVersion.objects.get(pk=index.pk).status == "candidate"

    # Activated on a second try; every file is hashed while other connections can write (the
    # probe is SQLite's write lock; PostgreSQL locks rows).
    probes = []
    sqlite = database_is_sqlite()
    hash_file = indexing.sha256_file

    def probing_hash(path):
        if sqlite:
            probes.append(database_writable_now())
        return hash_file(path)

    with mock.patch.object(indexing, "sha256_file", probing_hash):
        pointer = services.index_activate(actor=org.user("beta.ops"), index=index)
    assert pointer.index_id == index.pk
    assert IndexVersion.objects.get(pk=index.pk).status == "active"
    if sqlite:
        assert probes and all(probes), probes
