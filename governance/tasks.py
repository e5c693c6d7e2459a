"""Thin Celery tasks of governance."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="governance.audit_verify_chain", queue="default", ignore_result=True)
def audit_verify_chain_task() -> None:
    from governance.audit import verify_chain

    report = verify_chain()
    if report.ok:
        logger.info("audit chain OK (%s events)", report.checked)
    else:
        logger.error("audit chain BROKEN at event %s: %s", report.broken_event_id, report.reason)
