"""In-app notifications and their e-mail copies (sent by a worker after commit)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import NotFoundError
from core.queueing import enqueue_on_commit
from teams.models import Notification

logger = logging.getLogger(__name__)


# Control characters (line breaks above all: Django refuses a header holding one) and the
# Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """`text` as a single header-safe line: control characters become spaces, runs of spaces
    one. A subject names teams and assets, whose names may hold a newline."""
    return " ".join(_CONTROL.sub(" ", text).split())


def notification_send(*, recipient, subject: str, body: str = "", link: str = "") -> Notification:
    """An in-app notification; its e-mail copy is sent by a worker after commit."""
    from teams.tasks import notification_email_send_task

    notification = Notification.objects.create(
        recipient=recipient, subject=one_line(subject)[:200], body=body, link=link
    )
    enqueue_on_commit(notification_email_send_task, notification.id)
    return notification


def notification_email_send(*, notification_id: int) -> bool:
    """Send the e-mail copy of a notification: at least once, never lost.

    `emailed_at` is set only once the mail server has taken the mail (a short transaction,
    compare-and-set, audited), so a worker that dies mid-send leaves it pending for the sweep
    (a copy may then go out twice; none is lost). The SMTP conversation (EMAIL_TIMEOUT) runs
    outside any transaction, holding no lock: on SQLite the database's one write lock. A failed
    send is audited and raised, to be retried. False when there is nothing (left) to send."""
    notification = (
        Notification.objects.select_related("recipient")
        .filter(pk=notification_id, emailed_at__isnull=True)
        .first()
    )
    if notification is None:
        return False
    try:
        _notification_email_deliver(notification)
    except Exception as exc:
        audit_record(
            actor=None,
            verb="notification.email_failed",
            target=notification,
            after={"to": notification.recipient.email, "error": str(exc)[:500]},
        )
        raise
    with transaction.atomic():
        sent = Notification.objects.filter(pk=notification.pk, emailed_at__isnull=True).update(
            emailed_at=timezone.now()
        )
        if not sent:  # another delivery recorded it meanwhile
            return False
        audit_record(
            actor=None,
            verb="notification.emailed",
            target=notification,
            after={"to": notification.recipient.email or "(no address)"},
        )
    return True


def _notification_email_deliver(notification: Notification) -> None:
    """Hand the notification's e-mail to the mail server (nothing when it has no address)."""
    from django.conf import settings
    from django.core.mail import send_mail

    if notification.recipient.email:
        link = f"{settings.STEWARD_BASE_URL}{notification.link}" if notification.link else ""
        send_mail(
            subject=f"[Steward] {one_line(notification.subject)}",
            message=f"{notification.body}\n\n{link}".strip(),
            from_email=None,
            recipient_list=[notification.recipient.email],
        )


def notifications_deliver_pending(*, older_than_seconds: int = 120) -> int:
    """Send e-mail copies that were missed (e.g. the broker was down at commit time). Each is
    sent on its own: one that fails is logged and stays pending for the next sweep, and the
    others are still sent."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = Notification.objects.filter(emailed_at__isnull=True, created_at__lt=cutoff)
    sent = 0
    for notification_id in pending.values_list("id", flat=True)[:500]:
        try:
            sent += notification_email_send(notification_id=notification_id)
        except Exception:  # a bad address, a refusing server...: the others still go out
            logger.exception(
                "could not e-mail notification %s; the next sweep retries", notification_id
            )
    return sent


@transaction.atomic
def notification_mark_read(*, actor, notification: Notification) -> Notification:
    """Mark one of the actor's own notifications as read."""
    if notification.recipient_id != actor.pk:
        raise NotFoundError("Notification not found.")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
        audit_record(actor=actor, verb="notification.read", target=notification)
    return notification
