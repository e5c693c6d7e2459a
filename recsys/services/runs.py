"""Pipeline runs: request (approval by every input-owning team and the pipeline's team),
enqueue only once approved, execute with guards under a row lock, cancel, retry, sweep.

A run's row is the only truth. The task re-checks everything at start: a run whose approval,
inputs, parameters or requester changed fails with the reason, and nothing runs.
"""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import audit_record, correlation_scope
from core.errors import PermissionDeniedError, ValidationError
from core.queueing import send
from governance.choices import ApprovalKind, ApprovalState
from governance.selectors import approval_latest_for
from governance.services.approvals import (
    SubjectHandler,
    approval_request_open,
    approval_withdraw,
)
from recsys import permissions
from recsys.actions import run_actions
from recsys.choices import TERMINAL_RUN_STATES, IndexStatus, RunKind, RunState
from recsys.constants import RUN_LOG_MAX_CHARS, RUN_QUEUES
from recsys.models import IndexVersion, Pipeline, PipelineRun
from recsys.pipelines.common import stable_hash
from recsys.services.run_results import RunResults, run_results_record
from recsys.services.run_validation import (
    USABLE_INPUT_STATES,
    check_inputs,
    check_inputs_match_version,
    inputs_fingerprint,
    validate_parameters,
    version_refusal,
    visible_inputs,
)
from recsys.storage import remove_tree, run_dir, stored_files
from recsys.transitions import assert_run_transition

if TYPE_CHECKING:
    from governance.models import DatasetVersion

logger = logging.getLogger(__name__)


def _run_state(run: PipelineRun) -> dict:
    return {
        "state": run.state,
        "attempt": run.attempt,
        "kind": run.kind,
        "progress": run.progress,
        "step": run.step,
    }


@transaction.atomic
def run_request(
    *,
    actor,
    pipeline: Pipeline,
    kind: str,
    inputs: list[DatasetVersion | int],
    parameters: dict | None = None,
    reason: str = "",
) -> PipelineRun:
    """Request a run of any kind; it waits for the approval of every team owning one of its
    inputs plus the pipeline's team, and is enqueued only once approved (the same gate and
    start guards for every kind). A version a single-step run works on is pinned by id in
    its parameters, hence in the approved parameters hash."""
    permissions.require_run(actor, pipeline)
    if kind not in RunKind.values:
        raise ValidationError(f"Unknown run kind '{kind}'.", field="kind")
    if not reason.strip():
        raise ValidationError("Say why this run is needed.", field="reason")
    versions = visible_inputs(actor, inputs)  # absent and invisible look the same
    check_inputs(pipeline, kind, versions)
    values = validate_parameters(pipeline, parameters or {}, kind)
    check_inputs_match_version(kind, versions, values)
    run = PipelineRun.objects.create(
        pipeline=pipeline,
        kind=kind,
        state=RunState.AWAITING_APPROVAL,
        inputs_hash=inputs_fingerprint(versions),
        parameters=values,
        parameters_hash=stable_hash(values),
        requested_by=actor,
        reason=reason.strip(),
        job_key=uuid.uuid4().hex,
    )
    run.inputs.set(versions)
    audit_record(
        actor=actor,
        verb="pipelinerun.requested",
        target=run,
        after={**_run_state(run), "inputs": [str(v) for v in versions], "parameters": values},
    )
    approval_request_open(actor=actor, kind=ApprovalKind.PIPELINE_RUN, subject=run, reason=reason)
    return run


def run_content_hash(run: PipelineRun) -> str:
    return stable_hash([run.pk, run.kind, run.inputs_hash, run.parameters_hash])


def _required_teams(run: PipelineRun) -> list:
    teams = [v.asset.owning_team for v in run.inputs.select_related("asset__owning_team")]
    return [*teams, run.pipeline.owning_team]


def _set_state(*, actor, run: PipelineRun, state: str, verb: str, **fields) -> None:
    """Every change of a run's state: allowed by RUN_TRANSITIONS, saved, audited."""
    assert_run_transition(run.state, state, what=f"Run #{run.pk}")
    before = _run_state(run)
    run.state = state
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=["state", *fields])
    audit_record(actor=actor, verb=verb, target=run, before=before, after=_run_state(run))


def _on_approved(actor, run: PipelineRun, request) -> None:
    run = PipelineRun.objects.select_for_update().get(pk=run.pk)
    if run.state != RunState.AWAITING_APPROVAL:
        return
    _set_state(
        actor=actor,
        run=run,
        state=RunState.QUEUED,
        verb="pipelinerun.queued",
        queued_at=timezone.now(),
    )
    transaction.on_commit(partial(_enqueue, run.pk, run.attempt + 1, run.kind))


def _on_closed(actor, run: PipelineRun, request) -> None:
    run = PipelineRun.objects.select_for_update().get(pk=run.pk)
    if run.state != RunState.AWAITING_APPROVAL:
        return
    reason = {
        ApprovalState.REJECTED: "the approval was rejected",
        ApprovalState.EXPIRED: "the approval request expired",
    }.get(request.state, request.outcome_note or "the approval request was cancelled")
    _set_state(
        actor=actor,
        run=run,
        state=RunState.CANCELLED,
        verb="pipelinerun.cancelled",
        error=f"Not run: {reason}.",
        finished_at=timezone.now(),
    )


def _enqueue(run_id: int, attempt: int, kind: str) -> None:
    """Send the job to its kind's queue (RUN_QUEUES). If the broker is down the run stays queued
    and the sweep sends it later; the task's guards make a duplicate delivery harmless."""
    from recsys.tasks import run_execute_task

    if send(run_execute_task, run_id, attempt, queue=RUN_QUEUES[kind], retry=False):
        PipelineRun.objects.filter(pk=run_id, state=RunState.QUEUED).update(
            enqueued_at=timezone.now()
        )


def runs_sweep(*, now=None, worker_lost_after: int | None = None) -> dict:
    """The beat job (every STEWARD_RUN_SWEEP_SECONDS). Re-enqueue queued runs no worker has
    started within STEWARD_RUN_REENQUEUE_AFTER_SECONDS (the broker was down, the message was
    lost, or the queue is long): a duplicate delivery is harmless. Fail running runs whose
    worker stopped reporting ("worker lost", e.g. killed by the OOM killer or at the task's
    hard time limit) and remove their attempt's files: ops retry them."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.STEWARD_RUN_REENQUEUE_AFTER_SECONDS)
    waiting = PipelineRun.objects.filter(state=RunState.QUEUED).filter(
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    )
    requeued = 0
    for run_id, attempt, kind in waiting.values_list("pk", "attempt", "kind"):
        _enqueue(run_id, attempt + 1, kind)
        requeued += 1
    silent = _silent_since(now, worker_lost_after)
    lost = 0
    for run_id in PipelineRun.objects.filter(
        Q(heartbeat_at__lt=silent) | Q(heartbeat_at__isnull=True), state=RunState.RUNNING
    ).values_list("pk", flat=True):
        with transaction.atomic():
            run = PipelineRun.objects.select_for_update().get(pk=run_id)
            if run.state == RunState.RUNNING and _worker_silent(run, silent):
                _finish_worker_lost(run)
                lost += 1
    return {"requeued": requeued, "worker_lost": lost}


def _silent_since(now, worker_lost_after: int | None = None):
    """A running run whose worker has not reported since this moment is "worker lost"."""
    if worker_lost_after is None:
        worker_lost_after = settings.STEWARD_RUN_WORKER_LOST_AFTER_SECONDS
    return now - timedelta(seconds=worker_lost_after)


def _worker_silent(run: PipelineRun, silent) -> bool:
    return run.heartbeat_at is None or run.heartbeat_at < silent


def _finish_worker_lost(run: PipelineRun) -> None:
    """Fail a running attempt whose worker stopped reporting, and remove its files (after the
    commit) once no worker writes them any more: a worker still alive after all finds its run
    failed at its next report and stops."""
    since = f"{run.heartbeat_at:%H:%M:%S}" if run.heartbeat_at else "it started"
    _finish_failed(
        run,
        f"worker lost: no sign of life from its worker since {since}; retry it as a new attempt",
    )
    transaction.on_commit(partial(_remove_lost_attempt, run.job_key, run.attempt))


def _remove_lost_attempt(job_key: str, attempt: int) -> None:
    """A lost attempt's folder, and what it stored elsewhere for versions it never recorded."""
    from governance.services.versions import dataset_version_discard_stored_files

    folder = run_dir(job_key, attempt)
    dataset_version_discard_stored_files(stored_files(folder))
    remove_tree(folder)


RUN_HANDLER = SubjectHandler(
    kind=ApprovalKind.PIPELINE_RUN,
    content_hash=run_content_hash,
    required_teams=_required_teams,
    on_approved=_on_approved,
    on_closed=_on_closed,
    link=lambda run: f"/recsys/runs/{run.pk}/",
    model=PipelineRun,
    authors=(("requested_by", "requested the run"),),
)


# --- execution guards -----------------------------------------------------------------------


def _refusal(run: PipelineRun) -> str:
    """Why this run may not start now ("" when it may)."""
    request = approval_latest_for(run, requirements=False, decisions=False)
    if request is None or request.state != ApprovalState.APPROVED:
        return "its approval is missing or no longer valid"
    if request.content_hash != run_content_hash(run):
        return "the run changed after it was approved"
    versions = list(run.inputs.all())
    if inputs_fingerprint(versions) != run.inputs_hash:
        return "its inputs changed after they were approved"
    unusable = [str(v) for v in versions if v.status not in USABLE_INPUT_STATES]
    if unusable:
        return f"input(s) no longer approved: {', '.join(unusable)}"
    if stable_hash(run.parameters) != run.parameters_hash:
        return "its parameters changed after they were approved"
    gone = version_refusal(run)
    if gone:
        return gone
    if not permissions.can_run(run.requested_by, run.pipeline):
        return f"{run.requested_by.get_username()} may no longer run this pipeline"
    return ""


def run_start(*, run_id: int, attempt: int) -> PipelineRun | None:
    """The first step of the task body, under a row lock: returns the run now RUNNING, or
    None when it must not run (missing, terminal, duplicate delivery, refused: recorded)."""
    with transaction.atomic():
        run = (
            PipelineRun.objects.select_for_update(of=("self",))
            .select_related("pipeline__owning_team", "requested_by")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.state in TERMINAL_RUN_STATES:
            return None
        if run.state == RunState.RUNNING:
            if attempt != run.attempt:
                return None
            # The same attempt delivered again: re-sent by the sweep while it waited in a long
            # queue, or redelivered by the broker. Only a worker that stopped reporting is lost.
            if _worker_silent(run, _silent_since(timezone.now())):
                _finish_worker_lost(run)
            else:
                _append_log(
                    run,
                    f"ignored a duplicate delivery of attempt {attempt}: it is running on "
                    f"{run.worker_host or 'a worker'}, which reported at "
                    f"{run.heartbeat_at:%H:%M:%S}",
                )
            return None
        if run.state != RunState.QUEUED or attempt != run.attempt + 1:
            _append_log(
                run,
                f"refused a delivery for attempt {attempt} while {run.state} "
                f"(attempt {run.attempt})",
            )
            return None
        refusal = _refusal(run)
        if refusal:
            _finish_failed(run, f"refused to start: {refusal}; nothing ran")
            return None
        _set_state(
            actor=None,
            run=run,
            state=RunState.RUNNING,
            verb="pipelinerun.started",
            attempt=attempt,
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            worker_host=socket.gethostname(),
            progress=0,
            step="starting",
            error="",
        )
        return run


def _append_log(run: PipelineRun, line: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    run.log = (run.log + f"[{stamp}] {line}\n")[-RUN_LOG_MAX_CHARS:]
    run.save(update_fields=["log"])


def _finish_failed(run: PipelineRun, reason: str) -> None:
    _append_log(run, f"FAILED: {reason}")
    _set_state(
        actor=None,
        run=run,
        state=RunState.FAILED,
        verb="pipelinerun.failed",
        error=reason,
        finished_at=timezone.now(),
    )


def run_progress(*, run_id: int, attempt: int, progress: int, step: str, line: str = "") -> bool:
    """Record progress of a running attempt; False when the run was cancelled (stop now)."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state != RunState.RUNNING or run.attempt != attempt:
            return False
        run.progress, run.step = max(0, min(100, progress)), step[:60]
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["progress", "step", "heartbeat_at"])
        if line:
            _append_log(run, line)
        return not run.cancel_requested


def run_finish(
    *,
    run_id: int,
    attempt: int,
    outcome: str,
    error: str = "",
    outputs: dict | None = None,
    timings: dict | None = None,
    results: RunResults | None = None,
) -> bool:
    """Compare-and-set the end of a running attempt (a cancelled run is not resurrected).
    The `results` of a succeeding attempt (its cleaned catalog, model and index versions) are
    recorded, audited, in the same transaction, their ids added to the outputs: only an
    attempt that succeeds registers any."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state != RunState.RUNNING or run.attempt != attempt:
            return False
        if run.cancel_requested and outcome != RunState.FAILED:
            outcome, error = RunState.CANCELLED, error or "cancelled by request"
        if outcome == RunState.SUCCEEDED and results is not None:
            outputs = {**(outputs or {}), **run_results_record(run=run, results=results)}
        _append_log(run, f"{outcome.upper()}{': ' + error if error else ''}")
        _set_state(
            actor=None,
            run=run,
            state=outcome,
            verb=f"pipelinerun.{outcome}",
            error=error,
            outputs=outputs or run.outputs,
            timings=timings or run.timings,
            finished_at=timezone.now(),
            progress=100 if outcome == RunState.SUCCEEDED else run.progress,
        )
        return True


def run_record_index_metrics(*, run_id: int, attempt: int, index_id: int, metrics: dict) -> bool:
    """An evaluate run stores the metrics it measured on the index version it evaluated (the
    quality gate reads them). Compare-and-set on the running attempt, audited; False, and
    nothing stored, when the run was cancelled or is no longer this attempt."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state != RunState.RUNNING or run.attempt != attempt:
            return False
        if run.cancel_requested:
            return False
        index = IndexVersion.objects.select_for_update().get(pk=index_id, pipeline=run.pipeline)
        before = {"metrics": index.metrics}
        index.metrics = _keep_approved_serving(index, metrics)
        index.save(update_fields=["metrics"])
        audit_record(
            actor=None,
            verb="indexversion.evaluated",
            target=index,
            before=before,
            after={"metrics": metrics, "run": run.pk, "by": run.requested_by.get_username()},
        )
        _append_log(run, f"stored the evaluation on index v{index.pk}")
        return True


SERVING_SETTINGS = ("default_mode", "fusion")  # how an index answers, fixed by its activation


def _keep_approved_serving(index: IndexVersion, metrics: dict) -> dict:
    """The metrics an evaluate run stores. An index that was activated keeps the serving mode
    and fusion weight its activation approved (a re-evaluation must not change how a served
    index answers without an approval); what this evaluation would have chosen is kept
    beside them, under "re_evaluated"."""
    if index.status == IndexStatus.CANDIDATE:
        return metrics
    approved = {k: index.metrics[k] for k in SERVING_SETTINGS if k in (index.metrics or {})}
    chosen = {k: metrics[k] for k in SERVING_SETTINGS if k in metrics}
    return {**metrics, **approved, "re_evaluated": chosen} if approved else metrics


def run_execute(*, run_id: int, attempt: int) -> None:
    """The task body: start under the guards, run the job outside any transaction, finish."""
    run = run_start(run_id=run_id, attempt=attempt)
    if run is None:
        return
    from recsys.execution import execute

    with correlation_scope(run.job_key):
        execute(run=run, attempt=attempt)


# --- operator actions -------------------------------------------------------------------------


@transaction.atomic
def run_cancel(*, actor, run: PipelineRun) -> PipelineRun:
    """Awaiting or queued: cancelled at once. Running: stops at the next step or batch."""
    run = (
        PipelineRun.objects.select_for_update(of=("self",))
        .select_related("pipeline__owning_team")
        .get(pk=run.pk)
    )
    run_actions(actor, run)["cancel"].require()
    if run.state == RunState.RUNNING:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        _append_log(run, f"cancel requested by {actor.get_username()}")
        audit_record(actor=actor, verb="pipelinerun.cancel_requested", target=run)
        return run
    request = approval_latest_for(run, requirements=False, decisions=False)
    pending = request if request is not None and request.state == ApprovalState.PENDING else None
    _set_state(
        actor=actor,
        run=run,
        state=RunState.CANCELLED,
        verb="pipelinerun.cancelled",
        error=f"cancelled by {actor.get_username()}",
        finished_at=timezone.now(),
    )
    if pending is not None:
        approval_withdraw(
            actor=actor, request=pending, reason=f"run cancelled by {actor.get_username()}"
        )
    return run


@transaction.atomic
def run_retry(*, actor, run: PipelineRun) -> PipelineRun:
    """A failed run goes back to the queue as a new attempt under its original approval (the
    guards re-check that approval, the inputs and the parameters when it starts)."""
    run = (
        PipelineRun.objects.select_for_update(of=("self",))
        .select_related("pipeline__owning_team")
        .get(pk=run.pk)
    )
    run_actions(actor, run)["retry"].require()
    refusal = _refusal(run)
    if refusal:
        raise PermissionDeniedError(
            f"Run #{run.pk} cannot be retried: {refusal}. Request a new run."
        )
    _set_state(
        actor=actor,
        run=run,
        state=RunState.QUEUED,
        verb="pipelinerun.retried",
        queued_at=timezone.now(),
        enqueued_at=None,
        cancel_requested=False,
        progress=0,
        step="",
    )
    transaction.on_commit(partial(_enqueue, run.pk, run.attempt + 1, run.kind))
    return run
