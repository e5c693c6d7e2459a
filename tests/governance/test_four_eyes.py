"""Four eyes, for every kind of approval: whoever asked for or produced the subject never decides
on it, and is neither shown the request nor told about it; an eligible approver is.

For each kind (dataset version, pipeline run, index activation) a request is opened whose
excluded persons all hold an approver role of the team it needs, so only the four-eyes rule
keeps them out. Each of them is refused by the service, the API and the UI, finds no decide
button (inbox, version page) and no notification; an eligible approver finds all of them and
may decide. Last, the three forms of the rule (governance.deciders: the check, the inbox query
and the notified approvers) give the same answer for every user and request."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from core.errors import PermissionDeniedError
from governance import deciders, selectors
from governance import services as gov
from governance.choices import ApprovalKind
from governance.models import ApprovalRequest
from governance.services.approvals import handler_for
from recsys.models import ModelVersion
from teams.models import Notification
from tests.approval_setup import (
    activation_asked,
    draft,
    member,
    open_request,
    pipeline,
    run_of,
    snapshot,
)
from tests.conftest import api_as, login
from tests.factories import policy_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@dataclass
class Case:
    request: ApprovalRequest
    excluded: dict[str, str]  # username -> words of their refusal
    eligible: str  # a username who may decide
    page: str = ""  # the subject's page, where a decide form may appear


def version_case(org) -> Case:
    """alpha.steward uploads, alpha.lead submits: both are approvers of alpha's versions."""
    member(org, "second.steward", "steward")
    version = draft(org, "alpha.steward")
    gov.dataset_version_submit(actor=org.user("alpha.lead"), version=version)
    return Case(
        request=open_request(ApprovalKind.DATASET_VERSION, version),
        excluded={"alpha.steward": "you uploaded it", "alpha.lead": "your own request"},
        eligible="second.steward",
        page=f"/governance/versions/{version.pk}/",
    )


def run_case(org, line) -> Case:
    """alpha.lead requests a run: a lead approves runs of alpha's pipeline, but not this one."""
    run = run_of(org, line, "alpha.lead")
    return Case(
        request=open_request(ApprovalKind.PIPELINE_RUN, run),
        excluded={"alpha.lead": "your own request"},
        eligible="alpha.steward",
    )


def index_case(org, line) -> Case:
    """Under a policy where ops and leads approve activations: model.ops requested the run that
    trained the model, alpha.ops the run that built the index, alpha.lead asks to serve it."""
    policy_create(team=org.alpha, kind=ApprovalKind.INDEX_ACTIVATION, roles=["lead", "ops"])
    member(org, "model.ops", "ops")
    member(org, "second.lead", "lead")
    model = ModelVersion.objects.create(
        run=run_of(org, line, "model.ops"), base_model="tiny", path="/nowhere", checksum="0"
    )
    index = activation_asked(org, line, run=run_of(org, line, "alpha.ops"), model=model)
    return Case(
        request=open_request(ApprovalKind.INDEX_ACTIVATION, index),
        excluded={
            "alpha.lead": "your own request",
            "alpha.ops": "you requested the run that built it",
            "model.ops": "you requested the run that trained its model",
        },
        eligible="second.lead",
    )


@pytest.fixture
def cases(org):
    """`cases(*kinds)` builds the requests of those kinds: {kind: Case}."""

    def build(*kinds) -> dict[str, Case]:
        built = {}
        if ApprovalKind.DATASET_VERSION in kinds:
            built[ApprovalKind.DATASET_VERSION] = version_case(org)
        line = pipeline(org) if set(kinds) - {ApprovalKind.DATASET_VERSION} else None
        if ApprovalKind.PIPELINE_RUN in kinds:
            built[ApprovalKind.PIPELINE_RUN] = run_case(org, line)
        if ApprovalKind.INDEX_ACTIVATION in kinds:
            built[ApprovalKind.INDEX_ACTIVATION] = index_case(org, line)
        return built

    return build


EXCLUDED = [
    (ApprovalKind.DATASET_VERSION, "alpha.steward"),
    (ApprovalKind.DATASET_VERSION, "alpha.lead"),
    (ApprovalKind.PIPELINE_RUN, "alpha.lead"),
    (ApprovalKind.INDEX_ACTIVATION, "alpha.lead"),
    (ApprovalKind.INDEX_ACTIVATION, "alpha.ops"),
    (ApprovalKind.INDEX_ACTIVATION, "model.ops"),
]
KINDS = [ApprovalKind.DATASET_VERSION, ApprovalKind.PIPELINE_RUN, ApprovalKind.INDEX_ACTIVATION]


def notified(case: Case) -> set[str]:
    request = case.request
    link = handler_for(request.kind).link(request.subject)
    return set(
        Notification.objects.filter(subject__startswith="Approval needed", link=link).values_list(
            "recipient__username", flat=True
        )
    )


def ui(org, who: str) -> Client:
    return login(Client(), org.user(who))


def inbox_ids_api(org, who: str) -> set[int]:
    response = api_as(org.user(who)).get("/api/v1/approvals/inbox/")
    assert response.status_code == 200
    return {r["id"] for r in response.json()["results"]}


def can_decide_api(org, who: str, request: ApprovalRequest):
    response = api_as(org.user(who)).get(f"/api/v1/approvals/{request.pk}/")
    assert response.status_code == 200
    return response.json()["can_decide"]


def decide_form(request: ApprovalRequest) -> str:
    return f'action="/governance/approvals/{request.pk}/decide/"'


@pytest.mark.parametrize(("kind", "who"), EXCLUDED)
def test_an_excluded_person_is_refused_shown_nothing_and_not_told(org, cases, kind, who):
    case = cases(kind)[kind]
    request, words = case.request, case.excluded[who]
    user = org.user(who)
    before = snapshot(request)

    check = deciders.decide_check(user, request)
    assert not check and check.excluded and words in check.reason, check.reason
    with pytest.raises(PermissionDeniedError) as info:
        gov.approval_decide(actor=user, request=request, verdict="approve")
    assert info.value.message == check.reason

    api = api_as(user).post(
        f"/api/v1/approvals/{request.pk}/decide/", {"verdict": "approve"}, format="json"
    )
    assert api.status_code == 403 and api.json()["detail"] == check.reason

    client = ui(org, who)
    response = client.post(
        f"/governance/approvals/{request.pk}/decide/",
        {"verdict": "approve", "comment": "", "next": "/governance/approvals/"},
    )
    assert response.status_code == 302
    messages = [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
    assert messages == [("error", check.reason)]
    assert snapshot(request) == before

    inbox = client.get("/governance/approvals/").content.decode()
    assert f'id="request-{request.pk}"' not in inbox and decide_form(request) not in inbox
    assert request.pk not in inbox_ids_api(org, who)
    assert can_decide_api(org, who, request) is False
    assert request.pk not in selectors.approvals_for_inbox(user=user).values_list("pk", flat=True)
    if case.page:
        page = client.get(case.page).content.decode()
        assert decide_form(request) not in page
        assert check.reason in page.replace("&#x27;", "'")
    assert who not in notified(case)
    assert user not in deciders.eligible_approvers(request)


@pytest.mark.parametrize("kind", KINDS)
def test_an_eligible_approver_is_told_shown_the_button_and_may_decide(org, cases, kind):
    case = cases(kind)[kind]
    request, who = case.request, case.eligible
    assert who in notified(case)
    assert who in {u.username for u in deciders.eligible_approvers(request)}
    assert deciders.decide_check(org.user(who), request)

    client = ui(org, who)
    inbox = client.get("/governance/approvals/").content.decode()
    assert f'id="request-{request.pk}"' in inbox and decide_form(request) in inbox
    assert request.pk in inbox_ids_api(org, who)
    assert can_decide_api(org, who, request) is True
    if case.page:
        assert decide_form(request) in client.get(case.page).content.decode()

    response = api_as(org.user(who)).post(
        f"/api/v1/approvals/{request.pk}/decide/", {"verdict": "approve"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved" and response.json()["can_decide"] is False
    assert request.pk not in inbox_ids_api(org, who)


def test_the_check_the_inbox_and_the_notified_approvers_agree(org, cases):
    """Every user x every request: the inbox and the API's `can_decide` hold exactly the
    requests decide_check allows, and eligible_approvers lists exactly the users it allows."""
    cases(*KINDS)
    requests = list(ApprovalRequest.objects.all())
    assert {r.kind for r in requests if r.state == "pending"} == set(KINDS)
    for user in org.users.values():
        inbox = set(selectors.approvals_for_inbox(user=user).values_list("pk", flat=True))
        allowed = {r.pk for r in requests if deciders.decide_check(user, r)}
        assert inbox == allowed, user.username
        visible = selectors.approvals_visible_to(user=user)
        assert {r.pk for r in visible if r.can_decide} == allowed, user.username
    for request in requests:
        allowed = {u.pk for u in org.users.values() if deciders.decide_check(u, request)}
        assert {u.pk for u in deciders.eligible_approvers(request)} == allowed, request
