"""Thin Celery tasks of governance: ids in, one service call."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(
    name="governance.profile_dataset_version",
    queue="clean",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=3,
)
def dataset_version_profile_task(version_id: int) -> None:
    from governance.services import dataset_version_profile

    dataset_version_profile(version_id=version_id)


@shared_task(name="governance.slas_evaluate_all", queue="default", ignore_result=True)
def slas_evaluate_all_task() -> None:
    from governance.services import slas_evaluate_all

    logger.info("SLA evaluation: %s", slas_evaluate_all())


@shared_task(name="governance.profile_pending_sweep", queue="default", ignore_result=True)
def dataset_versions_profile_sweep_task() -> None:
    """Re-enqueue profiling left pending (e.g. a broker outage); fail jobs whose worker died."""
    from governance.services.versions import dataset_versions_profile_sweep

    logger.info("profiling sweep: %s", dataset_versions_profile_sweep())
