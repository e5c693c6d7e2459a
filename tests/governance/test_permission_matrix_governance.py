"""Permission matrix of governance (assets, versions, approvals, incidents, audit trail).

Every actor x target x action gets the exact status code from the explicit EXPECT table below.
Targets: own = the asset of alpha ("catalog"), sub = an asset of alpha-sub ("sub-catalog"),
other = an asset of beta ("beta-catalog"). Each target has a profiled version awaiting approval
(requested by an engineer of the owning team, who is no approver) and an open freshness incident.

A refusal answers 403 with the reason (401/302 for anonymous, 404 when the object is not visible)
and changes nothing: no version, decision or audit row, the request and the incident keep their
state. A success has its effect and writes exactly the expected audit events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from rest_framework.test import APIClient

from core.models import AuditEvent
from governance import services
from governance.models import (
    ApprovalRequest,
    ApprovalRequirement,
    AssetSLA,
    DataAsset,
    DatasetVersion,
    Decision,
    Incident,
    IncidentEvent,
)
from teams.models import Notification
from tests import helpers
from tests import permission_matrix as matrix
from tests.factories import UserFactory
from tests.helpers import audit_since, count_changes
from tests.permission_matrix import MatrixOrg, flashes, shared_org

CSV = b"id,name,price\n1,alpha,1.5\n2,beta,2.5\n3,gamma,3.5\n"
NEW_DESCRIPTION = "Edited by the governance permission matrix."
NEW_MIN_ROWS = 7

ANONYMOUS = "anonymous"
ACTORS = [
    ANONYMOUS,
    "admin",
    "alpha.lead",
    "alpha.steward",
    "alpha.engineer",
    "alpha.ops",
    "alpha.viewer",
    "acme.lead",
    "beta.lead",
    "beta.steward",
    "outsider",
]
OWN, SUB, OTHER = "own", "sub", "other"
TARGETS = [OWN, SUB, OTHER]
# Who is accountable (RACI "A") for each target asset, so its incident is assigned to them.
ACCOUNTABLE = {OWN: "alpha.ops", SUB: "sub.viewer", OTHER: None}

# --- the expectation table ----------------------------------------------------------------------
# Y = allowed, R = refused (visible but not allowed: 403 with the reason, or a flash message),
# N = not visible (404), L = not logged in (UI: redirect to the login page, API: 401).
#
# view:   asset page (UI + API), its version, approval request and incident (API)
# upload: upload a version (UI + API)
# edit:   edit the asset (UI form, API PATCH)   sla: set the SLA (UI form, API PUT)
# decide: approve the pending request (API + UI); also: the request is in the actor's inbox
# ack:    acknowledge the open incident (API)
#
# Notes: leads of ancestor teams (alpha.lead on sub, acme.lead everywhere) hold the lead's
# permissions but are no approvers unless members of the owning team; admin may do everything
# but decide; alpha.ops is the accountable person of catalog, so may acknowledge its incident.
EXPECT_TABLE = """
actor           target  view upload edit sla decide ack
anonymous       own     L    L      L    L   L      L
anonymous       sub     L    L      L    L   L      L
anonymous       other   L    L      L    L   L      L
admin           own     Y    Y      Y    Y   R      Y
admin           sub     Y    Y      Y    Y   R      Y
admin           other   Y    Y      Y    Y   R      Y
alpha.lead      own     Y    Y      Y    Y   Y      Y
alpha.lead      sub     Y    Y      Y    Y   R      Y
alpha.lead      other   Y    R      R    R   R      R
alpha.steward   own     Y    Y      Y    Y   Y      Y
alpha.steward   sub     Y    R      R    R   R      R
alpha.steward   other   Y    R      R    R   R      R
alpha.engineer  own     Y    Y      R    R   R      R
alpha.engineer  sub     Y    R      R    R   R      R
alpha.engineer  other   Y    R      R    R   R      R
alpha.ops       own     Y    R      R    R   R      Y
alpha.ops       sub     Y    R      R    R   R      R
alpha.ops       other   Y    R      R    R   R      R
alpha.viewer    own     Y    R      R    R   R      R
alpha.viewer    sub     Y    R      R    R   R      R
alpha.viewer    other   Y    R      R    R   R      R
acme.lead       own     Y    Y      Y    Y   R      Y
acme.lead       sub     Y    Y      Y    Y   R      Y
acme.lead       other   Y    Y      Y    Y   R      Y
beta.lead       own     Y    R      R    R   R      R
beta.lead       sub     Y    R      R    R   R      R
beta.lead       other   Y    Y      Y    Y   Y      Y
beta.steward    own     Y    R      R    R   R      R
beta.steward    sub     Y    R      R    R   R      R
beta.steward    other   Y    Y      Y    Y   Y      Y
outsider        own     N    N      N    N   N      N
outsider        sub     N    N      N    N   N      N
outsider        other   N    N      N    N   N      N
"""

# Pages that belong to no target: the approvals inbox (UI + API) and the audit trail (UI + API).
#                     inbox  audit
ACTOR_PAGES = {
    ANONYMOUS: ("L", "L"),
    "admin": ("Y", "Y"),
    "alpha.lead": ("Y", "R"),
    "alpha.steward": ("Y", "R"),
    "alpha.engineer": ("Y", "R"),
    "alpha.ops": ("Y", "R"),
    "alpha.viewer": ("Y", "R"),
    "acme.lead": ("Y", "R"),
    "beta.lead": ("Y", "R"),
    "beta.steward": ("Y", "R"),
    "outsider": ("Y", "R"),
}


EXPECT = matrix.parse_table(EXPECT_TABLE)

# Reads of a target (all in the "view" column): UI asset page, then the API.
VIEW_CODES = {"Y": (200, 200, 200, 200, 200), "N": (404,) * 5, "L": (302, 401, 401, 401, 401)}

# write action -> (column of EXPECT, status code per outcome)
ACTIONS = {
    "upload_ui": ("upload", {"Y": 302, "R": 403, "N": 404, "L": 302}),
    "upload_api": ("upload", {"Y": 201, "R": 403, "N": 404, "L": 401}),
    "edit_ui": ("edit", {"Y": 302, "R": 403, "N": 404, "L": 302}),
    "edit_api": ("edit", {"Y": 200, "R": 403, "N": 404, "L": 401}),
    "sla_ui": ("sla", {"Y": 302, "R": 403, "N": 404, "L": 302}),
    "sla_api": ("sla", {"Y": 200, "R": 403, "N": 404, "L": 401}),
    "decide_api": ("decide", {"Y": 200, "R": 403, "N": 404, "L": 401}),
    # The UI decides inside a POST handler: a refusal is a flash message and a redirect back.
    "decide_ui": ("decide", {"Y": 302, "R": 302, "N": 404, "L": 302}),
    "ack_api": ("ack", {"Y": 200, "R": 403, "N": 404, "L": 401}),
}


def test_the_table_is_complete():
    assert set(EXPECT) == {(a, t) for a in ACTORS for t in TARGETS}
    assert set(ACTOR_PAGES) == set(ACTORS)
    for (actor, _target), row in EXPECT.items():
        assert set(row.values()) <= {"Y", "R", "N", "L"}
        assert (actor == ANONYMOUS) == (set(row.values()) == {"L"})
        assert (actor == "outsider") == (set(row.values()) == {"N"})


# --- the organization ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GovTarget:
    key: str
    slug: str
    asset_id: int
    asset_name: str
    team_name: str
    version_id: int
    request_id: int
    incident_id: int


@dataclass
class GovOrg:
    m: MatrixOrg
    targets: dict[str, GovTarget]

    def user(self, name: str):
        return self.m.user(name)


def _upload(actor, asset, name: str = "data.csv", submit: bool = True) -> DatasetVersion:
    return services.dataset_version_upload(
        actor=actor,
        asset=asset,
        file=SimpleUploadedFile(name, CSV, content_type="text/csv"),
        name=name,
        submit=submit,
    )


def build_governance(m: MatrixOrg) -> GovOrg:
    from teams.services import membership_grant, responsibility_assign

    org, admin = m.org, m.org.admin
    targets = {}
    for key, t in m.targets.items():
        asset = DataAsset.objects.select_related("owning_team").get(pk=t.asset_id)
        if ACCOUNTABLE[key]:
            accountable = org.user(ACCOUNTABLE[key])
            responsibility_assign(actor=admin, user=accountable, kind="A", subject=asset)
        # The requester: an engineer of the owning team (no approver, not an actor of the matrix).
        uploader = UserFactory(username=f"{t.slug}.uploader", password="!")
        membership_grant(actor=admin, team=asset.owning_team, user=uploader, role="engineer")
        version = _upload(uploader, asset, name=f"{asset.slug}.csv")
        version = services.dataset_version_profile(version_id=version.pk)
        assert version.profile_status == "succeeded", version.profile_error
        request = ApprovalRequest.objects.get(subject_id=version.pk, state="pending")
        assert request.requester_id == uploader.pk
        # No approved version yet: a freshness SLA opens an incident, assigned to the A.
        services.assetsla_update(actor=admin, asset=asset, freshness_hours=1)
        incident = Incident.objects.get(asset=asset, status="open")
        assert incident.assigned_to_id == (
            org.user(ACCOUNTABLE[key]).pk if ACCOUNTABLE[key] else None
        )
        targets[key] = GovTarget(
            key=key,
            slug=asset.slug,
            asset_id=asset.pk,
            asset_name=asset.name,
            team_name=asset.owning_team.name,
            version_id=version.pk,
            request_id=request.pk,
            incident_id=incident.pk,
        )
    assert {t.slug for t in targets.values()} == {"catalog", "sub-catalog", "beta-catalog"}
    return GovOrg(m=m, targets=targets)


@pytest.fixture(scope="module")
def gov_org(django_db_setup, django_db_blocker, tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    with override_settings(MEDIA_ROOT=str(media)), shared_org(django_db_blocker) as m:
        yield build_governance(m)


@pytest.fixture
def g(gov_org, db) -> GovOrg:
    return gov_org


# --- state -------------------------------------------------------------------------------------


def snapshot() -> dict:
    """What a refused request must leave alone (and the audit trail, tests/helpers.py)."""
    state = helpers.snapshot(
        {
            "versions": DatasetVersion.objects.values_list("id", "status"),
            "decisions": Decision.objects.values_list("id", "approver_id"),
            "incident_events": IncidentEvent.objects.values_list("id", "kind"),
            "notifications": Notification.objects.values_list("id", "recipient_id"),
            "requests": ApprovalRequest.objects.values_list("id", "state"),
            "requirements": ApprovalRequirement.objects.values_list("id", "approvals"),
            "incidents": Incident.objects.values_list("id", "status", "acknowledged_by_id"),
            "assets": DataAsset.objects.values_list(
                "id", "name", "description", "classification", "retention_days"
            ),
            "slas": AssetSLA.objects.values_list("id", "freshness_hours", "min_rows"),
        },
        counted=("versions", "decisions", "incident_events", "notifications"),
    )
    state["stored_files"] = sorted(str(p) for p in Path(settings.MEDIA_ROOT).rglob("*"))
    return state


# --- requests ------------------------------------------------------------------------------------


def api_client(g: GovOrg, actor: str) -> APIClient:
    if actor == ANONYMOUS:
        return matrix.api_client(None)
    return matrix.api_client(g.user(actor), token=g.m.tokens[actor])


def ui_client(g: GovOrg, actor: str) -> Client:
    return matrix.ui_client(None if actor == ANONYMOUS else g.user(actor))


def view_all(g: GovOrg, actor: str, t: GovTarget) -> list:
    """The asset page, then the asset, its version, approval request and incident (API)."""
    api = api_client(g, actor)
    return [
        ui_client(g, actor).get(f"/governance/assets/{t.slug}/"),
        api.get(f"/api/v1/assets/{t.slug}/"),
        api.get(f"/api/v1/versions/{t.version_id}/"),
        api.get(f"/api/v1/approvals/{t.request_id}/"),
        api.get(f"/api/v1/incidents/{t.incident_id}/"),
    ]


def perform(g: GovOrg, actor: str, t: GovTarget, action: str):
    api, asset = api_client(g, actor), f"/api/v1/assets/{t.slug}/"
    if action == "upload_ui":
        upload = SimpleUploadedFile("matrix.csv", CSV, content_type="text/csv")
        return ui_client(g, actor).post(
            f"/governance/assets/{t.slug}/upload/", {"file": upload, "format": "", "note": ""}
        )
    if action == "upload_api":
        upload = SimpleUploadedFile("matrix.csv", CSV, content_type="text/csv")
        return api.post(
            f"{asset}versions/", {"file": upload, "submit": "false"}, format="multipart"
        )
    if action == "edit_ui":
        return ui_client(g, actor).post(
            f"/governance/assets/{t.slug}/edit/",
            {"description": NEW_DESCRIPTION, "classification": "internal"},
        )
    if action == "sla_ui":
        return ui_client(g, actor).post(
            f"/governance/assets/{t.slug}/sla/",
            {"freshness_hours": 1, "min_rows": NEW_MIN_ROWS, "enforce_schema": "on"},
        )
    if action == "edit_api":
        return api.patch(asset, {"description": NEW_DESCRIPTION}, format="json")
    if action == "sla_api":
        return api.put(f"{asset}sla/", {"min_rows": NEW_MIN_ROWS}, format="json")
    if action == "decide_api":
        return api.post(
            f"/api/v1/approvals/{t.request_id}/decide/", {"verdict": "approve"}, format="json"
        )
    if action == "decide_ui":
        return ui_client(g, actor).post(
            f"/governance/approvals/{t.request_id}/decide/",
            {"verdict": "approve", "comment": "", "next": "/governance/approvals/"},
        )
    if action == "ack_api":
        return api.post(
            f"/api/v1/incidents/{t.incident_id}/acknowledge/", {"note": "on it"}, format="json"
        )
    raise AssertionError(action)


def refusal_message(action: str, t: GovTarget) -> str:
    team = t.team_name
    return {
        "upload_ui": f"You cannot upload versions of {t.asset_name}: only engineers, stewards "
        f"and leads of {team} can.",
        "upload_api": f"You cannot upload versions of {t.asset_name}: only engineers, stewards "
        f"and leads of {team} can.",
        "edit_ui": f"You cannot edit this asset: only stewards and leads of {team} can.",
        "edit_api": f"You cannot edit this asset: only stewards and leads of {team} can.",
        "sla_ui": "You cannot change the SLA of this asset: only stewards and leads of "
        f"{team} can.",
        "sla_api": "You cannot change the SLA of this asset: only stewards and leads of "
        f"{team} can.",
        "decide_api": f"You cannot decide on this request: it needs approvers of {team}.",
        "decide_ui": f"You cannot decide on this request: it needs approvers of {team}.",
        "ack_api": f"Only the accountable person, stewards and leads of {team} can acknowledge "
        "this incident.",
    }[action]


# --- what a success must leave behind ------------------------------------------------------------


def check_success(g: GovOrg, actor: str, t: GovTarget, action: str, response, before: dict):
    after = snapshot()
    user = g.user(actor)
    changes, verbs = count_changes(before, after), audit_since(before)
    new_files = set(after["stored_files"]) - set(before["stored_files"])
    assert bool(new_files) == action.startswith("upload_")
    if action in ("upload_ui", "upload_api"):
        assert [Path(f).name for f in new_files if Path(f).is_file()] == ["matrix.csv"]
        version = DatasetVersion.objects.filter(asset_id=t.asset_id).order_by("-number").first()
        assert version.pk not in dict(before["versions"])
        assert (version.number, version.uploaded_by_id, version.status) == (2, user.pk, "draft")
        assert version.original_name == "matrix.csv" and version.sha256
        if action == "upload_ui":
            assert response["Location"] == f"/governance/versions/{version.pk}/"
        else:
            assert response.json()["id"] == version.pk
            assert response.json()["uploaded_by"] == actor
        assert verbs == [("datasetversion.uploaded", actor)]
        assert changes == {"versions": 1, "audit_events": 1}
    elif action in ("edit_ui", "edit_api"):
        assert DataAsset.objects.get(pk=t.asset_id).description == NEW_DESCRIPTION
        if action == "edit_ui":
            assert response["Location"] == f"/governance/assets/{t.slug}/"
            assert flashes(response) == [("success", f"Saved {t.asset_name}.")]
        else:
            assert response.json()["description"] == NEW_DESCRIPTION
        assert verbs == [("dataasset.updated", actor)]
        assert changes == {"audit_events": 1}
    elif action in ("sla_ui", "sla_api"):
        sla = AssetSLA.objects.get(asset_id=t.asset_id)
        assert (sla.min_rows, sla.freshness_hours) == (NEW_MIN_ROWS, 1)
        if action == "sla_ui":
            assert response["Location"] == f"/governance/assets/{t.slug}/"
        else:
            assert response.json()["min_rows"] == NEW_MIN_ROWS
        assert verbs == [("assetsla.updated", actor)]
        assert changes == {"audit_events": 1}
    elif action in ("decide_api", "decide_ui"):
        request = ApprovalRequest.objects.get(pk=t.request_id)
        assert request.state == "approved"
        decision = Decision.objects.get(request=request)
        assert (decision.approver_id, decision.verdict) == (user.pk, "approve")
        assert DatasetVersion.objects.get(pk=t.version_id).status == "approved"
        # The approved version clears the freshness breach: its incident resolves itself.
        assert Incident.objects.get(pk=t.incident_id).status == "resolved"
        assert verbs == [
            ("approval.approved", actor),
            ("datasetversion.approved", actor),
            ("incident.resolved", "system"),
        ]
        assert changes["decisions"] == 1 and changes["audit_events"] == 3
        if action == "decide_ui":
            assert response["Location"] == "/governance/approvals/"
            assert flashes(response) == [
                ("success", f"Approved request #{t.request_id}; it is now approved.")
            ]
        else:
            assert response.json()["state"] == "approved"
    elif action == "ack_api":
        incident = Incident.objects.get(pk=t.incident_id)
        assert (incident.status, incident.acknowledged_by_id) == ("acknowledged", user.pk)
        assert response.json()["status"] == "acknowledged"
        assert verbs == [("incident.acknowledged", actor)]
        assert changes == {"audit_events": 1, "incident_events": 1}
    else:
        raise AssertionError(action)


def check_refusal(g: GovOrg, actor: str, t: GovTarget, action: str, outcome: str, response):
    message = refusal_message(action, t) if outcome == "R" else ""
    if outcome == "R" and action == "decide_ui":
        assert response["Location"] == "/governance/approvals/"
        assert flashes(response) == [("error", message)]
    else:
        matrix.assert_refused(response, outcome, api="_api" in action, message=message)


# --- the matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_view_target(g, actor, target):
    outcome = EXPECT[(actor, target)]["view"]
    t = g.targets[target]
    before = snapshot()
    page, asset, version, request, incident = responses = view_all(g, actor, t)
    assert tuple(r.status_code for r in responses) == VIEW_CODES[outcome], (
        f"{actor} viewing {target}: {[r.status_code for r in responses]}"
    )
    if outcome == "Y":
        assert f"<h1>{t.asset_name}" in page.content.decode()
        assert asset.json()["slug"] == t.slug
        assert (version.json()["id"], version.json()["asset"]) == (t.version_id, t.slug)
        assert (request.json()["id"], request.json()["state"]) == (t.request_id, "pending")
        assert (incident.json()["id"], incident.json()["asset"]) == (t.incident_id, t.slug)
    elif outcome == "L":
        assert page["Location"].startswith("/accounts/login/?next=")
        assert all(r["WWW-Authenticate"].startswith("Token") for r in responses[1:])
    assert snapshot() == before, "a read changed something"


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_action_on_target(g, actor, target, action):
    column, codes = ACTIONS[action]
    outcome = EXPECT[(actor, target)][column]
    t = g.targets[target]
    before = snapshot()
    response = perform(g, actor, t, action)
    assert response.status_code == codes[outcome], (
        f"{actor} {action} on {target}: expected {outcome} ({codes[outcome]}), got "
        f"{response.status_code}: {response.content[:400]!r}"
    )
    if outcome == "Y":
        check_success(g, actor, t, action, response, before)
    else:
        check_refusal(g, actor, t, action, outcome, response)
        after = snapshot()
        assert audit_since(before) == [], "a refused request wrote audit events"
        assert after == before, "a refused request changed something"


@pytest.mark.parametrize("actor", ACTORS)
def test_inbox_holds_exactly_the_requests_the_actor_may_decide(g, actor):
    outcome = ACTOR_PAGES[actor][0]
    decidable = {g.targets[t].request_id for t in TARGETS if EXPECT[(actor, t)]["decide"] == "Y"}
    ui = ui_client(g, actor).get("/governance/approvals/")
    api = api_client(g, actor).get("/api/v1/approvals/inbox/")
    if outcome == "L":
        assert ui.status_code == 302 and ui["Location"].startswith("/accounts/login/")
        assert api.status_code == 401
        return
    assert (ui.status_code, api.status_code) == (200, 200)
    body = ui.content.decode()
    shown = {t.request_id for t in g.targets.values() if f'id="request-{t.request_id}"' in body}
    assert shown == decidable
    assert {r["id"] for r in api.json()["results"]} == decidable
    assert api.json()["count"] == len(decidable)


@pytest.mark.parametrize("actor", ACTORS)
def test_audit_trail_is_for_site_admins(g, actor):
    outcome = ACTOR_PAGES[actor][1]
    ui = ui_client(g, actor).get("/governance/audit/")
    api = api_client(g, actor).get("/api/v1/audit-events/")
    expected = {"Y": (200, 200), "R": (403, 403), "L": (302, 401)}[outcome]
    assert (ui.status_code, api.status_code) == expected
    if outcome == "Y":
        assert api.json()["count"] == AuditEvent.objects.count()
        assert "Audit trail" in ui.content.decode()
    elif outcome == "R":
        assert "The audit trail is for site admins." in ui.content.decode()
        assert "results" not in api.json()
    else:
        assert ui["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("actor", ACTORS)
def test_asset_lists_show_the_assets_of_visible_teams(g, actor):
    ui = ui_client(g, actor).get("/governance/assets/")
    api = api_client(g, actor).get("/api/v1/assets/")
    if actor == ANONYMOUS:
        assert (ui.status_code, api.status_code) == (302, 401)
        return
    assert (ui.status_code, api.status_code) == (200, 200)
    visible = {t.slug for key, t in g.targets.items() if EXPECT[(actor, key)]["view"] == "Y"}
    assert {a["slug"] for a in api.json()["results"]} == visible
    body = ui.content.decode()
    listed = {t.slug for t in g.targets.values() if f"/governance/assets/{t.slug}/" in body}
    assert listed == visible


# --- separation of duties ------------------------------------------------------------------------


def test_the_requester_cannot_decide_their_own_request(g):
    """alpha.steward may approve alpha's versions, but not the one they asked for."""
    asset = DataAsset.objects.get(slug="catalog")
    steward = g.user("alpha.steward")
    version = _upload(steward, asset, name="own.csv")
    services.dataset_version_profile(version_id=version.pk)
    request = ApprovalRequest.objects.get(subject_id=version.pk, state="pending")
    assert request.requester_id == steward.pk
    inbox = api_client(g, "alpha.steward").get("/api/v1/approvals/inbox/").json()
    assert request.pk not in {r["id"] for r in inbox["results"]}

    before = snapshot()
    url = f"/api/v1/approvals/{request.pk}/decide/"
    refused = api_client(g, "alpha.steward").post(url, {"verdict": "approve"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "You cannot decide on your own request."
    assert snapshot() == before

    ui = ui_client(g, "alpha.steward").post(
        f"/governance/approvals/{request.pk}/decide/", {"verdict": "approve"}
    )
    assert ui.status_code == 302
    assert flashes(ui) == [("error", "You cannot decide on your own request.")]
    assert snapshot() == before

    approved = api_client(g, "alpha.lead").post(url, {"verdict": "approve"}, format="json")
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
