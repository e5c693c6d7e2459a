"""Approval policies: who may set them, validation, audit, the UI and API, and that new
requests snapshot the policy (open requests keep theirs)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.errors import NotFoundError, PermissionDeniedError, ValidationError
from core.models import AuditEvent
from governance import services
from governance.models import ApprovalPolicy, ApprovalRequest
from tests.conftest import api_as, login
from tests.helpers import audit_delta, refused

pytestmark = pytest.mark.django_db
KIND = "dataset_version"


def set_policy(org, actor, team=None, **values):
    values = {"approver_roles": ["steward"], "quorum": 2, "expiry_hours": 48, **values}
    return services.approvalpolicy_set(
        actor=org.user(actor), team=team or org.alpha, kind=KIND, **values
    )


@pytest.mark.parametrize("actor", ["alpha.lead", "acme.lead", "admin"])
def test_leads_of_the_team_or_above_set_the_policy(org, actor):
    with audit_delta() as events:
        policy = set_policy(org, actor)
    assert (policy.roles, policy.quorum, policy.expiry_hours) == (["steward"], 2, 48)
    (event,) = events
    assert event.verb == "approvalpolicy.set"
    assert event.before is None and event.after["quorum"] == 2


@pytest.mark.parametrize(
    ("actor", "team", "error", "words"),
    [
        ("alpha.steward", "alpha", PermissionDeniedError, "only a lead of Alpha"),
        ("alpha.viewer", "alpha", PermissionDeniedError, "approval policies"),
        ("beta.lead", "alpha", PermissionDeniedError, "only a lead of Alpha"),
        ("alpha.lead", "beta", PermissionDeniedError, "only a lead of Beta"),
        ("outsider", "alpha", NotFoundError, "not found"),
    ],
)
def test_others_are_refused_and_nothing_changes(org, actor, team, error, words):
    with audit_delta() as events, refused(error, words):
        set_policy(org, actor, team=getattr(org, team))
    assert not ApprovalPolicy.objects.exists()
    assert events == []


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"approver_roles": []}, "approver_roles", "at least one approver role"),
        ({"approver_roles": ["viewer"]}, "approver_roles", "viewer cannot approve"),
        ({"quorum": 0}, "quorum", "at least 1"),
        ({"expiry_hours": 0}, "expiry_hours", "at least 1 hour"),
    ],
)
def test_bad_values_are_refused_with_the_field(org, values, field, words):
    with pytest.raises(ValidationError) as exc:
        set_policy(org, "alpha.lead", **values)
    assert exc.value.field == field
    assert words in exc.value.message.replace("Role(s) ", "")
    assert not ApprovalPolicy.objects.exists()


def test_setting_the_same_policy_again_is_refused(org):
    set_policy(org, "alpha.lead")
    with pytest.raises(ValidationError, match="Nothing to change"):
        set_policy(org, "alpha.lead")
    assert AuditEvent.objects.filter(verb="approvalpolicy.set").count() == 1


def test_new_requests_snapshot_the_policy_and_open_ones_keep_theirs(org, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path

    def upload():
        version = services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            name="c.csv",
            file=SimpleUploadedFile("c.csv", b"id,title\n1,a\n2,b\n"),
        )
        services.dataset_version_profile(version_id=version.pk)
        return ApprovalRequest.objects.get(subject_id=version.pk)

    first = upload()
    set_policy(org, "alpha.lead", approver_roles=["steward", "lead"], quorum=2)
    second = upload()
    assert first.requirements.get().quorum == 1
    requirement = second.requirements.get()
    assert (requirement.quorum, requirement.roles) == (2, ["lead", "steward"])
    assert second.expires_at is not None


def test_policy_page_and_form(org, client):
    login(client, org.user("alpha.lead"))
    page = client.get("/governance/teams/alpha/policies/")
    assert page.status_code == 200
    assert "Dataset version" in page.content.decode() and "default" in page.content.decode()
    bad = client.post(
        "/governance/teams/alpha/policies/",
        {"kind": KIND, "approver_roles": ["lead"], "quorum": "0"},
    )
    assert bad.status_code == 400
    assert not ApprovalPolicy.objects.exists()
    ok = client.post(
        "/governance/teams/alpha/policies/",
        {"kind": KIND, "approver_roles": ["lead", "steward"], "quorum": "2"},
    )
    assert ok.status_code == 302
    assert ApprovalPolicy.objects.get().quorum == 2


@pytest.mark.parametrize(("actor", "status"), [("alpha.steward", 403), ("outsider", 404)])
def test_policy_form_refusals(org, client, actor, status):
    login(client, org.user(actor))
    response = client.post(
        "/governance/teams/alpha/policies/",
        {"kind": KIND, "approver_roles": ["lead"], "quorum": "1"},
    )
    assert response.status_code == status
    assert not ApprovalPolicy.objects.exists()


def test_policy_api(org):
    lead = api_as(org.user("alpha.lead"))
    body = {"team": "alpha", "kind": KIND, "approver_roles": ["steward"], "quorum": 2}
    created = lead.post("/api/v1/policies/", body, format="json")
    assert created.status_code == 200, created.json()
    assert created.json()["quorum"] == 2
    listed = api_as(org.user("beta.steward")).get("/api/v1/policies/", {"team": "alpha"})
    assert [p["team"] for p in listed.json()["results"]] == ["alpha"]
    assert api_as(org.user("outsider")).get("/api/v1/policies/").json()["results"] == []
    refused = api_as(org.user("alpha.steward")).post("/api/v1/policies/", body, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "PermissionDeniedError"
    assert api_as(None).get("/api/v1/policies/").status_code == 401
