"""Thin Celery tasks of core: the hourly audit-chain check."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="core.audit_verify_chain", queue="default", ignore_result=True)
def audit_verify_chain_task() -> None:
    from core.audit import audit_seal_pending, verify_chain

    sealed = audit_seal_pending()  # what a writer that died after its commit left unsealed
    if sealed:
        logger.warning("sealed %s audit events their writers left unsealed", sealed)
    report = verify_chain()
    if report.ok:
        logger.info("audit chain OK (%s events)", report.checked)
    else:
        logger.error("audit chain BROKEN at event %s: %s", report.broken_event_id, report.reason)
