"""The approval state machine of governance.services.approvals, transition by transition.

Legal: pending -> approved (quorum 1, quorum 2 across two stewards, every required team),
pending -> rejected, pending -> expired (beat job and decide-after-expiry), pending -> cancelled
(requester, site admin, changed subject). Illegal: each refusal raises the exact error class
with a clear message and changes nothing, except where the rule closes the request (an expired
request or a changed subject: closed and committed, then refused)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from core.audit import verify_chain
from core.errors import InvalidTransitionError, PermissionDeniedError, ValidationError
from core.models import AuditEvent
from governance import services
from governance.choices import ApprovalKind, ApprovalState, VersionStatus
from governance.models import ApprovalPolicy, ApprovalRequest, DataAsset, DatasetVersion, Decision
from governance.services import approvals as engine
from teams import services as team_services
from teams.models import Notification
from tests import helpers
from tests.approval_setup import CSV, request_of, snapshot, upload
from tests.conftest import api_as
from tests.factories import policy_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher_and_media(settings, tmp_path):
    """Cheap password hashing for the dozen users of build_org(); uploads under tmp_path."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"


# --- helpers -----------------------------------------------------------------------------------


def refused(exc_class, words: list[str], call):
    """Run `call`, expecting exactly `exc_class` whose message contains every one of `words`."""
    with helpers.refused(exc_class, *words) as info:
        call()
    return info.value


def decide(org, request, who: str, verdict: str = "approve", comment: str = ""):
    return services.approval_decide(
        actor=org.user(who), request=request, verdict=verdict, comment=comment
    )


def verbs_of(obj) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            target_type=ContentType.objects.get_for_model(obj), target_id=str(obj.pk)
        )
        .order_by("id")
        .values_list("verb", flat=True)
    )


def add_second_steward(org):
    """`newcomer` becomes a second steward of alpha (through the teams service)."""
    team_services.membership_grant(
        actor=org.user("alpha.lead"), team=org.alpha, user=org.user("newcomer"), role="steward"
    )
    return org.user("newcomer")


@pytest.fixture
def pending(org):
    """v1 uploaded by alpha.engineer, profiled and submitted: a pending request (quorum 1)."""
    version = upload(org)
    return version, request_of(version)


# --- opening a request -------------------------------------------------------------------------


def test_profiled_version_opens_a_pending_request_needing_the_owning_team(org, pending):
    version, request = pending
    assert version.status == VersionStatus.SUBMITTED
    assert request.kind == ApprovalKind.DATASET_VERSION
    assert request.state == ApprovalState.PENDING
    assert request.requester == org.user("alpha.engineer")
    assert request.content_hash == engine.handler_for(request.kind).content_hash(version)
    assert request.expires_at is None and request.due_at is None
    requirement = request.requirements.get()
    assert requirement.team == org.alpha
    assert (requirement.quorum, requirement.approvals) == (1, 0)
    assert requirement.roles == ["steward", "lead"]
    assert verbs_of(request) == ["approval.requested"]


def test_approvers_are_notified_when_a_request_opens(org, pending):
    version, _request = pending
    notified = Notification.objects.filter(subject__startswith="Approval needed")
    assert sorted(n.recipient.username for n in notified) == ["alpha.lead", "alpha.steward"]
    for notification in notified:
        assert str(version) in notification.subject
        assert notification.link == f"/governance/versions/{version.pk}/"
    # Never the requester, the team's non-approvers, or another team.
    assert not Notification.objects.filter(
        recipient__username__in=["alpha.engineer", "alpha.viewer", "alpha.ops", "beta.steward"]
    ).exists()


def test_policy_sets_quorum_roles_and_expiry_snapshotted_at_request_time(org):
    policy = policy_create(
        team=org.alpha,
        kind=ApprovalKind.DATASET_VERSION,
        roles=["steward"],
        quorum=2,
        expiry_hours=48,
    )
    before = timezone.now()
    request = request_of(upload(org))
    requirement = request.requirements.get()
    assert (requirement.quorum, requirement.roles) == (2, ["steward"])
    assert before + timedelta(hours=48) <= request.expires_at
    assert request.expires_at <= timezone.now() + timedelta(hours=48)
    # Changing the policy later does not change an open request.
    ApprovalPolicy.objects.filter(team=org.alpha).update(quorum=1)
    policy.approver_roles.update(role="lead")
    requirement.refresh_from_db()
    assert (requirement.quorum, requirement.roles) == (2, ["steward"])
    # Only stewards were notified (the lead is not an approver under this policy).
    assert list(
        Notification.objects.filter(subject__startswith="Approval needed").values_list(
            "recipient__username", flat=True
        )
    ) == ["alpha.steward"]
    # ...and a lead cannot decide under it.
    state = snapshot(request)
    refused(
        PermissionDeniedError,
        ["needs approvers of Alpha"],
        lambda: decide(org, request, "alpha.lead"),
    )
    assert snapshot(request) == state


# --- pending -> approved -----------------------------------------------------------------------


def test_quorum_one_approval_approves_request_and_version(org, pending):
    version, request = pending
    audit_before = helpers.last_audit_id()
    result = decide(org, request, "alpha.steward", comment="looks good")
    assert result.state == ApprovalState.APPROVED
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.APPROVED and request.decided_at is not None
    assert version.status == VersionStatus.APPROVED and version.decided_at is not None
    decision = Decision.objects.get(request=request)
    assert (decision.approver, decision.team, decision.verdict, decision.comment) == (
        org.user("alpha.steward"),
        org.alpha,
        "approve",
        "looks good",
    )
    assert request.requirements.get().approvals == 1
    assert verbs_of(request) == ["approval.requested", "approval.approved"]
    assert verbs_of(version)[-1] == "datasetversion.approved"
    assert len(helpers.audit_since(audit_before)) == 2
    # The requester hears the outcome.
    outcome = Notification.objects.get(recipient=org.user("alpha.engineer"))
    assert "approved" in outcome.subject and outcome.body == "looks good"
    assert verify_chain().ok


def test_a_lead_of_the_owning_team_may_approve(org, pending):
    version, request = pending
    decide(org, request, "alpha.lead")
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED


def test_approval_supersedes_the_previously_approved_version(org):
    v1 = upload(org)
    decide(org, request_of(v1), "alpha.steward")
    v2 = upload(org, content=CSV + b"4,Yellow cap,3.5\n")
    v1.refresh_from_db()
    assert v1.status == VersionStatus.APPROVED  # still the current one while v2 is pending
    decide(org, request_of(v2), "alpha.steward")
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (VersionStatus.SUPERSEDED, VersionStatus.APPROVED)
    assert verbs_of(v1)[-1] == "datasetversion.superseded"


def test_quorum_two_counts_approvals_of_two_stewards(org):
    policy_create(team=org.alpha, kind=ApprovalKind.DATASET_VERSION, roles=["steward"], quorum=2)
    second = add_second_steward(org)
    version = upload(org)
    request = request_of(version)

    assert decide(org, request, "alpha.steward").state == ApprovalState.PENDING
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.PENDING and request.decided_at is None
    assert request.requirements.get().approvals == 1
    assert version.status == VersionStatus.SUBMITTED
    assert not Notification.objects.filter(recipient=org.user("alpha.engineer")).exists()

    result = services.approval_decide(actor=second, request=request, verdict="approve")
    assert result.state == ApprovalState.APPROVED
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.requirements.get().approvals == 2
    assert Decision.objects.filter(request=request, verdict="approve").count() == 2
    assert version.status == VersionStatus.APPROVED
    assert verbs_of(version).count("datasetversion.approved") == 1


# --- pending -> rejected -----------------------------------------------------------------------


def test_reject_with_a_comment_rejects_request_and_version(org, pending):
    version, request = pending
    result = decide(org, request, "alpha.steward", "reject", comment="  prices are in cents  ")
    assert result.state == ApprovalState.REJECTED
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.REJECTED and request.decided_at is not None
    assert version.status == VersionStatus.REJECTED
    decision = Decision.objects.get(request=request)
    assert (decision.verdict, decision.comment) == ("reject", "prices are in cents")
    assert verbs_of(request) == ["approval.requested", "approval.rejected"]
    assert verbs_of(version)[-1] == "datasetversion.rejected"
    outcome = Notification.objects.get(recipient=org.user("alpha.engineer"))
    assert "rejected" in outcome.subject and outcome.body == "prices are in cents"


def test_one_rejection_closes_a_quorum_two_request(org):
    policy_create(team=org.alpha, kind=ApprovalKind.DATASET_VERSION, roles=["steward"], quorum=2)
    add_second_steward(org)
    version = upload(org)
    request = request_of(version)
    decide(org, request, "alpha.steward")
    decide(org, request, "newcomer", "reject", comment="duplicate ids")
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.REJECTED
    assert version.status == VersionStatus.REJECTED


# --- pending -> expired ------------------------------------------------------------------------


@pytest.fixture
def expiring(org):
    policy_create(
        team=org.alpha,
        kind=ApprovalKind.DATASET_VERSION,
        roles=["steward", "lead"],
        expiry_hours=1,
    )
    version = upload(org)
    return version, request_of(version)


def test_beat_job_expires_due_requests_once(org, expiring):
    version, request = expiring
    assert services.approvals_expire_due(now=timezone.now() + timedelta(minutes=30)) == 0
    assert ApprovalRequest.objects.get(pk=request.pk).state == ApprovalState.PENDING

    assert services.approvals_expire_due(now=timezone.now() + timedelta(hours=2)) == 1
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.EXPIRED
    assert request.outcome_note == "expired" and request.decided_at is not None
    # Back to draft: the uploader may submit it again.
    assert version.status == VersionStatus.DRAFT
    assert verbs_of(request)[-1] == "approval.expired"
    assert verbs_of(version)[-1] == "datasetversion.returned_to_draft"
    assert Notification.objects.filter(
        recipient=org.user("alpha.engineer"), subject__contains="expired"
    ).exists()

    state = snapshot(request)
    assert services.approvals_expire_due(now=timezone.now() + timedelta(hours=3)) == 0
    assert snapshot(request) == state
    refused(
        InvalidTransitionError,
        ["already expired", "cannot be decided"],
        lambda: decide(org, request, "alpha.steward"),
    )
    assert snapshot(request) == state


def test_deciding_after_expiry_expires_the_request_commits_and_refuses(
    org, expiring, django_capture_on_commit_callbacks
):
    version, request = expiring
    ApprovalRequest.objects.filter(pk=request.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    audit_before = helpers.last_audit_id()
    with django_capture_on_commit_callbacks() as callbacks:
        refused(
            InvalidTransitionError,
            ["expired", "can no longer be decided"],
            lambda: decide(org, request, "alpha.steward"),
        )
    request.refresh_from_db()
    version.refresh_from_db()
    # The closing is kept (not rolled back with the refusal); the decision is not recorded.
    assert request.state == ApprovalState.EXPIRED and request.outcome_note == "expired"
    assert version.status == VersionStatus.DRAFT
    assert not Decision.objects.filter(request=request).exists()
    assert request.requirements.get().approvals == 0
    assert len(helpers.audit_since(audit_before)) == 2
    assert verbs_of(request)[-1] == "approval.expired"
    # The requester's notification (e-mail on commit) survived the refusal.
    assert Notification.objects.filter(
        recipient=org.user("alpha.engineer"), subject__contains="expired"
    ).exists()
    assert len(callbacks) == 1

    state = snapshot(request)
    refused(InvalidTransitionError, ["already expired"], lambda: decide(org, request, "alpha.lead"))
    assert snapshot(request) == state


def test_expired_version_can_be_submitted_again(org, expiring):
    version, _request = expiring
    services.approvals_expire_due(now=timezone.now() + timedelta(hours=2))
    services.dataset_version_submit(actor=org.user("alpha.engineer"), version=version)
    version.refresh_from_db()
    assert version.status == VersionStatus.SUBMITTED
    requests = ApprovalRequest.objects.filter(subject_id=version.pk).order_by("id")
    assert [r.state for r in requests] == [ApprovalState.EXPIRED, ApprovalState.PENDING]


# --- pending -> cancelled ----------------------------------------------------------------------


def test_requester_cancels_a_pending_request(org, pending):
    version, request = pending
    result = services.approval_cancel(
        actor=org.user("alpha.engineer"), request=request, reason="  wrong file  "
    )
    assert result.state == ApprovalState.CANCELLED
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.CANCELLED and request.outcome_note == "wrong file"
    assert version.status == VersionStatus.DRAFT
    assert verbs_of(request)[-1] == "approval.cancelled"
    assert AuditEvent.objects.filter(verb="approval.cancelled").get().actor == org.user(
        "alpha.engineer"
    )

    state = snapshot(request)
    refused(
        InvalidTransitionError,
        ["already cancelled"],
        lambda: services.approval_cancel(actor=org.user("alpha.engineer"), request=request),
    )
    refused(
        InvalidTransitionError, ["already cancelled"], lambda: decide(org, request, "alpha.steward")
    )
    assert snapshot(request) == state


def test_site_admin_may_cancel(org, pending):
    _version, request = pending
    services.approval_cancel(actor=org.admin, request=request)
    request.refresh_from_db()
    assert request.state == ApprovalState.CANCELLED
    assert request.outcome_note == "cancelled by the requester"


@pytest.mark.parametrize("who", ["alpha.steward", "alpha.lead", "beta.lead", "outsider"])
def test_only_the_requester_may_cancel(org, pending, who):
    _version, request = pending
    state = snapshot(request)
    refused(
        PermissionDeniedError,
        ["Only the requester"],
        lambda: services.approval_cancel(actor=org.user(who), request=request),
    )
    assert snapshot(request) == state


def test_changed_subject_cancels_the_request_then_refuses(org, pending):
    version, request = pending
    # The stored file's checksum changes behind the request's back.
    DatasetVersion.objects.filter(pk=version.pk).update(sha256="f" * 64)
    audit_before = helpers.last_audit_id()
    refused(
        InvalidTransitionError,
        ["subject changed", "invalidated"],
        lambda: decide(org, request, "alpha.steward"),
    )
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.state == ApprovalState.CANCELLED
    assert "subject changed" in request.outcome_note
    assert version.status == VersionStatus.DRAFT  # never approved
    assert not Decision.objects.filter(request=request).exists()
    assert len(helpers.audit_since(audit_before)) == 2
    assert verbs_of(request)[-1] == "approval.cancelled"

    state = snapshot(request)
    refused(
        InvalidTransitionError, ["already cancelled"], lambda: decide(org, request, "alpha.lead")
    )
    assert snapshot(request) == state


# --- illegal decisions: nothing changes --------------------------------------------------------


def test_approving_twice_after_quorum_one_is_refused(org, pending):
    _version, request = pending
    decide(org, request, "alpha.steward")
    state = snapshot(request)
    for who in ("alpha.steward", "alpha.lead"):
        refused(
            InvalidTransitionError,
            ["already approved", "cannot be decided again"],
            lambda who=who: decide(org, request, who),
        )
        assert snapshot(request) == state
    assert InvalidTransitionError.status_code == 409


def test_same_person_cannot_approve_twice_toward_a_quorum(org):
    policy_create(team=org.alpha, kind=ApprovalKind.DATASET_VERSION, roles=["steward"], quorum=2)
    request = request_of(upload(org))
    decide(org, request, "alpha.steward")
    state = snapshot(request)
    assert (
        state["requirements"] == [("alpha", 1)] and state["request"][0][0] == ApprovalState.PENDING
    )
    for verdict, comment in (("approve", ""), ("reject", "changed my mind")):
        refused(
            InvalidTransitionError,
            ["already decided"],
            lambda verdict=verdict, comment=comment: decide(
                org, request, "alpha.steward", verdict, comment
            ),
        )
        assert snapshot(request) == state


def test_approving_your_own_upload_is_refused(org):
    # A steward may upload; they still cannot approve their own version.
    version = upload(org, by="alpha.steward")
    request = request_of(version)
    state = snapshot(request)
    for verdict, comment in (("approve", ""), ("reject", "oops")):
        error = refused(
            PermissionDeniedError,
            ["own request"],
            lambda verdict=verdict, comment=comment: decide(
                org, request, "alpha.steward", verdict, comment
            ),
        )
        assert error.status_code == 403
        assert snapshot(request) == state
    # Not notified either: the lead is the only approver told about it.
    assert list(
        Notification.objects.filter(subject__startswith="Approval needed").values_list(
            "recipient__username", flat=True
        )
    ) == ["alpha.lead"]


def test_the_uploader_cannot_approve_a_version_someone_else_submitted(org):
    # Four eyes: alpha.steward uploads a draft, alpha.lead submits it; the uploader is not the
    # requester but still produced the file, so they may not decide on it.
    version = upload(org, by="alpha.steward", submit=False)
    services.dataset_version_submit(actor=org.user("alpha.lead"), version=version)
    request = request_of(version)
    assert request.requester == org.user("alpha.lead")
    state = snapshot(request)
    for verdict, comment in (("approve", ""), ("reject", "oops")):
        error = refused(
            PermissionDeniedError,
            ["You cannot decide on this request", "you uploaded it"],
            lambda verdict=verdict, comment=comment: decide(
                org, request, "alpha.steward", verdict, comment
            ),
        )
        assert error.status_code == 403
        assert snapshot(request) == state
    # Neither the uploader nor the submitter was asked: nobody else may decide under the
    # default policy, so nobody was notified.
    assert not Notification.objects.filter(subject__startswith="Approval needed").exists()
    newcomer = add_second_steward(org)
    decide(org, request, newcomer.username)
    assert DatasetVersion.objects.get(pk=version.pk).status == VersionStatus.APPROVED


def test_approving_after_a_rejection_is_refused(org, pending):
    _version, request = pending
    decide(org, request, "alpha.steward", "reject", comment="bad prices")
    state = snapshot(request)
    assert state["version"][0][0] == VersionStatus.REJECTED
    refused(
        InvalidTransitionError,
        ["already rejected", "cannot be decided again"],
        lambda: decide(org, request, "alpha.lead"),
    )
    assert snapshot(request) == state


@pytest.mark.parametrize(
    "who", ["beta.steward", "beta.lead", "alpha.viewer", "alpha.ops", "sub.lead", "outsider"]
)
def test_non_approvers_cannot_decide(org, pending, who):
    _version, request = pending
    state = snapshot(request)
    for verdict, comment in (("approve", ""), ("reject", "no")):
        error = refused(
            PermissionDeniedError,
            ["cannot decide on this request", "needs approvers of Alpha"],
            lambda verdict=verdict, comment=comment: decide(org, request, who, verdict, comment),
        )
        assert error.status_code == 403
        assert snapshot(request) == state


def test_an_engineer_of_the_owning_team_cannot_decide(org):
    request = request_of(upload(org, by="alpha.steward"))
    state = snapshot(request)
    refused(
        PermissionDeniedError,
        ["needs approvers of Alpha"],
        lambda: decide(org, request, "alpha.engineer"),
    )
    assert snapshot(request) == state
    decide(org, request, "alpha.lead")
    assert ApprovalRequest.objects.get(pk=request.pk).state == ApprovalState.APPROVED


@pytest.mark.parametrize("comment", ["", "   \n "])
def test_reject_needs_a_comment(org, pending, comment):
    _version, request = pending
    state = snapshot(request)
    error = refused(
        ValidationError,
        ["rejection needs a comment"],
        lambda: decide(org, request, "alpha.steward", "reject", comment),
    )
    assert error.field == "comment" and error.status_code == 400
    assert snapshot(request) == state


def test_unknown_verdict_is_refused(org, pending):
    _version, request = pending
    state = snapshot(request)
    refused(
        ValidationError,
        ["approve or reject"],
        lambda: decide(org, request, "alpha.steward", "maybe"),
    )
    assert snapshot(request) == state


def test_refusals_enqueue_nothing(org, pending, django_capture_on_commit_callbacks):
    _version, request = pending
    with django_capture_on_commit_callbacks() as callbacks:
        for who, verdict, comment in (
            ("beta.steward", "approve", ""),
            ("alpha.engineer", "approve", ""),
            ("alpha.steward", "reject", ""),
        ):
            with pytest.raises((PermissionDeniedError, ValidationError)):
                decide(org, request, who, verdict, comment)
    assert callbacks == []


def test_api_answers_illegal_decisions_with_their_status_codes(org, pending):
    _version, request = pending
    url = f"/api/v1/approvals/{request.pk}/decide/"
    state = snapshot(request)

    response = api_as(org.user("beta.steward")).post(url, {"verdict": "approve"}, format="json")
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "PermissionDeniedError"
    assert "needs approvers of Alpha" in response.json()["detail"]

    response = api_as(org.user("alpha.steward")).post(url, {"verdict": "reject"}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "comment"
    assert snapshot(request) == state

    response = api_as(org.user("alpha.steward")).post(url, {"verdict": "approve"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == ApprovalState.APPROVED

    response = api_as(org.user("alpha.lead")).post(url, {"verdict": "approve"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "InvalidTransitionError"
    assert "already approved" in response.json()["detail"]


# --- several required teams (a pipeline-run-like subject) --------------------------------------


@pytest.fixture
def two_team_handler(org):
    """A "pipeline_run" handler whose subject (the asset) needs alpha AND beta; the registry is
    restored afterwards."""
    saved = dict(engine._handlers)
    calls: list[tuple[str, str, str]] = []
    handler = engine.SubjectHandler(
        kind=ApprovalKind.PIPELINE_RUN,
        content_hash=lambda asset: f"asset:{asset.pk}:{asset.description}",
        required_teams=lambda asset: [org.alpha, org.beta, org.alpha],
        on_approved=lambda actor, subject, request: calls.append(
            ("approved", actor.username, request.state)
        ),
        on_closed=lambda actor, subject, request: calls.append(
            ("closed", actor.username if actor else "", request.state)
        ),
        link=lambda asset: f"/governance/assets/{asset.slug}/",
    )
    engine.register_subject_handler(handler)
    yield calls
    engine._handlers.clear()
    engine._handlers.update(saved)


def test_multi_team_request_needs_every_team(org, two_team_handler):
    calls = two_team_handler
    request = services.approval_request_open(
        actor=org.user("alpha.engineer"),
        kind=ApprovalKind.PIPELINE_RUN,
        subject=org.asset,
        reason="retrain",
    )
    assert sorted(request.requirements.values_list("team__slug", "quorum", "approvals")) == [
        ("alpha", 1, 0),
        ("beta", 1, 0),
    ]
    notified = Notification.objects.filter(subject__startswith="Approval needed")
    assert sorted(n.recipient.username for n in notified) == [
        "alpha.lead",
        "alpha.steward",
        "beta.lead",
        "beta.steward",
    ]
    assert {n.link for n in notified} == {"/governance/assets/catalog/"}
    assert all("retrain" in n.body for n in notified)

    # alpha alone (even twice over its quorum) is not enough.
    assert decide(org, request, "alpha.steward").state == ApprovalState.PENDING
    assert decide(org, request, "alpha.lead").state == ApprovalState.PENDING
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING
    assert dict(request.requirements.values_list("team__slug", "approvals")) == {
        "alpha": 2,
        "beta": 0,
    }
    assert calls == []

    assert decide(org, request, "beta.steward").state == ApprovalState.APPROVED
    request.refresh_from_db()
    assert request.state == ApprovalState.APPROVED
    assert dict(request.requirements.values_list("team__slug", "approvals")) == {
        "alpha": 2,
        "beta": 1,
    }
    assert list(
        Decision.objects.filter(request=request).values_list("approver__username", "team__slug")
    ) == [("alpha.steward", "alpha"), ("alpha.lead", "alpha"), ("beta.steward", "beta")]
    assert calls == [("approved", "beta.steward", ApprovalState.APPROVED)]

    state = snapshot(request)
    refused(InvalidTransitionError, ["already approved"], lambda: decide(org, request, "beta.lead"))
    assert snapshot(request) == state


def test_multi_team_rejection_by_one_team_closes_the_request(org, two_team_handler):
    calls = two_team_handler
    request = services.approval_request_open(
        actor=org.user("alpha.engineer"), kind=ApprovalKind.PIPELINE_RUN, subject=org.asset
    )
    decide(org, request, "alpha.steward")
    decide(org, request, "beta.lead", "reject", comment="our labels are stale")
    request.refresh_from_db()
    assert request.state == ApprovalState.REJECTED
    assert calls == [("closed", "beta.lead", ApprovalState.REJECTED)]


def test_multi_team_subject_change_invalidates_the_request(org, two_team_handler):
    calls = two_team_handler
    request = services.approval_request_open(
        actor=org.user("alpha.engineer"), kind=ApprovalKind.PIPELINE_RUN, subject=org.asset
    )
    decide(org, request, "alpha.steward")
    DataAsset.objects.filter(pk=org.asset.pk).update(description="changed")
    refused(
        InvalidTransitionError, ["subject changed"], lambda: decide(org, request, "beta.steward")
    )
    request.refresh_from_db()
    assert request.state == ApprovalState.CANCELLED
    assert calls == [("closed", "", ApprovalState.CANCELLED)]
    assert Decision.objects.filter(request=request).count() == 1


def test_request_without_owning_team_is_refused(org, two_team_handler):
    engine.register_subject_handler(
        engine.SubjectHandler(
            kind=ApprovalKind.INDEX_ACTIVATION,
            content_hash=lambda subject: "x",
            required_teams=lambda subject: [],
            on_approved=lambda *args: None,
            on_closed=lambda *args: None,
            link=lambda subject: "",
        )
    )
    before = (ApprovalRequest.objects.count(), helpers.last_audit_id())
    refused(
        ValidationError,
        ["no owning team"],
        lambda: services.approval_request_open(
            actor=org.user("alpha.engineer"), kind=ApprovalKind.INDEX_ACTIVATION, subject=org.asset
        ),
    )
    assert (ApprovalRequest.objects.count(), helpers.last_audit_id()) == before


def test_registry_is_restored_after_the_handler_fixture():
    from governance.services.versions import DATASET_VERSION_HANDLER
    from recsys.services import INDEX_HANDLER, RUN_HANDLER

    # The real handlers (registered by the apps) are back after the test handlers.
    assert engine._handlers[ApprovalKind.PIPELINE_RUN] is RUN_HANDLER
    assert engine._handlers[ApprovalKind.INDEX_ACTIVATION] is INDEX_HANDLER
    assert engine._handlers[ApprovalKind.DATASET_VERSION] is DATASET_VERSION_HANDLER


# --- escalation --------------------------------------------------------------------------------


def test_overdue_request_escalates_to_leads_then_parent_team_leads(org):
    services.assetsla_update(
        actor=org.user("alpha.steward"), asset=org.asset, approval_latency_hours=2
    )
    request = request_of(upload(org))
    assert request.due_at is not None
    start = request.created_at

    def overdue_notices():
        return sorted(
            Notification.objects.filter(subject__startswith="Overdue approval").values_list(
                "recipient__username", flat=True
            )
        )

    assert services.approvals_escalate_overdue(now=start + timedelta(hours=1)) == 0
    assert overdue_notices() == []

    # Level 1: the required team's leads (not the sub-team's, not the parent's).
    assert services.approvals_escalate_overdue(now=start + timedelta(hours=3)) == 1
    request.refresh_from_db()
    assert request.escalation_level == 1 and request.escalated_at is not None
    assert overdue_notices() == ["alpha.lead"]
    assert (
        "escalation level 1"
        in Notification.objects.get(subject__startswith="Overdue approval").body
    )
    event = AuditEvent.objects.filter(verb="approval.escalated").get()
    assert event.after == {"escalation_level": 1, "notified": ["alpha.lead"]}

    # Idempotent within a level.
    assert services.approvals_escalate_overdue(now=start + timedelta(hours=3, minutes=30)) == 0
    assert overdue_notices() == ["alpha.lead"]

    # Level 2 after another window: the parent team's leads.
    assert services.approvals_escalate_overdue(now=start + timedelta(hours=5)) == 1
    request.refresh_from_db()
    assert request.escalation_level == 2
    assert overdue_notices() == ["acme.lead", "alpha.lead"]
    assert services.approvals_escalate_overdue(now=start + timedelta(hours=50)) == 0
    assert overdue_notices() == ["acme.lead", "alpha.lead"]
    assert AuditEvent.objects.filter(verb="approval.escalated").count() == 2
    # Still pending and decidable.
    assert request.state == ApprovalState.PENDING
    decide(org, request, "alpha.steward")


def test_decided_requests_are_not_escalated(org):
    services.assetsla_update(
        actor=org.user("alpha.steward"), asset=org.asset, approval_latency_hours=1
    )
    request = request_of(upload(org))
    decide(org, request, "alpha.steward")
    assert services.approvals_escalate_overdue(now=timezone.now() + timedelta(hours=10)) == 0
    assert not Notification.objects.filter(subject__startswith="Overdue approval").exists()
