"""SLA breaches and incidents: a breach opens exactly one incident per condition, notifies the
accountable person and the owning team's stewards, survives any number of beat runs without
duplicates, and resolves itself (with a note and a timeline) when the condition clears.
Acknowledging follows its own permission rules and state machine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from core.errors import InvalidTransitionError, NotFoundError, PermissionDeniedError
from core.models import AuditEvent
from governance import services
from governance.choices import ApprovalState, IncidentStatus, SlaRule, VersionStatus
from governance.models import ApprovalRequest, DatasetVersion, Incident, IncidentEvent
from teams import services as team_services
from teams.models import Notification
from tests.conftest import api_as
from tests.factories import policy_create

pytestmark = pytest.mark.django_db

CSV3 = b"id,title,price\n1,Red shoe,10.5\n2,Blue shoe,12.0\n3,Green hat,7.25\n"
CSV6 = CSV3 + b"4,Yellow cap,3.5\n5,Black belt,20\n6,White sock,2\n"
BREACH_SUBJECT = "SLA breach on Catalog"


@pytest.fixture(autouse=True)
def fast_hasher_and_media(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def accountable(org):
    """alpha.ops (neither steward nor lead) is accountable (RACI A) for the asset."""
    user = org.user("alpha.ops")
    team_services.responsibility_assign(actor=org.admin, user=user, kind="A", subject=org.asset)
    return user


# --- helpers -----------------------------------------------------------------------------------


def upload(org, content: bytes = CSV3) -> DatasetVersion:
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", content),
        name="catalog.csv",
    )
    return services.dataset_version_profile(version_id=version.pk)


def request_of(version) -> ApprovalRequest:
    return ApprovalRequest.objects.get(
        subject_type=ContentType.objects.get_for_model(DatasetVersion), subject_id=version.pk
    )


def approve(org, version) -> DatasetVersion:
    services.approval_decide(
        actor=org.user("alpha.steward"), request=request_of(version), verdict="approve"
    )
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    return version


def set_sla(org, **values):
    return services.assetsla_update(actor=org.user("alpha.steward"), asset=org.asset, **values)


def breach_notices() -> list[str]:
    return sorted(
        Notification.objects.filter(subject=BREACH_SUBJECT).values_list(
            "recipient__username", flat=True
        )
    )


def timeline(incident) -> list[str]:
    return list(IncidentEvent.objects.filter(incident=incident).values_list("kind", flat=True))


def unresolved():
    return Incident.objects.exclude(status=IncidentStatus.RESOLVED)


def counts() -> tuple[int, int, int, int]:
    return (
        Incident.objects.count(),
        IncidentEvent.objects.count(),
        Notification.objects.count(),
        AuditEvent.objects.count(),
    )


# --- volume: breach -> one incident -> notified -> no duplicates -> auto-resolved --------------


def test_volume_breach_lifecycle(org, accountable):
    set_sla(org, min_rows=5)
    assert not Incident.objects.exists()  # nothing approved yet: nothing to measure
    v1 = approve(org, upload(org, CSV3))

    incident = Incident.objects.get()
    assert (incident.rule, incident.dedup_key, incident.status) == (
        SlaRule.VOLUME,
        "volume",
        IncidentStatus.OPEN,
    )
    assert incident.asset == org.asset and incident.version == v1
    assert incident.assigned_to == accountable
    assert incident.summary == "v1: 3 rows (minimum 5)"
    assert incident.detail["value"] == 3 and incident.detail["threshold"] == 5
    # Notified: the accountable person and the team's stewards, nobody else.
    assert breach_notices() == ["alpha.ops", "alpha.steward"]
    notice = Notification.objects.filter(subject=BREACH_SUBJECT).first()
    assert notice.body == incident.summary
    assert notice.link == f"/governance/incidents/{incident.pk}/"
    assert timeline(incident) == ["opened", "notified"]
    assert IncidentEvent.objects.get(incident=incident, kind="notified").message == (
        "notified alpha.ops, alpha.steward"
    )
    assert AuditEvent.objects.filter(verb="incident.opened").count() == 1

    # Beat runs (and direct re-evaluations) do not duplicate the incident or the notices.
    before = counts()
    assert services.slas_evaluate_all()["opened"] == 0
    assert services.slas_evaluate_all() == {
        "expired": 0,
        "escalated": 0,
        "opened": 0,
        "resolved": 0,
    }
    assert services.sla_evaluate_asset(asset=org.asset) == {"opened": 0, "resolved": 0}
    assert counts() == before

    # The condition clears: automatic resolution, with a note and a timeline entry.
    set_sla(org, min_rows=2)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolution_note == "condition cleared (automatic)"
    assert incident.resolved_at is not None
    assert timeline(incident) == ["opened", "notified", "resolved"]
    resolved_event = IncidentEvent.objects.get(incident=incident, kind="resolved")
    assert resolved_event.message == "condition cleared (automatic)"
    assert resolved_event.actor is None
    assert AuditEvent.objects.filter(verb="incident.resolved").count() == 1
    assert breach_notices() == ["alpha.ops", "alpha.steward"]  # no new notices
    before = counts()
    assert services.slas_evaluate_all()["resolved"] == 0
    assert counts() == before

    # The same condition breached again later is a new incident.
    set_sla(org, min_rows=10)
    assert Incident.objects.count() == 2
    assert unresolved().get().summary == "v1: 3 rows (minimum 10)"
    assert breach_notices() == ["alpha.ops", "alpha.ops", "alpha.steward", "alpha.steward"]


def test_a_better_approved_version_resolves_the_breach(org, accountable):
    set_sla(org, min_rows=5)
    approve(org, upload(org, CSV3))
    incident = unresolved().get()
    v2 = approve(org, upload(org, CSV6))
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert "cleared" in incident.resolution_note
    assert not unresolved().exists()
    assert DatasetVersion.objects.get(number=1).status == VersionStatus.SUPERSEDED
    assert v2.sla_results["ok"] is True


def test_a_pending_version_does_not_change_incidents(org, accountable):
    """Only the newest approved version counts; a bigger version waiting for approval does not
    clear the breach."""
    set_sla(org, min_rows=5)
    approve(org, upload(org, CSV3))
    upload(org, CSV6)
    services.slas_evaluate_all()
    assert unresolved().get().rule == SlaRule.VOLUME


def test_one_incident_per_breached_condition(org, accountable):
    approve(org, upload(org, b"id,title\n1,a\n1,\n2,\n"))
    set_sla(org, min_rows=5, max_null_rate=0.1)
    keys = sorted(unresolved().values_list("dedup_key", flat=True))
    assert keys == ["null_rate:title", "volume"]
    # Two incidents, each notified once per recipient.
    assert breach_notices() == ["alpha.ops", "alpha.ops", "alpha.steward", "alpha.steward"]
    services.slas_evaluate_all()
    services.slas_evaluate_all()
    assert unresolved().count() == 2
    # Clearing one leaves the other open.
    set_sla(org, min_rows=None)
    assert list(unresolved().values_list("dedup_key", flat=True)) == ["null_rate:title"]


def test_without_an_accountable_person_the_stewards_are_notified(org):
    set_sla(org, min_rows=5)
    approve(org, upload(org, CSV3))
    incident = unresolved().get()
    assert incident.assigned_to is None
    assert breach_notices() == ["alpha.steward"]


def test_breach_notification_emails_are_enqueued_on_commit(
    org, accountable, django_capture_on_commit_callbacks
):
    approve(org, upload(org, CSV3))
    with django_capture_on_commit_callbacks() as callbacks:
        set_sla(org, min_rows=5)
    assert len(callbacks) == 2  # one e-mail per notification (accountable + steward)


# --- freshness ---------------------------------------------------------------------------------


def test_freshness_breach_in_the_future_and_its_resolution(org, accountable):
    v1 = approve(org, upload(org))
    set_sla(org, freshness_hours=24)
    assert not Incident.objects.exists()

    later = v1.created_at + timedelta(hours=25)
    assert services.sla_evaluate_asset(asset=org.asset, now=later) == {"opened": 1, "resolved": 0}
    incident = unresolved().get()
    assert (incident.rule, incident.dedup_key) == (SlaRule.FRESHNESS, "freshness")
    assert incident.version == v1 and incident.assigned_to == accountable
    assert "25.0 h old (maximum 24 h)" in incident.summary
    assert breach_notices() == ["alpha.ops", "alpha.steward"]

    before = counts()
    services.slas_evaluate_all(now=later + timedelta(hours=1))
    services.slas_evaluate_all(now=later + timedelta(hours=2))
    assert counts() == before

    # Evaluated at a time within the window again (e.g. after a fresh approval): resolved.
    assert services.sla_evaluate_asset(asset=org.asset, now=v1.created_at + timedelta(hours=1)) == {
        "opened": 0,
        "resolved": 1,
    }
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert timeline(incident)[-1] == "resolved"


def test_freshness_without_any_approved_version_is_a_breach(org, accountable):
    set_sla(org, freshness_hours=24)
    incident = unresolved().get()
    assert incident.rule == SlaRule.FRESHNESS
    assert incident.summary == "no approved version yet" and incident.version is None
    approve(org, upload(org))
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED


# --- approval latency --------------------------------------------------------------------------


def test_overdue_approval_opens_an_incident_and_escalates(org, accountable):
    set_sla(org, approval_latency_hours=2)
    version = upload(org)
    request = request_of(version)
    assert request.due_at is not None

    totals = services.slas_evaluate_all(now=request.created_at + timedelta(hours=1))
    assert (totals["escalated"], totals["opened"]) == (0, 0)

    later = request.created_at + timedelta(hours=3)
    totals = services.slas_evaluate_all(now=later)
    assert (totals["escalated"], totals["opened"]) == (1, 1)
    incident = unresolved().get()
    assert incident.rule == SlaRule.APPROVAL_LATENCY
    assert incident.dedup_key == f"approval:{request.pk}"
    assert incident.approval_request == request
    assert f"approval #{request.pk} undecided" in incident.summary
    assert breach_notices() == ["alpha.ops", "alpha.steward"]
    assert list(
        Notification.objects.filter(subject__startswith="Overdue approval").values_list(
            "recipient__username", flat=True
        )
    ) == ["alpha.lead"]
    request.refresh_from_db()
    assert request.escalation_level == 1

    before = counts()
    totals = services.slas_evaluate_all(now=later + timedelta(minutes=15))
    assert (totals["escalated"], totals["opened"]) == (0, 0)
    assert counts() == before

    # Deciding the request clears the condition.
    approve(org, version)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert "cleared" in incident.resolution_note


def test_expired_request_clears_its_latency_incident(org, accountable):
    from governance.choices import ApprovalKind

    policy_create(
        team=org.alpha,
        kind=ApprovalKind.DATASET_VERSION,
        roles=["steward", "lead"],
        expiry_hours=4,
    )
    set_sla(org, approval_latency_hours=1)
    request = request_of(upload(org))
    services.slas_evaluate_all(now=request.created_at + timedelta(hours=2))
    incident = unresolved().get()
    totals = services.slas_evaluate_all(now=request.created_at + timedelta(hours=5))
    assert totals["expired"] == 1 and totals["resolved"] == 1
    request.refresh_from_db()
    incident.refresh_from_db()
    assert request.state == ApprovalState.EXPIRED
    assert incident.status == IncidentStatus.RESOLVED


# --- acknowledging -----------------------------------------------------------------------------


@pytest.fixture
def incident(org, accountable):
    set_sla(org, min_rows=5)
    approve(org, upload(org, CSV3))
    return unresolved().get()


@pytest.mark.parametrize("who", ["alpha.ops", "alpha.steward", "alpha.lead", "acme.lead"])
def test_assigned_person_stewards_and_leads_may_acknowledge(org, incident, who):
    result = services.incident_acknowledge(
        actor=org.user(who), incident=incident, note="  looking into it "
    )
    assert result.status == IncidentStatus.ACKNOWLEDGED
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED
    assert incident.acknowledged_by == org.user(who) and incident.acknowledged_at is not None
    event = IncidentEvent.objects.get(incident=incident, kind="acknowledged")
    assert (event.actor, event.message) == (org.user(who), "looking into it")
    audit = AuditEvent.objects.get(verb="incident.acknowledged")
    assert audit.actor == org.user(who)
    assert audit.before == {"status": "open"}


@pytest.mark.parametrize(
    ("who", "error", "words"),
    [
        ("alpha.viewer", PermissionDeniedError, ["Only the accountable person", "Alpha"]),
        ("alpha.engineer", PermissionDeniedError, ["Only the accountable person"]),
        ("beta.steward", PermissionDeniedError, ["stewards and leads of Alpha"]),
        ("beta.lead", PermissionDeniedError, ["stewards and leads of Alpha"]),
        ("outsider", NotFoundError, ["not found"]),
    ],
)
def test_others_cannot_acknowledge(org, incident, who, error, words):
    before = counts()
    with pytest.raises(error) as info:
        services.incident_acknowledge(actor=org.user(who), incident=incident, note="mine")
    assert type(info.value) is error
    for word in words:
        assert word in info.value.message
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN and incident.acknowledged_by is None
    assert counts() == before


def test_acknowledging_twice_is_refused(org, incident):
    services.incident_acknowledge(actor=org.user("alpha.ops"), incident=incident)
    before = counts()
    with pytest.raises(InvalidTransitionError) as info:
        services.incident_acknowledge(actor=org.user("alpha.steward"), incident=incident)
    assert "acknowledged" in info.value.message
    assert "cannot become acknowledged" in info.value.message
    incident.refresh_from_db()
    assert incident.acknowledged_by == org.user("alpha.ops")
    assert counts() == before


def test_acknowledged_incident_still_resolves_automatically_and_then_refuses_ack(org, incident):
    services.incident_acknowledge(actor=org.user("alpha.ops"), incident=incident)
    set_sla(org, min_rows=1)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert timeline(incident) == ["opened", "notified", "acknowledged", "resolved"]
    before = counts()
    with pytest.raises(InvalidTransitionError, match="resolved: it cannot become acknowledged"):
        services.incident_acknowledge(actor=org.user("alpha.steward"), incident=incident)
    assert counts() == before


def test_acknowledge_through_the_api(org, incident):
    url = f"/api/v1/incidents/{incident.pk}/acknowledge/"
    response = api_as(org.user("alpha.viewer")).post(url, {"note": "x"}, format="json")
    assert response.status_code == 403
    response = api_as(org.user("alpha.ops")).post(url, {"note": "on it"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == IncidentStatus.ACKNOWLEDGED
    response = api_as(org.user("alpha.steward")).post(url, {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "InvalidTransitionError"
    timeline_url = f"/api/v1/incidents/{incident.pk}/timeline/"
    kinds = [e["kind"] for e in api_as(org.user("alpha.viewer")).get(timeline_url).json()]
    assert kinds == ["opened", "notified", "acknowledged"]


def test_unique_while_unresolved_is_enforced_by_the_database(org, incident):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.create(
            asset=org.asset, rule=SlaRule.VOLUME, dedup_key="volume", summary="duplicate"
        )
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = timezone.now()
    incident.save()
    Incident.objects.create(
        asset=org.asset,
        rule=SlaRule.VOLUME,
        dedup_key="volume",
        summary="allowed once the first is resolved",
    )
