"""Steps 3 and 4 of a demo load: the full retrain of the demo pipeline, requested by the demo ops
user, approved and run by a worker; then its index, approved and activated."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from django.conf import settings

from core.errors import ApplicationError
from governance import selectors as gov_selectors
from governance.choices import ApprovalState
from recsys import services
from recsys.choices import TERMINAL_RUN_STATES, IndexStatus, RunKind, RunState
from recsys.demo.approvals import approve_as_demo, demo_user
from recsys.demo.errors import DemoLoadError, Say, call_service
from recsys.demo.worker import DemoWorker
from recsys.models import ActiveIndex, IndexVersion, Pipeline, PipelineRun
from recsys.services.runs import inputs_fingerprint

RUN_REQUESTER = "ops.ops"  # the demo ops user of search-ops, which owns the demo pipeline


def run_parameters(base_model: str, max_steps: int) -> dict:
    if base_model and not (Path(base_model).expanduser() / "config.json").is_file():
        raise DemoLoadError(
            f"--base-model {base_model}: no such model folder (a folder with the model's "
            "config.json, tokenizer and weights)."
        )
    parameters = {"max_steps": max_steps}
    if base_model:
        parameters["base_model"] = str(Path(base_model).expanduser().resolve())
    return parameters


def served_index(pipeline: Pipeline, found: dict) -> IndexVersion | None:
    """An index of the pipeline built from exactly the versions found (all of them stored
    already) that has been served: then the demo is loaded."""
    versions = list(found.values())
    if not all(versions):
        return None
    built = IndexVersion.objects.filter(
        pipeline=pipeline, run__inputs_hash=inputs_fingerprint(versions), activated_at__isnull=False
    )
    return built.filter(status=IndexStatus.ACTIVE).first() or built.order_by("-id").first()


def active_index(pipeline: Pipeline) -> IndexVersion | None:
    active = ActiveIndex.objects.filter(pipeline=pipeline).select_related("index").first()
    return active.index if active else None


def retrain(pipeline, versions, parameters, *, timeout: float, say: Say) -> PipelineRun:
    runs = PipelineRun.objects.filter(
        pipeline=pipeline, kind=RunKind.FULL_RETRAIN, inputs_hash=inputs_fingerprint(versions)
    ).order_by("-id")
    done = runs.filter(state=RunState.SUCCEEDED).first()
    if done is not None and IndexVersion.objects.filter(run=done).exists():
        say(f"   run #{done.pk}: already succeeded")
        return done
    in_flight = [RunState.AWAITING_APPROVAL, RunState.QUEUED, RunState.RUNNING]
    if runs.filter(state=RunState.RUNNING).exists():
        services.runs_sweep()  # fails a run whose worker is gone (an earlier load was killed)
    run = runs.filter(state__in=in_flight).first()
    if run is not None:
        say(f"   run #{run.pk}: continuing ({run.get_state_display().lower()})")
        if run.state == RunState.RUNNING and run.heartbeat_at:
            say(
                f"   run #{run.pk}: its worker last reported at {run.heartbeat_at:%H:%M:%S}; "
                "the sweep fails it if it stays silent for "
                f"{settings.STEWARD_RUN_WORKER_LOST_AFTER_SECONDS}s"
            )
    else:
        last = runs.first()
        if last is not None:
            _refuse_if_rejected(last)
            reason = (last.error or "no reason given").strip().splitlines()[0]
            say(f"   run #{last.pk} {last.state} ({reason}): requesting anew")
        run = call_service(
            services.run_request,
            actor=demo_user(RUN_REQUESTER),
            pipeline=pipeline,
            kind=RunKind.FULL_RETRAIN,
            inputs=versions,
            parameters=parameters,
            reason="Demo: fine-tune and index the demo data (python manage.py load_demo).",
        )
        shown = ", ".join(
            f"{k} {v}" for k, v in sorted(run.parameters.items()) if v not in ("", None)
        )
        say(f"   run #{run.pk}: requested by {RUN_REQUESTER} ({shown})")
    with DemoWorker(say=say) as worker:
        try:
            if run.state == RunState.AWAITING_APPROVAL:
                request = gov_selectors.approval_pending_for(run)
                if request is None:
                    raise DemoLoadError(f"Run #{run.pk} awaits an approval that is not pending.")
                approve_as_demo(
                    request, subject=f"run #{run.pk}", prefer=("steward", "lead"), say=say
                )
            _wait_for_run(run, worker, timeout=timeout, say=say)
        except BaseException:  # a failure or an interrupt: the run must not go on unattended
            _cancel_quietly(run)
            raise
    return PipelineRun.objects.get(pk=run.pk)


def _refuse_if_rejected(run: PipelineRun) -> None:
    request = gov_selectors.approval_latest_for(run, requirements=False, decisions=False)
    if request is not None and request.state == ApprovalState.REJECTED:
        raise DemoLoadError(
            f"Run #{run.pk} of the demo data was rejected: the demo load does not override "
            "that decision. Request a run from the product instead."
        )


def _wait_for_run(run: PipelineRun, worker: DemoWorker, *, timeout: float, say: Say) -> None:
    """Print the run's progress until it ends (the caller cancels it if this raises)."""
    started = time.monotonic()
    deadline = started + timeout
    last_shown, last_sweep = None, started
    while True:
        row = PipelineRun.objects.values("state", "step", "progress", "error").get(pk=run.pk)
        shown = (row["state"], row["step"], row["progress"] // 5)
        if shown != last_shown:
            step = f" · {row['step']}" if row["state"] == RunState.RUNNING else ""
            say(f"   run #{run.pk}: {row['state']}{step} {row['progress']}%")
            last_shown = shown
        if row["state"] in TERMINAL_RUN_STATES:
            break
        worker.check()
        now = time.monotonic()
        if now > deadline:
            raise DemoLoadError(
                f"Run #{run.pk} did not finish within {int(timeout)}s "
                f"({row['state']}, {row['step'] or '-'} {row['progress']}%): it was "
                "cancelled. Raise --timeout or lower --max-steps."
            )
        if now - last_sweep >= 60:  # what beat does every minute under `make run`
            services.runs_sweep()
            last_sweep = now
        time.sleep(1.0)
    run = PipelineRun.objects.get(pk=run.pk)
    if run.state != RunState.SUCCEEDED:
        tail = "\n".join(run.log.strip().splitlines()[-10:])
        raise DemoLoadError(f"Run #{run.pk} {run.state}: {run.error}\nLast log lines:\n{tail}")
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in (run.timings or {}).items())
    say(f"   run #{run.pk}: succeeded in {time.monotonic() - started:.0f}s ({timings})")


def _cancel_quietly(run: PipelineRun) -> None:
    state = PipelineRun.objects.values_list("state", flat=True).get(pk=run.pk)
    if state in TERMINAL_RUN_STATES:
        return
    with contextlib.suppress(ApplicationError):
        services.run_cancel(actor=run.requested_by, run=run)


# --- 4. the index -------------------------------------------------------------------------------


def activate(run: PipelineRun, say: Say) -> IndexVersion:
    index = IndexVersion.objects.filter(run=run).select_related("pipeline").order_by("-id").first()
    if index is None:
        raise DemoLoadError(f"Run #{run.pk} succeeded but recorded no index.")
    if index.status != IndexStatus.CANDIDATE:
        say(f"   {index}: already {index.status}")
        return index
    ok, detail = services.quality_gate(index)
    if not ok:
        raise DemoLoadError(f"{index} fails the quality gate ({detail}): it is left a candidate.")
    request = gov_selectors.approval_latest_for(index, requirements=False, decisions=False)
    if request is not None and request.state == ApprovalState.REJECTED:
        raise DemoLoadError(
            f"The activation of {index} was rejected: the demo load does not override that "
            "decision."
        )
    ops = demo_user(RUN_REQUESTER)
    if request is None or request.state in (ApprovalState.EXPIRED, ApprovalState.CANCELLED):
        request = call_service(
            services.index_request_activation,
            actor=ops,
            index=index,
            reason="Demo: serve the index trained on the demo data.",
        )
        say(f"   {index}: activation requested by {RUN_REQUESTER}")
    if request.state == ApprovalState.PENDING:
        approve_as_demo(request, subject=f"activation of {index}", prefer=("lead",), say=say)
    call_service(services.index_activate, actor=ops, index=index)
    index.refresh_from_db()
    say(f"   {index}: activated ({detail}; held-out nDCG@10: {_ndcg_line(index.metrics)})")
    return index


def _ndcg_line(metrics: dict | None) -> str:
    values = [
        f"{name.replace('_', '-')} {value['ndcg@10']:.3f}"
        for name, value in (metrics or {}).items()
        if isinstance(value, dict) and isinstance(value.get("ndcg@10"), int | float)
    ]
    return ", ".join(values) or "-"
