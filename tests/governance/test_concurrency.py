"""Two stewards deciding the same request at the same moment (PostgreSQL row locks).

Each decision runs in its own thread and database connection; a barrier releases them together.
The request row is locked with SELECT ... FOR UPDATE, so with quorum 1 exactly one approval
wins and the other is refused, and with quorum 2 both count and the request approves once."""

from __future__ import annotations

import threading

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from core.audit import verify_chain
from core.errors import InvalidTransitionError
from core.models import AuditEvent
from governance import services
from governance.choices import ApprovalKind, ApprovalState, VersionStatus
from governance.models import ApprovalRequest, DatasetVersion, Decision
from governance.tasks import dataset_version_profile_task
from teams import services as team_services
from teams.models import Notification
from teams.tasks import notification_email_send_task
from tests.conftest import build_org
from tests.factories import policy_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CSV = b"id,title,price\n1,Red shoe,10.5\n2,Blue shoe,12.0\n3,Green hat,7.25\n"


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: SQLite has no row locks (SELECT ... FOR UPDATE is a no-op) and "
            "serialises writers, so concurrent decisions cannot race there"
        )


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path, monkeypatch):
    """Uploads under tmp_path, cheap password hashing, and no messages to the broker (the
    enqueues on commit are recorded instead)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    enqueued: list[tuple[str, int]] = []
    monkeypatch.setattr(
        dataset_version_profile_task, "delay", lambda pk: enqueued.append(("profile", pk))
    )
    monkeypatch.setattr(
        notification_email_send_task, "delay", lambda pk: enqueued.append(("email", pk))
    )
    return enqueued


def submitted(org) -> tuple[DatasetVersion, ApprovalRequest]:
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
    )
    version = services.dataset_version_profile(version_id=version.pk)
    assert version.status == VersionStatus.SUBMITTED
    request = ApprovalRequest.objects.get(
        subject_type=ContentType.objects.get_for_model(DatasetVersion), subject_id=version.pk
    )
    return version, request


def decide_together(users, request) -> list:
    """Each user approves `request` in their own thread and connection, released together.
    Returns, per user, the resulting state or the exception raised."""
    barrier = threading.Barrier(len(users))
    results: list = [None] * len(users)

    def work(index, user):
        try:
            barrier.wait(timeout=10)
            results[index] = services.approval_decide(
                actor=user, request=request, verdict="approve"
            ).state
        except Exception as exc:  # reported to the test thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, u)) for i, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a decision did not finish (deadlock?)"
    return results


def events(verb: str, obj) -> int:
    return AuditEvent.objects.filter(
        verb=verb, target_type=ContentType.objects.get_for_model(obj), target_id=str(obj.pk)
    ).count()


def second_steward(org):
    user = org.user("newcomer")
    team_services.membership_grant(
        actor=org.user("alpha.lead"), team=org.alpha, user=user, role="steward"
    )
    return user


def test_concurrent_approvals_with_quorum_one_fire_once():
    org = build_org()
    version, request = submitted(org)
    users = [org.user("alpha.steward"), second_steward(org)]

    results = decide_together(users, request)

    wins = [r for r in results if r == ApprovalState.APPROVED]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert type(losses[0]) is InvalidTransitionError
    assert "already approved" in losses[0].message
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.APPROVED
    assert request.requirements.get().approvals == 1
    assert Decision.objects.filter(request=request).count() == 1
    assert events("approval.approved", request) == 1
    assert version.status == VersionStatus.APPROVED
    assert events("datasetversion.approved", version) == 1
    assert (
        Notification.objects.filter(
            recipient=org.user("alpha.engineer"), subject__endswith="approval approved"
        ).count()
        == 1
    )
    assert verify_chain().ok


def test_concurrent_approvals_with_quorum_two_both_count(isolated):
    org = build_org()
    policy_create(team=org.alpha, kind=ApprovalKind.DATASET_VERSION, roles=["steward"], quorum=2)
    users = [org.user("alpha.steward"), second_steward(org)]
    version, request = submitted(org)
    assert request.requirements.get().quorum == 2

    results = decide_together(users, request)

    assert sorted(results) == [ApprovalState.APPROVED, ApprovalState.PENDING], results
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.APPROVED
    assert request.requirements.get().approvals == 2
    assert sorted(
        Decision.objects.filter(request=request).values_list("approver__username", flat=True)
    ) == ["alpha.steward", "newcomer"]
    assert version.status == VersionStatus.APPROVED
    assert events("datasetversion.approved", version) == 1
    # The requester was told once, by the decisive approval.
    assert (
        Notification.objects.filter(
            recipient=org.user("alpha.engineer"), subject__endswith="approval approved"
        ).count()
        == 1
    )
    assert ("profile", version.pk) in isolated  # the upload's enqueue ran on commit
    assert verify_chain().ok
