"""The worker path end to end: a service enqueues with transaction.on_commit, a separate Celery
worker process (over the configured broker: the filesystem transport on the embedded pass, Redis
on the PostgreSQL pass) executes the task, and its effect is visible in the database."""

import pytest
from django.db import connection

from teams import services
from teams.models import Notification
from tests.conftest import build_org, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_gap_notification_is_emailed_by_the_worker(celery_worker):
    org = build_org()
    alpha_steward = org.user("alpha.steward")
    accountable = services.responsibility_assign(
        actor=org.admin, user=alpha_steward, kind="A", subject=org.asset
    )
    membership = alpha_steward.memberships.get(team=org.alpha)

    # Committed by the service's transaction; the e-mail task is enqueued on commit.
    services.membership_revoke(
        actor=org.user("alpha.lead"), membership=membership, successors={accountable.id: None}
    )

    notification = Notification.objects.get(recipient=org.user("alpha.lead"))
    assert notification.emailed_at is None  # not sent by this process

    def emailed():
        notification.refresh_from_db()
        return notification.emailed_at

    wait_for(emailed, timeout=60)
    assert "teams.notification_email_send" in celery_worker.log()
    sent = "".join(p.read_text() for p in celery_worker.mail_dir.glob("*.log"))
    assert "alpha.lead@example.test" in sent
    assert "no accountable person" in sent
    # The worker ran against the same database engine as this pass.
    assert celery_worker.database_url.startswith(
        "sqlite" if connection.vendor == "sqlite" else "postgres"
    )


def test_nothing_is_enqueued_when_the_service_fails(
    celery_worker, django_capture_on_commit_callbacks
):
    from core.errors import ConflictError

    org = build_org()
    alpha_steward = org.user("alpha.steward")
    services.responsibility_assign(actor=org.admin, user=alpha_steward, kind="A", subject=org.asset)
    membership = alpha_steward.memberships.get(team=org.alpha)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ConflictError):
        services.membership_revoke(
            actor=org.user("alpha.lead"), membership=membership, successors={}
        )
    assert callbacks == []
    assert not Notification.objects.exists()
    assert membership.__class__.objects.filter(pk=membership.pk).exists()
