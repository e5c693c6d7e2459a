"""E-mail copies of notifications: a name with a newline (or another control character) cannot
break a subject line, and one e-mail that fails never keeps the others from being sent."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.mail.backends.locmem import EmailBackend
from django.utils import timezone

from governance import services as gov
from teams import services
from teams.models import Notification

pytestmark = pytest.mark.django_db

BOUNCING = "bounce@example.test"


class BouncingBackend(EmailBackend):
    """The local-memory backend, except that the mail server refuses one address."""

    def send_messages(self, messages):
        for message in messages:
            if BOUNCING in message.to:
                raise ConnectionRefusedError(f"the mail server refused {BOUNCING}")
        return super().send_messages(messages)


@pytest.fixture
def bouncing(settings):
    settings.EMAIL_BACKEND = f"{__name__}.BouncingBackend"
    mail.outbox = []
    return mail.outbox


def test_a_newline_in_a_team_or_asset_name_does_not_break_the_email(
    org, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"
    services.team_update(actor=org.admin, team=org.alpha, name="Alpha\nTeam")
    org.asset.name = "Cata\r\nlog\x0b"
    org.asset.save(update_fields=["name"])
    version = gov.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("c.csv", b"id,title\n1,a\n2,b\n"),
        name="c.csv",
    )
    gov.dataset_version_profile(version_id=version.pk)
    asked = Notification.objects.filter(subject__startswith="Approval needed")
    assert asked.count() == 2
    for notification in asked:
        assert notification.subject == f"Approval needed: Cata log v{version.number}"
    # The e-mail goes out once its claim commits (on_commit), as in production.
    with django_capture_on_commit_callbacks(execute=True):
        for notification in Notification.objects.all():
            assert services.notification_email_send(notification_id=notification.id) is True
    assert len(mail.outbox) == Notification.objects.count()
    for message in mail.outbox:
        assert not {"\n", "\r", "\x0b"} & set(message.subject), message.subject


def _pending(recipient, subject: str, minutes_ago: int) -> Notification:
    notification = Notification.objects.create(recipient=recipient, subject=subject)
    Notification.objects.filter(pk=notification.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return notification


# Committed: each e-mail goes out as its claim commits, so the sweep sees each failure on its own.
@pytest.mark.django_db(transaction=True)
def test_one_failing_email_does_not_block_the_others(org, bouncing, caplog):
    lead, steward = org.user("alpha.lead"), org.user("alpha.steward")
    bouncer = org.user("alpha.viewer")
    bouncer.email = BOUNCING
    bouncer.save(update_fields=["email"])
    older = _pending(lead, "Older", minutes_ago=30)
    # Stored before subjects were cleaned: a line break in the header.
    broken = _pending(steward, "Approval needed: Cata\nlog v1", minutes_ago=20)
    refused = _pending(bouncer, "Refused by the server", minutes_ago=10)  # newest: sent first
    with caplog.at_level(logging.ERROR, logger="teams.services.notifications"):
        assert services.notifications_deliver_pending(older_than_seconds=60) == 2
    assert sorted(m.subject for m in bouncing) == [
        "[Steward] Approval needed: Cata log v1",
        "[Steward] Older",
    ]
    assert Notification.objects.get(pk=older.pk).emailed_at is not None
    assert Notification.objects.get(pk=broken.pk).emailed_at is not None
    # The refused one stays pending for the next sweep, and the failure is logged.
    assert Notification.objects.get(pk=refused.pk).emailed_at is None
    assert any(
        f"notification {refused.pk}" in r.getMessage() and BOUNCING in r.exc_text
        for r in caplog.records
        if r.exc_text
    ), caplog.text
    # The next sweep tries it again, and it still blocks nothing.
    assert services.notifications_deliver_pending(older_than_seconds=60) == 0
