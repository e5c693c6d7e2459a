"""Slow I/O happens outside write transactions: an upload is hashed and copied into storage
before the short transaction that records it, and an e-mail is sent after the transaction that
claims it commits. On SQLite a write transaction holds the database's one write lock, so every
other writer (a worker recording a run's progress) would wait for the I/O, and fail with
"database is locked" once it outlasts the busy timeout. Transactional tests: no outer test
transaction holds the lock."""

from __future__ import annotations

import io
from unittest import mock

import pytest
from django.conf import settings
from django.core import mail
from django.core.files.base import File
from django.core.mail import get_connection
from django.core.mail.backends import locmem

from core.models import AuditEvent
from governance import services
from governance.models import DatasetVersion
from teams import services as team_services
from teams.models import Notification
from tests.conftest import build_org
from tests.db_probe import database_is_sqlite, database_writable_now, require_sqlite

pytestmark = pytest.mark.django_db(transaction=True)

CSV = b"id,title,price\n" + b"".join(b"%d,product %d,9.5\n" % (i, i) for i in range(20000))


@pytest.fixture(autouse=True)
def quiet_broker():
    """No broker messages from these tests (the enqueued jobs are not what they test)."""
    with mock.patch("core.queueing.send"):
        yield


class ProbingFile(File):
    """An upload that, whenever it is read through (hashed, copied into storage), checks that
    another connection could write to the database meanwhile."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data), name="catalog.csv")
        self.probes: list[bool] = []

    def chunks(self, chunk_size=None):
        for number, chunk in enumerate(super().chunks(chunk_size)):
            if number == 0:
                self.probes.append(database_writable_now())
            yield chunk


def test_an_upload_is_hashed_and_stored_without_holding_the_write_lock(settings, tmp_path):
    require_sqlite()
    settings.MEDIA_ROOT = tmp_path / "media"
    org = build_org()
    upload = ProbingFile(CSV)
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"), asset=org.asset, file=upload, name="catalog.csv"
    )
    assert len(upload.probes) >= 2  # hashed, then copied into storage
    assert all(upload.probes), upload.probes  # another writer got the lock at once each time
    version.refresh_from_db()
    with version.file.open("rb") as stored:
        assert stored.read() == CSV
    assert version.size_bytes == len(CSV)


def test_a_failed_recording_leaves_no_stored_file(settings, tmp_path):
    """The file is stored first; when the transaction that records it fails, it is removed."""
    settings.MEDIA_ROOT = tmp_path / "media"
    org = build_org()
    with (
        mock.patch(
            "governance.services.versions.audit_record", side_effect=RuntimeError("audit down")
        ),
        pytest.raises(RuntimeError, match="audit down"),
    ):
        services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            file=File(io.BytesIO(CSV), name="catalog.csv"),
            name="catalog.csv",
        )
    assert not DatasetVersion.objects.exists()
    media = tmp_path / "media"
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


class ProbingBackend(locmem.EmailBackend):
    """An e-mail backend standing in for a slow SMTP server: checks, while it "talks" to the
    server, that another connection could write to the database; fails when told to."""

    probes: list[bool] = []
    failure: BaseException | None = None

    def send_messages(self, messages):
        if database_is_sqlite():
            ProbingBackend.probes.append(database_writable_now())
        if ProbingBackend.failure is not None:
            raise ProbingBackend.failure
        return super().send_messages(messages)


@pytest.fixture
def probing_mail(settings):
    settings.EMAIL_BACKEND = f"{__name__}.ProbingBackend"
    ProbingBackend.probes, ProbingBackend.failure = [], None
    mail.outbox = []
    return ProbingBackend


def test_an_email_is_sent_after_its_transaction_commits(probing_mail):
    require_sqlite()
    org = build_org()
    lead = org.user("alpha.lead")
    notification = team_services.notification_send(recipient=lead, subject="Hello")

    assert team_services.notification_email_send(notification_id=notification.pk) is True
    assert probing_mail.probes == [True]  # the write lock was free while the mail went out
    assert [m.to for m in mail.outbox] == [[lead.email]]
    notification.refresh_from_db()
    assert notification.emailed_at is not None
    assert team_services.notification_email_send(notification_id=notification.pk) is False
    assert len(mail.outbox) == 1  # sent once


def test_a_failed_send_is_released_for_a_retry(probing_mail):
    org = build_org()
    lead = org.user("alpha.lead")
    notification = team_services.notification_send(recipient=lead, subject="Hello")

    probing_mail.failure = OSError("SMTP server unreachable")
    with pytest.raises(OSError, match="unreachable"):
        team_services.notification_email_send(notification_id=notification.pk)
    assert Notification.objects.get(pk=notification.pk).emailed_at is None  # to be retried
    assert AuditEvent.objects.filter(verb="notification.email_failed").exists()

    probing_mail.failure = None
    assert team_services.notification_email_send(notification_id=notification.pk) is True
    assert [m.to for m in mail.outbox] == [[lead.email]]
    assert Notification.objects.get(pk=notification.pk).emailed_at is not None


class WorkerKilled(BaseException):
    """Stands in for the worker process dying mid-send (no handler of the code runs)."""


def test_a_worker_dying_mid_send_loses_no_email(probing_mail):
    """The notification counts as e-mailed only once the mail server took the mail: a worker
    killed during the SMTP conversation leaves it pending, and the next delivery sends it."""
    org = build_org()
    lead = org.user("alpha.lead")
    notification = team_services.notification_send(recipient=lead, subject="Hello")

    probing_mail.failure = WorkerKilled()
    with pytest.raises(WorkerKilled):
        team_services.notification_email_send(notification_id=notification.pk)
    assert Notification.objects.get(pk=notification.pk).emailed_at is None  # still pending
    assert not AuditEvent.objects.filter(verb="notification.emailed").exists()

    probing_mail.failure = None
    assert team_services.notification_email_send(notification_id=notification.pk) is True
    assert [m.to for m in mail.outbox] == [[lead.email]]
    assert AuditEvent.objects.filter(verb="notification.emailed").count() == 1


def test_smtp_connections_time_out():
    assert settings.EMAIL_TIMEOUT == 10
    smtp = get_connection("django.core.mail.backends.smtp.EmailBackend")
    assert smtp.timeout == settings.EMAIL_TIMEOUT
