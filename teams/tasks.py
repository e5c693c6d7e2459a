"""Thin Celery tasks of the organization: ids in, one service call."""

from celery import shared_task


@shared_task(
    name="teams.notification_email_send",
    queue="default",
    ignore_result=True,
    autoretry_for=(ConnectionError, OSError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def notification_email_send_task(notification_id: int) -> None:
    from teams.services import notification_email_send

    notification_email_send(notification_id=notification_id)


@shared_task(name="teams.notifications_deliver_pending", queue="default", ignore_result=True)
def notifications_deliver_pending_task() -> None:
    from teams.services import notifications_deliver_pending

    notifications_deliver_pending()
