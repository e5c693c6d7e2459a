"""A run's results (the cleaned catalog, a model version, an index version) are recorded by
run_finish in the transaction that marks the attempt succeeded, each with its audit event; an
attempt that loses run_finish's compare-and-set (cancelled, or failed as worker lost, while the
job ran) records none of them and leaves no files. The task body is called directly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from core.models import AuditEvent
from recsys import services
from recsys.models import IndexVersion, ModelVersion, PipelineRun
from recsys.pipelines import steps
from recsys.storage import run_dir
from tests.recsys.pipeline_setup import approve_run, request_run

pytestmark = pytest.mark.django_db


def _approved(org, capture) -> PipelineRun:
    run = request_run(org)
    with capture(execute=False):
        approve_run(org, run)
    return run


def _events(verb: str, target) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb, target_id=str(target.pk)).order_by("id"))


def test_a_succeeded_run_records_its_model_and_index_versions_with_audit_events(
    porg, django_capture_on_commit_callbacks
):
    run = _approved(porg, django_capture_on_commit_callbacks)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error + run.log
    model = ModelVersion.objects.get(run=run)
    index = IndexVersion.objects.get(run=run)
    assert run.outputs["model_version"] == model.pk
    assert run.outputs["index_version"] == index.pk

    [model_created] = _events("modelversion.created", model)
    [index_created] = _events("indexversion.created", index)
    assert model_created.after["run"] == run.pk
    assert model_created.after["checksum"] == model.checksum
    assert index_created.after["run"] == run.pk
    assert index_created.after["model_version"] == model.pk
    assert index_created.after["checksum"] == index.checksum
    assert index_created.after["status"] == "candidate"
    # Recorded in the transaction that marks the attempt succeeded, before its own event.
    [succeeded] = _events("pipelinerun.succeeded", run)
    assert model_created.pk < index_created.pk < succeeded.pk
    assert {model_created.correlation_id, index_created.correlation_id} == {run.job_key}


@pytest.mark.parametrize("meanwhile", ["cancelled", "worker_lost"])
def test_an_attempt_that_loses_the_finish_records_no_version_and_keeps_no_file(
    porg, settings, monkeypatch, meanwhile, django_capture_on_commit_callbacks
):
    """While the job evaluates (its last step, which reports no progress), the run is cancelled
    or the sweep fails it as worker lost: the job still finishes its work, but run_finish's
    compare-and-set does not let it succeed, so no model, index or cleaned catalog version is
    recorded and the attempt's files are gone."""
    media = Path(settings.MEDIA_ROOT)
    cleaned_before = set(media.rglob("catalog.clean*.csv"))
    run = _approved(porg, django_capture_on_commit_callbacks)
    real_evaluate = steps.evaluate_models

    def evaluate_then_lose_the_run(*args, **kwargs):
        metrics = real_evaluate(*args, **kwargs)
        if meanwhile == "cancelled":
            services.run_cancel(actor=porg.user("beta.lead"), run=run)
        else:
            settings.STEWARD_RUN_WORKER_LOST_AFTER_SECONDS = 30
            PipelineRun.objects.filter(pk=run.pk).update(
                heartbeat_at=timezone.now() - timedelta(seconds=31)
            )
            with django_capture_on_commit_callbacks(execute=True):
                assert services.runs_sweep()["worker_lost"] == 1
        return metrics

    monkeypatch.setattr(steps, "evaluate_models", evaluate_then_lose_the_run)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == ("cancelled" if meanwhile == "cancelled" else "failed"), run.log
    assert "model_version" not in run.outputs and "index_version" not in run.outputs
    assert not ModelVersion.objects.filter(run=run).exists()
    assert not IndexVersion.objects.filter(run=run).exists()
    assert not AuditEvent.objects.filter(
        verb__in=["modelversion.created", "indexversion.created", "datasetversion.derived"]
    ).exists()
    assert not run_dir(run.job_key, 1).exists()
    assert set(media.rglob("catalog.clean*.csv")) == cleaned_before
