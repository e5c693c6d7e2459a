"""The Celery worker of a demo load: one that already answers, or a process started for the
duration of the load and stopped at its end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from config.celery import QUEUES, worker_argv
from recsys.demo.errors import DemoLoadError, Say

WORKER_QUEUES = ",".join(QUEUES)
WORKER_STOP_SECONDS = 60


class DemoWorker:
    """A Celery worker for the load: one that already answers on the `train` queue, or a
    `celery worker` process started here and stopped at the end. (Workers on the filesystem
    broker cannot answer a ping, so there the load always starts its own; two workers on the
    same queues are harmless: the run's guards let only one execute it.)"""

    def __init__(self, *, say: Say):
        self.say = say
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(settings.VAR_DIR) / "log" / "load_demo-worker.log"
        self._log = None

    def __enter__(self) -> DemoWorker:
        answering = _workers_on_train_queue()
        if answering:
            self.say(f"   worker: {', '.join(answering)} answers; the run goes to it")
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            worker_argv(
                f"load-demo-{os.getpid()}@%h",
                queues=WORKER_QUEUES,
                pool=("--concurrency", "1"),
            ),
            cwd=settings.BASE_DIR,
            env=_worker_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches this command only, which
            # cancels the run and then stops the worker (and its pool process) itself.
            start_new_session=True,
        )
        self.say(
            f"   worker: none answers; started one for this load (pid {self.proc.pid}, "
            f"log {self.log_path})"
        )
        return self

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise DemoLoadError(
                f"The worker started for the load exited with code {self.proc.returncode}. "
                f"The end of its log ({self.log_path}):\n{tail}"
            )

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        # Warm shutdown (the task in hand ends: a cancelled run stops at its next batch), then
        # cold, then the whole process group is killed.
        for sig, wait in ((signal.SIGTERM, WORKER_STOP_SECONDS), (signal.SIGQUIT, 10)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the pool, if any
        self.proc.wait()
        self._log.close()
        self.say("   worker: stopped")


def _workers_on_train_queue() -> list[str]:
    """Names of the workers that answer and consume the `train` queue ([] on brokers whose
    workers cannot answer, such as the filesystem transport)."""
    from config.celery import app

    if str(app.conf.broker_url).startswith("filesystem://"):
        return []
    if not app.conf.worker_enable_remote_control:
        return []
    try:
        queues = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # no broker, no answer: start a worker of our own
        return []
    return sorted(name for name, qs in queues.items() if any(q["name"] == "train" for q in qs))


def _worker_env() -> dict:
    """The environment of the worker: this process's, pointed at the database this process
    uses when that is not the configured one (a test database, for instance)."""
    import dj_database_url

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    live = connection.settings_dict
    configured = dj_database_url.parse(settings.DATABASE_URL)
    if str(live["NAME"]) != str(configured["NAME"]):
        env["DATABASE_URL"] = _database_url(live, connection.vendor)
    return env


def _database_url(s: dict, vendor: str) -> str:
    if vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}.get(vendor, vendor)
    user = quote(s.get("USER") or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"{scheme}://{auth}{s.get('HOST') or '127.0.0.1'}{port}/{s['NAME']}"
