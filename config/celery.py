"""The one Celery app: queues, routes, reliability settings and the beat schedule."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_prerun
from django.conf import settings
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Workers (and web processes) never reach a model hub, whatever the environment says: set
# before anything imports transformers / huggingface_hub, which read these at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

app = Celery("steward")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("default", "clean", "train", "index")


def worker_argv(
    name: str, *, queues: str = ",".join(QUEUES), pool: tuple[str, ...] = ("--pool", "solo")
) -> list[str]:
    """Command line of a quiet, self-contained worker process (no gossip, mingle or heartbeat:
    it needs no other worker) named ``name``: what the tests and load_demo start."""
    import sys

    return [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, *pool,
        "-n", name, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
    ]  # fmt: skip


app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="default",
    task_routes={
        "governance.profile_dataset_version": {"queue": "clean"},
        # recsys.run_execute: each run kind to its own queue (recsys.constants.RUN_QUEUES).
    },
    # Status lives in database rows, never in Celery results.
    task_ignore_result=True,
    result_backend=None,
    # A job is acknowledged after it ran; tasks are idempotent (state/attempt guards).
    task_acks_late=True,
    # Long queues: one job at a time per worker process.
    worker_prefetch_multiplier=1,
    task_reject_on_worker_lost=False,
    task_serializer="json",
    accept_content=["json"],
    timezone=os.environ.get("TIME_ZONE", "UTC"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if str(app.conf.broker_url).startswith("filesystem://"):
    # The filesystem transport has no fanout exchange for remote control.
    app.conf.worker_enable_remote_control = False

# The beat schedule, in one place.
app.conf.beat_schedule = {
    "audit-verify-chain-hourly": {
        "task": "core.audit_verify_chain",
        "schedule": crontab(minute=7),
    },
    "sla-evaluate-every-15-minutes": {
        "task": "governance.slas_evaluate_all",
        "schedule": crontab(minute="*/15"),
    },
    "profile-pending-sweep": {
        "task": "governance.profile_pending_sweep",
        "schedule": 300.0,
    },
    "pipeline-runs-sweep": {
        "task": "recsys.runs_sweep",
        "schedule": settings.STEWARD_RUN_SWEEP_SECONDS,
    },
    "pipeline-schedules-every-minute": {
        "task": "recsys.schedules_run",
        "schedule": crontab(),  # on each minute: a pipeline's cron slots are minutes
    },
    "notifications-deliver-pending": {
        "task": "teams.notifications_deliver_pending",
        "schedule": 300.0,
    },
}

app.autodiscover_tasks()


@task_prerun.connect
def _forget_cached_content_types(**_kwargs) -> None:
    """A long-lived worker must not act on content-type ids cached before a database was
    flushed or migrated under it; the cache refills with one query per type."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
