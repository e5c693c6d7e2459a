"""Pipeline runs when things go wrong, on real worker processes and the configured broker
(filesystem broker on the embedded pass, Redis on the PostgreSQL pass): a worker killed
mid-run, a broker down when the run is approved, a cancel during fine-tuning, a damaged index.

The worker processes read the real MEDIA_ROOT and ARTIFACT_ROOT, so storage is not overridden
here and the tiny model is built under ARTIFACT_ROOT."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings

from config.celery import worker_argv
from core.errors import ValidationError
from core.models import AuditEvent
from governance import services as gov
from recsys import services
from recsys.models import ActiveIndex, IndexVersion, ModelVersion, PipelineRun
from recsys.pipelines.encoding import tiny_encoder
from recsys.pipelines.indexing import IndexChecksumError, load_index
from recsys.storage import run_dir
from tests.conftest import _worker_database_url, build_org, tiny_models_dir, wait_for
from tests.recsys.pipeline_setup import approve_run, build_pipeline_org, request_run, run_approval

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TERMINAL = ("succeeded", "failed", "cancelled")
UNREACHABLE_BROKER = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there


# --- helpers -------------------------------------------------------------------------------------


def _pipeline_org():
    model_path = tiny_encoder(str(tiny_models_dir()), seed=1)
    return build_pipeline_org(build_org(), model_path)


def _row(run) -> dict:
    return PipelineRun.objects.values(
        "state", "step", "progress", "attempt", "error", "enqueued_at"
    ).get(pk=run.pk)


def _finished(run):
    def check():
        state = _row(run)["state"]
        return state if state in TERMINAL else None

    return check


def _in_fine_tune(run):
    """True once the run reports fine-tuning progress (at least one optimiser step done)."""

    def check():
        row = _row(run)
        assert row["state"] not in TERMINAL, PipelineRun.objects.get(pk=run.pk).log
        return row["state"] == "running" and row["step"] == "fine_tune" and row["progress"] > 20

    return check


def _started_events(run) -> int:
    return AuditEvent.objects.filter(
        verb="pipelinerun.started",
        target_type__app_label="recsys",
        target_type__model="pipelinerun",
        target_id=str(run.pk),
    ).count()


@dataclass
class _Worker:
    proc: subprocess.Popen
    log_path: Path
    log_file: object

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log_file.close()


def _start_worker(log_dir: Path, queue: str, *, concurrency: int = 0) -> _Worker:
    """A `celery worker` of our own (built like conftest's session worker) consuming `queue`
    only, so that the test may kill it without touching the session worker; with
    `concurrency`, a prefork worker of that many processes (as `make run` and production
    start) instead of the solo pool."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_worker_database_url(),
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(log_dir / "mail"),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        PYTHONUNBUFFERED="1",
        # One torch thread: on a busy 2-core machine, two spinning threads make every
        # optimiser step many times slower; one keeps the run's pace predictable.
        OMP_NUM_THREADS="1",
    )
    pool = ("--pool", "prefork", "--concurrency", str(concurrency)) if concurrency else None
    pool = pool or ("--pool", "solo")
    name = f"resilience-{uuid.uuid4().hex[:8]}"
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by _Worker.stop
    proc = subprocess.Popen(
        worker_argv(f"{name}@%h", queues=queue, pool=pool),
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    worker = _Worker(proc=proc, log_path=log_path, log_file=log_file)
    deadline = time.monotonic() + 90
    while "ready." not in worker.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"Celery worker did not start:\n{worker.log()[-4000:]}")
        time.sleep(0.2)
    return worker


@contextlib.contextmanager
def _run_jobs_routed_to(queue: str):
    """Send the run jobs to a queue of this test's own instead of `train`, so that the session
    worker (started by another module of the same test run, perhaps) cannot take them: the
    product's enqueue and the message itself are unchanged, only the queue name differs.
    Yields the spy, whose calls show the queue the product asked for."""
    from config.celery import app
    from recsys.tasks import run_execute_task

    task = app.tasks[run_execute_task.name]  # the registered task behind the proxy
    send = task.apply_async

    def redirect(*args, **options):
        return send(*args, **{**options, "queue": queue})

    with mock.patch.object(task, "apply_async", side_effect=redirect) as spy:
        yield spy


def _purge(queue: str) -> None:
    """Drop what is left in a queue of this test's own (duplicates nobody needs any more)."""
    from config.celery import app

    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(queue)


def _reset_producer_pools() -> None:
    """Forget the broker connections the app cached, so the next send connects anew (to the
    broker the configuration names now). The same as Celery does after a fork."""
    from config.celery import app

    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def _broker_unreachable(monkeypatch):
    """A real broker outage for this process's producer: CELERY_BROKER_WRITE_URL (read by
    Celery before any configuration) names a port nothing listens on, and the cached
    connections are dropped, so a send fails with kombu's OperationalError after its connect
    timeout. The workers keep their own connections to the real broker."""
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", UNREACHABLE_BROKER)
    _reset_producer_pools()
    try:
        yield
    finally:
        monkeypatch.delenv("CELERY_BROKER_WRITE_URL")
        _reset_producer_pools()


# --- tests ---------------------------------------------------------------------------------------


def test_a_worker_killed_mid_run_is_failed_as_worker_lost_and_its_retry_succeeds(tmp_path):
    """SIGKILL (as the OOM killer would) to a worker of this test's own in the middle of
    fine-tuning. Not the session worker: the run's jobs go to a private queue (see
    _run_jobs_routed_to), so the session worker, even when another module started it, never
    takes them. 400 steps keep the run busy long enough to be killed mid-way."""
    org = _pipeline_org()
    queue = f"train-resilience-{uuid.uuid4().hex[:8]}"
    run = request_run(org, max_steps=400, batch_size=8)
    worker = retry_worker = None
    try:
        with _run_jobs_routed_to(queue) as spy:
            worker = _start_worker(tmp_path, queue)
            approve_run(org, run)
            assert spy.call_args.kwargs["queue"] == "train"  # what the product asked for
            wait_for(_in_fine_tune(run), timeout=180, interval=0.1)
            os.kill(worker.proc.pid, signal.SIGKILL)
            assert worker.proc.wait(timeout=20) == -signal.SIGKILL

            assert _row(run)["state"] == "running"  # nobody knows yet: the row is the truth
            assert services.runs_sweep(worker_lost_after=0) == {"requeued": 0, "worker_lost": 1}
            run.refresh_from_db()
            assert run.state == "failed" and run.attempt == 1
            assert "worker lost" in run.error
            assert run.step == "fine_tune" and run.progress > 20  # where it died
            for line in ("clean: started", "pairs: started", "fine_tune: started"):
                assert line in run.log
            assert "FAILED: worker lost" in run.log
            assert not ModelVersion.objects.filter(run=run).exists()
            assert not IndexVersion.objects.filter(run=run).exists()
            assert not ActiveIndex.objects.filter(pipeline=org.pipeline).exists()
            assert run.finished_at is not None

            retry_worker = _start_worker(tmp_path, queue)
            services.run_retry(actor=org.user("beta.ops"), run=run)
            assert wait_for(_finished(run), timeout=240) == "succeeded", (
                PipelineRun.objects.get(pk=run.pk).log + retry_worker.log()[-3000:]
            )
    finally:
        for each in (worker, retry_worker):
            if each is not None:
                each.stop()

    run.refresh_from_db()
    assert run.attempt == 2 and run.error == ""
    assert _started_events(run) == 2
    index = IndexVersion.objects.get(run=run)
    assert ModelVersion.objects.filter(run=run).count() == 1
    assert Path(index.path).is_relative_to(run_dir(run.job_key, 2))
    assert not ActiveIndex.objects.filter(pipeline=org.pipeline).exists()  # a candidate only


def test_a_run_approved_while_the_broker_is_down_stays_queued_and_the_sweep_sends_it_once(
    celery_worker, monkeypatch, caplog
):
    """A real outage for the sending side (see _broker_unreachable): no mock of the product."""
    org = _pipeline_org()
    run = request_run(org)
    gov.approval_decide(
        actor=org.user("alpha.steward"),
        request=run_approval(run),
        verdict="approve",
        comment="catalog ok",
    )

    with _broker_unreachable(monkeypatch):
        # The last approval: its enqueue on commit fails. What the approver sees is checked
        # last, so that a failure there does not hide how the run itself fared.
        try:
            gov.approval_decide(
                actor=org.user("beta.lead"),
                request=run_approval(run),
                verdict="approve",
                comment="go",
            )
            approver_error = None
        except Exception as exc:  # asserted last
            approver_error = exc
        assert run_approval(run).state == "approved"
        row = _row(run)
        assert row["state"] == "queued" and row["enqueued_at"] is None
        assert "could not enqueue recsys.run_execute" in caplog.text
        # A sweep during the outage loses nothing either.
        assert services.runs_sweep()["requeued"] == 1
        row = _row(run)
        assert row["state"] == "queued" and row["enqueued_at"] is None

    assert services.runs_sweep() == {"requeued": 1, "worker_lost": 0}
    assert _row(run)["enqueued_at"] is not None
    assert services.runs_sweep()["requeued"] == 0  # sent: the next sweep leaves it alone
    assert wait_for(_finished(run), timeout=240) == "succeeded", (
        PipelineRun.objects.get(pk=run.pk).log + celery_worker.log()[-3000:]
    )
    run.refresh_from_db()
    assert run.attempt == 1
    assert _started_events(run) == 1
    assert IndexVersion.objects.filter(run=run).count() == 1
    # The approval was recorded and the run queued: the broker outage is no error of the
    # approver's, so the approval must not raise.
    assert approver_error is None, f"the approver got {approver_error!r}"


def test_a_cancel_during_fine_tuning_stops_within_a_batch_and_leaves_no_files(celery_worker):
    """Fine-tuning reports progress 20 → 70 over its steps; cancelled soon after its first
    steps, the run must end well before half of them (a cancel noticed only between the steps
    of the pipeline would end at 70 or later, after minutes of training on a busy machine)."""
    org = _pipeline_org()
    max_steps = 1000
    run = request_run(org, max_steps=max_steps, batch_size=8)
    approve_run(org, run)
    wait_for(_in_fine_tune(run), timeout=180, interval=0.1)

    services.run_cancel(actor=org.user("beta.ops"), run=run)
    cancelled_at = time.monotonic()
    assert wait_for(_finished(run), timeout=120) == "cancelled", PipelineRun.objects.get(
        pk=run.pk
    ).log
    waited = time.monotonic() - cancelled_at

    run.refresh_from_db()
    assert run.attempt == 1 and run.step == "fine_tune"
    # Under half the steps done (progress 45 = step 500 of 1000); the seconds are only shown.
    assert run.progress < 20 + 50 * 0.5, f"stopped at {run.progress}% after {waited:.1f}s"
    # Noticed by the poll before a batch, or by the progress report after one.
    stopped = re.fullmatch(
        r"cancelled during fine_tune|fine-tuning cancelled before step (\d+)/(\d+)", run.error
    )
    assert stopped, run.error
    if stopped[1]:
        assert int(stopped[2]) == max_steps and int(stopped[1]) < max_steps // 2
    assert "cancel requested by beta.ops" in run.log
    assert f"CANCELLED: {run.error}" in run.log
    assert not ModelVersion.objects.filter(run=run).exists()
    assert not IndexVersion.objects.filter(run=run).exists()
    workdir = run_dir(run.job_key, run.attempt)
    assert not workdir.exists()
    assert list(workdir.parent.glob("**/*.tmp-*")) == []


def test_a_damaged_index_is_refused_at_activation_and_at_load(celery_worker):
    org = _pipeline_org()
    run = request_run(org)
    approve_run(org, run)
    assert wait_for(_finished(run), timeout=240) == "succeeded", PipelineRun.objects.get(
        pk=run.pk
    ).log
    index = IndexVersion.objects.get(run=run)
    load_index(index.path)  # intact as built

    faiss_file = Path(index.path) / "index.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    faiss_file.write_bytes(bytes(data))

    request = services.index_request_activation(actor=org.user("beta.ops"), index=index)
    gov.approval_decide(actor=org.user("beta.lead"), request=request, verdict="approve", comment="")
    with pytest.raises(ValidationError, match="damaged"):
        services.index_activate(actor=org.user("beta.lead"), index=index)
    index.refresh_from_db()
    assert index.status == "candidate"
    assert not ActiveIndex.objects.filter(pipeline=org.pipeline).exists()

    with pytest.raises(IndexChecksumError, match=r"checksum mismatch for index\.faiss"):
        load_index(index.path)


def test_a_backlog_the_sweep_sends_again_runs_every_run_exactly_once(tmp_path, settings):
    """Two consumers (a worker at concurrency 2, as `make run` starts) and four runs: two wait
    queued past the sweep's threshold, so the sweep sends them again (in production every
    minute after two; here every half second after one), and the duplicates reach the worker
    while the runs they duplicate are running. A worker that reports is not lost: every run
    succeeds, once (one start, one model, one index), and none is failed as "worker lost"
    (which is what became of the long run before: a duplicate delivery killed it)."""
    settings.STEWARD_RUN_REENQUEUE_AFTER_SECONDS = 1
    org = _pipeline_org()
    queue = f"train-backlog-{uuid.uuid4().hex[:8]}"
    # The first two start at once; the last two wait, sent again and again. Then one long run
    # and one short. Which re-sent message the worker takes when a slot frees is the broker's
    # order, so once the long run is running it is also delivered once more, as a broker
    # redelivers: the worker takes that copy when the short run ends (the queue is polled
    # every second), while the long one runs for seconds still.
    runs = [request_run(org, max_steps=steps, batch_size=8) for steps in (3, 3, 400, 3)]
    long_run = runs[2]
    worker = None
    requeued, redelivered = 0, False
    try:
        with _run_jobs_routed_to(queue) as product_send:
            worker = _start_worker(tmp_path, queue, concurrency=2)
            for run in runs:
                approve_run(org, run)
            deadline = time.monotonic() + 300
            while any(_row(run)["state"] not in TERMINAL for run in runs):
                assert time.monotonic() < deadline, [_row(run) for run in runs]
                requeued += services.runs_sweep()["requeued"]
                if not redelivered and _row(long_run)["state"] == "running":
                    product_send(args=[long_run.pk, 1])
                    redelivered = True
                time.sleep(0.5)
    finally:
        if worker is not None:
            worker.stop()
        _purge(queue)

    assert requeued >= 2, requeued  # the backlog was sent again (the case under test)
    logs = [PipelineRun.objects.get(pk=run.pk).log for run in runs]
    for run, log in zip(runs, logs, strict=True):
        row = _row(run)
        assert row["state"] == "succeeded", log + worker.log()[-3000:]
        assert row["attempt"] == 1 and row["error"] == ""
        assert "worker lost" not in log
        assert _started_events(run) == 1
        assert ModelVersion.objects.filter(run=run).count() == 1
        assert IndexVersion.objects.filter(run=run).count() == 1
    # the copy of the long run reached the worker while it ran, and was ignored
    assert "ignored a duplicate delivery of attempt 1" in logs[2], (requeued, logs[2])
