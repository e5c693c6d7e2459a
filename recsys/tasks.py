"""Thin Celery tasks of the pipeline: ids in, one service call."""

from celery import shared_task
from django.conf import settings


# Sent to the queue of the run's kind (recsys.constants.RUN_QUEUES); "train" is the fallback.
# Time limits (prefork, the default pool): at the soft limit the run fails with the reason; at
# the hard limit the worker process is killed and the sweep fails the run as "worker lost".
# Both stay below the broker's visibility timeout (checked by config/settings.py).
@shared_task(
    name="recsys.run_execute",
    queue="train",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=settings.STEWARD_RUN_SOFT_TIME_LIMIT,
    time_limit=settings.STEWARD_RUN_TIME_LIMIT,
)
def run_execute_task(run_id: int, attempt: int) -> None:
    """Safe to redeliver: the service's state/attempt guard runs a job at most once; a
    delivery that finds its attempt running is ignored while its worker reports, and marks
    it "worker lost" once that worker has gone silent."""
    from recsys.services import run_execute

    run_execute(run_id=run_id, attempt=attempt)


@shared_task(name="recsys.runs_sweep", queue="default", ignore_result=True)
def runs_sweep_task() -> None:
    import logging

    from recsys.services import runs_sweep

    logging.getLogger(__name__).info("runs sweep: %s", runs_sweep())


@shared_task(name="recsys.schedules_run", queue="default", ignore_result=True)
def schedules_run_task() -> None:
    """Every minute (beat): request the due scheduled retrains; a duplicate beat is harmless
    (each slot is claimed by compare-and-set)."""
    import logging

    from recsys.services import schedules_run

    logging.getLogger(__name__).info("pipeline schedules: %s", schedules_run())
