"""Pipeline runs through the services with a tiny model: the approval gate (each missing
approval), the task's guards, execution end to end, cancel, retry, activation with its gate,
rollback and a corrupted index. The task body is called directly, as a worker would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings

from core.errors import InvalidTransitionError, PermissionDeniedError, ValidationError
from governance import services as gov
from governance.models import DatasetVersion
from recsys import services
from recsys.execution import execute
from recsys.models import ActiveIndex, IndexVersion, PipelineRun
from recsys.pipelines.encoding import resolve_device
from recsys.pipelines.engine import SEARCH_MODES
from recsys.pipelines.fusion import FUSION_WEIGHTS
from recsys.services.runs import run_start
from recsys.serving import EngineSpec
from recsys.storage import run_dir
from teams import services as team_services
from tests.recsys.pipeline_setup import (
    approve_run,
    build_pipeline_org,
    request_run,
    run_approval,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def pipeline_org(org, settings, tmp_path, tiny_model_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return build_pipeline_org(org, tiny_model_path)


_request = request_run
_approval = run_approval


def _approve_all(org, run, capture):
    with capture(execute=False) as callbacks:
        approve_run(org, run)
    return callbacks


def test_request_needs_every_input_team_and_the_pipeline_team(pipeline_org):
    run = _request(pipeline_org)
    assert run.state == "awaiting_approval"
    teams = sorted(r.team.slug for r in _approval(run).requirements.all())
    assert teams == ["alpha", "beta"]
    with pytest.raises(PermissionDeniedError, match="your own request"):
        gov.approval_decide(
            actor=pipeline_org.user("beta.ops"), request=_approval(run), verdict="approve"
        )


@pytest.mark.parametrize("missing", ["alpha", "beta", "both"])
def test_a_run_does_not_start_before_every_approval(
    pipeline_org, missing, django_capture_on_commit_callbacks
):
    run = _request(pipeline_org)
    with django_capture_on_commit_callbacks() as callbacks:
        if missing != "alpha" and missing != "both":
            gov.approval_decide(
                actor=pipeline_org.user("alpha.steward"), request=_approval(run), verdict="approve"
            )
        if missing != "beta" and missing != "both":
            gov.approval_decide(
                actor=pipeline_org.user("beta.lead"), request=_approval(run), verdict="approve"
            )
    assert callbacks == []  # nothing enqueued
    services.run_execute(run_id=run.pk, attempt=1)  # a direct call records the refusal only
    run.refresh_from_db()
    assert run.state == "awaiting_approval"
    assert run.attempt == 0 and "refused a delivery" in run.log
    assert not run.model_versions.exists()


def test_full_retrain_runs_after_the_approvals(pipeline_org, django_capture_on_commit_callbacks):
    run = _request(pipeline_org)
    callbacks = _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == "queued" and len(callbacks) >= 1
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error + run.log
    assert run.progress == 100 and run.attempt == 1
    assert set(run.timings) == {"clean", "pairs", "fine_tune", "index", "evaluate"}
    metrics = run.outputs["metrics"]
    assert {"zero_shot", "fine_tuned"} <= set(metrics)
    assert 0.0 <= metrics["fine_tuned"]["ndcg@10"] <= 1.0
    index = IndexVersion.objects.get(run=run)
    assert index.status == "candidate" and index.n_items > 100
    cleaned = DatasetVersion.objects.get(pk=run.outputs["cleaned_version"])
    assert cleaned.asset == pipeline_org.asset and cleaned.uploaded_by.username == "beta.ops"
    assert not (run_dir(run.job_key, 1) / "work").exists()
    # The worker's device (STEWARD_PIPELINE_DEVICE, "auto" by default: this host's GPU if it
    # has one) is said in the log and kept with the outputs and the model's training config.
    device = resolve_device("auto")
    assert run.outputs["device"] == device and f"device: {device}" in run.log
    assert run.model_versions.get().config["device"] == device
    # A duplicate delivery of the same attempt does nothing.
    services.run_execute(run_id=run.pk, attempt=1)
    assert PipelineRun.objects.get(pk=run.pk).state == "succeeded"


@pytest.mark.parametrize(
    "setting, reason",
    [
        ("cuda", "device 'cuda' asked for, but this host has no usable CUDA GPU"),
        ("cuda:1", "device 'cuda:1' asked for, but this host has no usable CUDA GPU"),
        ("tpu", "unknown device 'tpu': use auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_device_the_worker_cannot_honour_fails_the_run_with_the_reason(
    pipeline_org, settings, monkeypatch, setting, reason, django_capture_on_commit_callbacks
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only worker host
    settings.STEWARD_PIPELINE_DEVICE = setting
    run = _request(pipeline_org)
    _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed"
    assert run.error == f"ValueError: STEWARD_PIPELINE_DEVICE: {reason}"
    assert not run.model_versions.exists() and not IndexVersion.objects.filter(run=run).exists()
    assert not run_dir(run.job_key, 1).exists()
    # Retried on a host with a right setting, the same approved run succeeds.
    settings.STEWARD_PIPELINE_DEVICE = "cpu"
    with django_capture_on_commit_callbacks(execute=False):
        services.run_retry(actor=pipeline_org.user("beta.ops"), run=run)
    services.run_execute(run_id=run.pk, attempt=2)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error + run.log
    assert run.outputs["device"] == "cpu"


def test_inputs_changed_after_approval_fail_the_run_with_the_reason(
    pipeline_org, django_capture_on_commit_callbacks
):
    run = _request(pipeline_org)
    _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    gov.dataset_version_deprecate(
        actor=pipeline_org.user("alpha.steward"),
        version=pipeline_org.catalog_v,
        reason="bad prices",
    )
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed"
    assert "refused to start: input(s) no longer approved" in run.error
    assert not run.model_versions.exists()


def test_requester_who_lost_the_right_fails_the_run(
    pipeline_org, django_capture_on_commit_callbacks
):
    run = _request(pipeline_org)
    _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    membership = pipeline_org.user("beta.ops").memberships.get()
    team_services.membership_revoke(actor=pipeline_org.admin, membership=membership)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed" and "may no longer run this pipeline" in run.error


def test_stale_attempt_and_worker_lost(pipeline_org, django_capture_on_commit_callbacks):
    run = _request(pipeline_org)
    _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    services.run_execute(run_id=run.pk, attempt=2)  # not the expected attempt
    run.refresh_from_db()
    assert run.state == "queued" and "refused a delivery for attempt 2" in run.log
    PipelineRun.objects.filter(pk=run.pk).update(state="running", attempt=1)  # worker died
    services.run_execute(run_id=run.pk, attempt=1)  # redelivered
    run.refresh_from_db()
    assert run.state == "failed" and "worker lost" in run.error
    with django_capture_on_commit_callbacks() as callbacks:
        services.run_retry(actor=pipeline_org.user("beta.ops"), run=run)
    run.refresh_from_db()
    assert run.state == "queued" and len(callbacks) == 1
    services.run_execute(run_id=run.pk, attempt=2)
    run.refresh_from_db()
    assert run.state == "succeeded" and run.attempt == 2


def test_cancel_queued_at_once_and_running_at_the_next_batch(
    pipeline_org, django_capture_on_commit_callbacks
):
    queued = _request(pipeline_org)
    _approve_all(pipeline_org, queued, django_capture_on_commit_callbacks)
    services.run_cancel(actor=pipeline_org.user("beta.lead"), run=queued)
    queued.refresh_from_db()
    assert queued.state == "cancelled"
    with pytest.raises(ValidationError, match="already cancelled"):
        services.run_cancel(actor=pipeline_org.user("beta.lead"), run=queued)

    running = _request(pipeline_org, max_steps=50)
    _approve_all(pipeline_org, running, django_capture_on_commit_callbacks)
    run = run_start(run_id=running.pk, attempt=1)  # the worker has started it
    assert run.state == "running"
    services.run_cancel(actor=pipeline_org.user("beta.ops"), run=run)
    execute(run=run, attempt=1)  # stops at the first progress report
    running.refresh_from_db()
    assert running.state == "cancelled" and "cancelled" in running.error
    assert not run_dir(running.job_key, 1).exists()  # no temporary files left
    assert not running.model_versions.exists()


def test_viewer_cannot_request_or_cancel(pipeline_org):
    with pytest.raises(PermissionDeniedError, match="only ops and leads of Beta"):
        services.run_request(
            actor=pipeline_org.user("beta.steward"),
            pipeline=pipeline_org.pipeline,
            kind="full_retrain",
            inputs=[pipeline_org.catalog_v, pipeline_org.labels_v],
            reason="x",
        )
    assert not PipelineRun.objects.exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"parameters": {"epochs": 0}}, "epochs must be between 1 and 20"),
        ({"parameters": {"learning": 1}}, "Unknown parameter"),
        ({"reason": " "}, "Say why"),
        ({"inputs": "labels-only"}, "needs an approved product_catalog"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(pipeline_org, change, words):
    kwargs = {
        "actor": pipeline_org.user("beta.ops"),
        "pipeline": pipeline_org.pipeline,
        "kind": "full_retrain",
        "inputs": [pipeline_org.catalog_v, pipeline_org.labels_v],
        "parameters": {},
        "reason": "retrain",
    }
    kwargs.update(change)
    if change.get("inputs") == "labels-only":
        kwargs["inputs"] = [pipeline_org.labels_v]
    with pytest.raises(ValidationError, match=words):
        services.run_request(**kwargs)
    assert not PipelineRun.objects.exists()


def test_activation_needs_approval_gate_and_intact_files_then_rollback(
    pipeline_org, django_capture_on_commit_callbacks
):
    org = pipeline_org
    first = _request(org)
    _approve_all(org, first, django_capture_on_commit_callbacks)
    services.run_execute(run_id=first.pk, attempt=1)
    index = IndexVersion.objects.get(run=first)
    with pytest.raises(PermissionDeniedError, match="approved activation request"):
        services.index_activate(actor=org.user("beta.ops"), index=index)
    request = services.index_request_activation(actor=org.user("beta.ops"), index=index)
    assert [r.roles for r in request.requirements.all()] == [["lead"]]
    with pytest.raises(PermissionDeniedError):
        gov.approval_decide(actor=org.user("beta.steward"), request=request, verdict="approve")
    gov.approval_decide(actor=org.user("beta.lead"), request=request, verdict="approve")
    pointer = services.index_activate(actor=org.user("beta.ops"), index=index)
    assert pointer.index == index and pointer.previous is None

    second = _request(org)
    _approve_all(org, second, django_capture_on_commit_callbacks)
    services.run_execute(run_id=second.pk, attempt=1)
    candidate = IndexVersion.objects.get(run=second)
    assert "active" in candidate.metrics  # evaluated against the served index
    fusion = candidate.metrics["fusion"]  # the hybrid weight it serves, tuned at evaluation
    assert fusion["method"] == "weighted_rrf"
    assert fusion["dense_weight"] in (*FUSION_WEIGHTS, 0.5)
    assert candidate.metrics["hybrid"]["dense_weight"] == fusion["dense_weight"]
    assert EngineSpec.of(candidate).dense_weight == fusion["dense_weight"]
    approval = services.index_request_activation(actor=org.user("beta.ops"), index=candidate)
    gov.approval_decide(actor=org.user("beta.lead"), request=approval, verdict="approve")
    assert candidate.metrics["default_mode"] in SEARCH_MODES
    candidate.metrics = {
        **candidate.metrics,
        "default_mode": "dense",  # the gate judges the mode the index would serve
        "fine_tuned": {
            **candidate.metrics["fine_tuned"],
            "ndcg@10": candidate.metrics["active"]["ndcg@10"] - 0.05,
        },
    }
    candidate.save(update_fields=["metrics"])
    with pytest.raises(ValidationError, match="quality gate refuses"):
        services.index_activate(actor=org.user("beta.ops"), index=candidate)
    candidate.metrics["fine_tuned"]["ndcg@10"] = candidate.metrics["active"]["ndcg@10"]
    candidate.save(update_fields=["metrics"])
    with open(f"{candidate.path}/index.faiss", "ab") as damaged:
        damaged.write(b"corrupt")
    with pytest.raises(ValidationError, match="damaged"):
        services.index_activate(actor=org.user("beta.ops"), index=candidate)
    assert ActiveIndex.objects.get(pipeline=org.pipeline).index == index

    third = _request(org)
    _approve_all(org, third, django_capture_on_commit_callbacks)
    services.run_execute(run_id=third.pk, attempt=1)
    newest = IndexVersion.objects.get(run=third)
    newest.metrics["fine_tuned"]["ndcg@10"] = 1.0
    newest.metrics["default_mode"] = "dense"
    newest.save(update_fields=["metrics"])
    approval = services.index_request_activation(actor=org.user("beta.ops"), index=newest)
    gov.approval_decide(actor=org.user("beta.lead"), request=approval, verdict="approve")
    services.index_activate(actor=org.user("beta.ops"), index=newest)
    pointer = services.index_rollback(actor=org.user("beta.ops"), pipeline=org.pipeline)
    assert pointer.index == index and pointer.previous == newest
    index.refresh_from_db()
    assert index.status == "active"
    with pytest.raises(InvalidTransitionError):
        gov.approval_decide(actor=org.user("beta.lead"), request=approval, verdict="approve")


def test_a_clean_run_cleans_and_submits_the_catalog_only(
    pipeline_org, django_capture_on_commit_callbacks
):
    org = pipeline_org
    run = services.run_request(
        actor=org.user("beta.ops"),
        pipeline=org.pipeline,
        kind="clean",
        inputs=[org.catalog_v],
        reason="dedupe the catalog",
    )
    teams = sorted(r.team.slug for r in run_approval(run).requirements.all())
    assert teams == ["alpha", "beta"]
    _approve_all(org, run, django_capture_on_commit_callbacks)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    assert set(run.timings) == {"clean"}
    assert not run.model_versions.exists() and not IndexVersion.objects.filter(run=run).exists()
    cleaned = DatasetVersion.objects.get(pk=run.outputs["cleaned_version"])
    assert cleaned.asset == org.asset and cleaned.number == org.catalog_v.number + 1
    report = run.outputs["clean_report"]
    assert report["rows_in"] >= report["rows_out"] > 0


def _running(org, capture, **parameters):
    """A run approved and started by a worker (attempt 1 RUNNING, heartbeat just now)."""
    run = _request(org, **parameters)
    _approve_all(org, run, capture)
    return run_start(run_id=run.pk, attempt=1)


def _started_count(run) -> int:
    from core.models import AuditEvent

    return AuditEvent.objects.filter(verb="pipelinerun.started", target_id=str(run.pk)).count()


def test_a_duplicate_delivery_for_a_running_attempt_with_a_fresh_heartbeat_is_ignored(
    pipeline_org, django_capture_on_commit_callbacks
):
    """The sweep re-sends a run queued too long, and Redis redelivers a job past its visibility
    timeout: the same attempt is then delivered while its worker runs it. A worker that still
    reports is not lost: the delivery is ignored (said in the run's log) and the run goes on."""
    run = _running(pipeline_org, django_capture_on_commit_callbacks)
    services.run_execute(run_id=run.pk, attempt=1)  # the duplicate, on another worker
    row = PipelineRun.objects.get(pk=run.pk)
    assert row.state == "running" and row.error == "", row.error
    assert "ignored a duplicate delivery of attempt 1" in row.log
    execute(run=run, attempt=1)  # the worker that really runs it finishes it
    row.refresh_from_db()
    assert row.state == "succeeded", row.error + row.log
    assert row.attempt == 1 and _started_count(run) == 1
    assert IndexVersion.objects.filter(run=run).count() == 1


def test_a_duplicate_delivery_for_a_silent_worker_fails_it_as_worker_lost_without_its_files(
    pipeline_org, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    run = _running(pipeline_org, django_capture_on_commit_callbacks)
    partial = run_dir(run.job_key, 1) / "model"
    partial.mkdir(parents=True)
    (partial / "weights.tmp").write_bytes(b"half a model")
    silent_since = timezone.now() - timedelta(hours=1)  # STEWARD_RUN_WORKER_LOST_AFTER_SECONDS
    PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=silent_since)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed" and "worker lost" in run.error
    assert not run_dir(run.job_key, 1).exists()


def test_the_sweep_fails_a_silent_run_as_worker_lost_and_removes_its_artifact_folder(
    pipeline_org, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    settings.STEWARD_RUN_WORKER_LOST_AFTER_SECONDS = 30
    run = _running(pipeline_org, django_capture_on_commit_callbacks)
    other = _running(pipeline_org, django_capture_on_commit_callbacks)
    for each in (run, other):
        (run_dir(each.job_key, 1) / "index").mkdir(parents=True)
        (run_dir(each.job_key, 1) / "index" / "index.faiss").write_bytes(b"part")
    assert services.runs_sweep(now=timezone.now() + timedelta(seconds=10)) == {
        "requeued": 0,
        "worker_lost": 0,
    }
    PipelineRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.runs_sweep() == {"requeued": 0, "worker_lost": 1}
    run.refresh_from_db()
    assert run.state == "failed" and "worker lost" in run.error
    assert not run_dir(run.job_key, 1).exists()
    assert run_dir(other.job_key, 1).exists()  # its worker still reports
    assert PipelineRun.objects.get(pk=other.pk).state == "running"


class WorkerKilled(BaseException):
    """Stands in for the worker process being killed (hard time limit, out of memory): no
    handler or `finally` of the job runs."""


def test_a_killed_attempt_leaves_no_stored_cleaned_catalog_once_the_sweep_finds_it_lost(
    pipeline_org, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The cleaned catalog is stored before run_finish would record it; the worker is killed
    while fine-tuning, so its own clean-up never runs. The sweep that fails the run as "worker
    lost" removes the stored file with the attempt's folder."""
    from datetime import timedelta

    from django.utils import timezone

    from recsys import execution
    from recsys.pipelines import steps

    def killed(*args, **kwargs):
        raise WorkerKilled

    media = Path(settings.MEDIA_ROOT)
    before = set(media.rglob("catalog.clean*.csv"))
    monkeypatch.setattr(steps, "fine_tune", killed)
    monkeypatch.setattr(execution, "run_results_discard_unrecorded", lambda results: None)
    run = _request(pipeline_org)
    _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    with pytest.raises(WorkerKilled):
        services.run_execute(run_id=run.pk, attempt=1)
    left = set(media.rglob("catalog.clean*.csv")) - before
    assert len(left) == 1  # stored, never recorded: the killed worker left it

    settings.STEWARD_RUN_WORKER_LOST_AFTER_SECONDS = 30
    PipelineRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.runs_sweep()["worker_lost"] == 1
    assert set(media.rglob("catalog.clean*.csv")) == before
    assert not run_dir(run.job_key, 1).exists()
    assert (
        not DatasetVersion.objects.filter(asset=pipeline_org.asset)
        .exclude(pk=pipeline_org.catalog_v.pk)
        .exists()
    )


def test_the_sweep_re_sends_queued_runs_after_the_configured_time(
    pipeline_org, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from recsys.services import runs as run_services

    settings.STEWARD_RUN_REENQUEUE_AFTER_SECONDS = 5
    run = _request(pipeline_org)
    _approve_all(pipeline_org, run, django_capture_on_commit_callbacks)
    PipelineRun.objects.filter(pk=run.pk).update(enqueued_at=timezone.now())
    sent = []
    monkeypatch.setattr(run_services, "_enqueue", lambda *job: sent.append(job))
    assert services.runs_sweep()["requeued"] == 0
    assert services.runs_sweep(now=timezone.now() + timedelta(seconds=6))["requeued"] == 1
    assert sent == [(run.pk, 1, "full_retrain")]


def test_cancelling_a_run_awaiting_approval_records_who_cancelled_it(pipeline_org):
    from core.models import AuditEvent

    run = _request(pipeline_org)  # requested by beta.ops
    lead = pipeline_org.user("beta.lead")
    services.run_cancel(actor=lead, run=run)
    approval = _approval(run)
    assert approval.state == "cancelled"
    assert "beta.lead" in approval.outcome_note
    event = AuditEvent.objects.filter(verb="approval.cancelled", target_id=str(approval.pk)).get()
    assert event.actor == lead
    run.refresh_from_db()
    assert run.state == "cancelled" and run.error == "cancelled by beta.lead"


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory"),
        (SoftTimeLimitExceeded(), "stopped at its time limit of 18000s"),
    ],
)
def test_a_failed_attempt_registers_no_cleaned_catalog_version_and_its_retry_registers_one(
    pipeline_org, settings, monkeypatch, failure, reason, django_capture_on_commit_callbacks
):
    """The catalog is cleaned first; fine-tuning then dies (out of memory, or the task's soft
    time limit). The cleaned catalog of a failed attempt must not reach the catalog's stewards
    as a new version."""
    from recsys.pipelines import steps

    org = pipeline_org
    settings.STEWARD_RUN_SOFT_TIME_LIMIT = 18000
    versions_before = DatasetVersion.objects.filter(asset=org.asset).count()
    media = Path(settings.MEDIA_ROOT)
    cleaned_files_before = set(media.rglob("catalog.clean*.csv"))
    real_fine_tune = steps.fine_tune

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(steps, "fine_tune", fail)
    run = _request(org)
    _approve_all(org, run, django_capture_on_commit_callbacks)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed" and run.error == reason
    assert "clean" in run.timings  # the catalog was cleaned before it failed
    assert DatasetVersion.objects.filter(asset=org.asset).count() == versions_before
    assert not run_dir(run.job_key, 1).exists()
    # The cleaned file was stored before run_finish (no slow I/O under its lock): it went too.
    assert set(media.rglob("catalog.clean*.csv")) == cleaned_files_before

    monkeypatch.setattr(steps, "fine_tune", real_fine_tune)
    with django_capture_on_commit_callbacks(execute=False):
        services.run_retry(actor=org.user("beta.ops"), run=run)
    services.run_execute(run_id=run.pk, attempt=2)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error + run.log
    cleaned = DatasetVersion.objects.get(asset=org.asset, number__gt=org.catalog_v.number)
    assert run.outputs["cleaned_version"] == cleaned.pk
    assert cleaned.status == "draft" and cleaned.submit_when_profiled
    assert Path(cleaned.file.path).is_file()


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        (
            {"CELERY_BROKER_URL": "redis://127.0.0.1:9/0", "CELERY_VISIBILITY_TIMEOUT": "3600"}
            | {"STEWARD_RUN_SOFT_TIME_LIMIT": "3000", "STEWARD_RUN_TIME_LIMIT": "3600"},
            "CELERY_VISIBILITY_TIMEOUT (3600s) must be above STEWARD_RUN_TIME_LIMIT (3600s)",
        ),
        (
            {"STEWARD_RUN_SOFT_TIME_LIMIT": "600", "STEWARD_RUN_TIME_LIMIT": "600"},
            "STEWARD_RUN_SOFT_TIME_LIMIT must be positive and below STEWARD_RUN_TIME_LIMIT",
        ),
        ({"CELERY_BROKER_URL": "redis://127.0.0.1:9/0"}, None),  # the defaults fit
    ],
)
def test_run_time_limits_the_broker_would_cut_short_are_refused_at_start_up(env, refusal):
    """Redis redelivers a job unacknowledged for its visibility timeout: a run allowed to go
    on longer would be delivered again while it runs. Settings refuse such limits."""
    from recsys.tasks import run_execute_task

    assert run_execute_task.soft_time_limit == django_settings.STEWARD_RUN_SOFT_TIME_LIMIT
    assert run_execute_task.time_limit == django_settings.STEWARD_RUN_TIME_LIMIT
    code = "import django; django.setup(); from recsys.tasks import run_execute_task as t; "
    code += "print(t.soft_time_limit, t.time_limit)"
    ambient = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_RUN_")}
    env = {**ambient, "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if refusal is None:
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["18000", "18600"]
    else:
        assert done.returncode != 0 and "ImproperlyConfigured" in done.stderr
        assert refusal in done.stderr
