"""Permission matrix of the organization UI (/teams/...).

Every actor x action x target (own team = alpha, sub-team = alpha-sub, other team = beta) gets
the exact status code from the explicit ACCESS table (tests/permission_matrix.py). A refusal
renders the right page and changes nothing; a success has its effect and writes exactly the
expected audit events.
"""

import re

import pytest
from django.test import Client

from tests import permission_matrix as matrix
from tests.helpers import audit_since, count_changes
from tests.permission_matrix import (
    ACCESS,
    ACTIONS,
    ACTORS,
    ANONYMOUS,
    NEW_AREA,
    NEW_DESCRIPTION,
    NEW_MEMBER,
    NEW_ROLE,
    TARGET_KEYS,
    assert_unchanged,
    shared_org,
    snapshot,
)

# access (see ACCESS) -> status code of the team page
READ_STATUS = {"login": 302, "none": 404, "view": 200, "manage": 200}
# access -> (GET the form or confirmation page, POST it)
WRITE_STATUS = {"login": (302, 302), "none": (404, 404), "view": (403, 403), "manage": (200, 302)}

# access -> outcome of the matrix every app shares (tests/permission_matrix.py)
OUTCOME = {"login": "L", "none": "N", "view": "R"}

TARGET_IDS = {"own": "own=alpha", "sub": "sub=alpha-sub", "other": "other=beta"}


@pytest.fixture(scope="module")
def matrix_org(django_db_setup, django_db_blocker):
    with shared_org(django_db_blocker) as built:
        yield built


@pytest.fixture
def m(matrix_org, db):
    return matrix_org


def client_for(m, actor: str) -> Client:
    client = Client()
    if actor != ANONYMOUS:
        client.force_login(m.user(actor))
    return client


def ui_request(m, t, action: str) -> tuple[str, dict]:
    """URL and POST data of a write action on target `t`."""
    base = f"/teams/{t.slug}"
    requests = {
        "add_member": (f"{base}/members/add/", {"username": NEW_MEMBER, "role": "viewer"}),
        "change_role": (f"{base}/members/{t.membership_id}/role/", {"role": NEW_ROLE}),
        "remove_member": (f"{base}/members/{t.membership_id}/remove/", {}),
        "assign_area": (
            f"{base}/responsibilities/assign/",
            {"user": t.member_user_id, "kind": "R", "area": NEW_AREA, "subject": ""},
        ),
        "assign_asset": (
            f"{base}/responsibilities/assign/",
            {"user": t.member_user_id, "kind": "R", "subject": f"{m.asset_type_id}:{t.asset_id}"},
        ),
        "remove_responsibility": (f"{base}/responsibilities/{t.responsibility_id}/remove/", {}),
        "create_subteam": (f"{base}/sub-teams/new/", {"name": "Matrix Team", "slug": t.new_slug}),
        "edit_team": (
            f"{base}/edit/",
            {"name": t.name, "description": NEW_DESCRIPTION, "parent": t.parent_id},
        ),
    }
    return requests[action]


def page_errors(response) -> list[str]:
    """The error messages a form page shows (for failure output and 400 checks)."""
    return re.findall(r'role="alert">(.*?)</div>', response.content.decode(), re.S)


def assert_refused(response, access: str, url: str, message: str) -> None:
    matrix.assert_refused(response, OUTCOME[access], api=False, message=message, url=url)


# --- view the team page -------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGET_KEYS, ids=TARGET_IDS.get)
@pytest.mark.parametrize("actor", ACTORS)
def test_view_team_page(m, actor, target):
    t = m.targets[target]
    access = ACCESS[actor][target]
    client = client_for(m, actor)
    url = f"/teams/{t.slug}/"
    before = snapshot()

    response = client.get(url)

    assert response.status_code == READ_STATUS[access]
    if access in ("view", "manage"):
        content = response.content.decode()
        assert f"<h1>{t.name}" in content
        # the page offers the management links exactly to those who may manage
        assert (f'href="/teams/{t.slug}/edit/"' in content) is (access == "manage")
    else:
        assert_refused(response, access, url, "")
    assert_unchanged(before)


# --- every write action -------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGET_KEYS, ids=TARGET_IDS.get)
@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("actor", ACTORS)
def test_write_action(m, actor, action, target):
    t = m.targets[target]
    spec = ACTIONS[action]
    access = ACCESS[actor][target]
    get_status, post_status = WRITE_STATUS[access]
    url, data = ui_request(m, t, action)
    client = client_for(m, actor)
    before = snapshot()

    page = client.get(url)
    assert page.status_code == get_status
    if access != "manage":
        assert_refused(page, access, url, spec.refusal(t))

    response = client.post(url, data)

    assert response.status_code == post_status, page_errors(response)
    if access == "manage":
        landing = t.new_slug if action == "create_subteam" else t.slug
        assert response["Location"] == f"/teams/{landing}/"
        assert spec.effect(m, t)
        assert audit_since(before) == [(verb, actor) for verb in spec.verbs]
        assert count_changes(before, snapshot()) == spec.counts
    else:
        assert_refused(response, access, url, spec.refusal(t))
        assert_unchanged(before)


# --- an object of another team, through the URL of a team the actor manages: 404 ---------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        pytest.param("members/{membership}/role/", {"role": NEW_ROLE}, id="change-role"),
        pytest.param("members/{membership}/remove/", {}, id="remove-member"),
        pytest.param("responsibilities/{responsibility}/remove/", {}, id="remove-responsibility"),
    ],
)
@pytest.mark.parametrize("actor", ["alpha.lead", "acme.lead"])
def test_object_of_another_team_is_404_under_a_managed_team(m, actor, path, data):
    beta = m.targets["other"]
    url = "/teams/alpha/" + path.format(
        membership=beta.membership_id, responsibility=beta.responsibility_id
    )
    client = client_for(m, actor)
    before = snapshot()

    page = client.get(url)
    response = client.post(url, data)

    assert (page.status_code, response.status_code) == (404, 404)
    assert_unchanged(before)


# --- invalid submissions by someone allowed: 400 with the error on the page ---------------------


INVALID = [
    pytest.param(
        "alpha",
        "members/add/",
        {"username": "nobody", "role": "viewer"},
        "No active user with the username",
        id="add-unknown-user",
    ),
    pytest.param(
        "alpha",
        "members/add/",
        {"username": "alpha.viewer", "role": "ops"},
        "alpha.viewer is already a member of Alpha",
        id="add-existing-member",
    ),
    pytest.param(
        "alpha",
        "members/add/",
        {"username": NEW_MEMBER, "role": "owner"},
        "Select a valid choice",
        id="add-unknown-role",
    ),
    pytest.param(
        "alpha",
        "members/{alpha.viewer}/role/",
        {"role": "viewer"},
        "already has the role",
        id="role-unchanged",
    ),
    pytest.param(
        "alpha",
        "members/{alpha.lead}/role/",
        {"role": "viewer"},
        "alpha.lead is the last lead of Alpha",
        id="role-demotes-last-lead",
    ),
    pytest.param(
        "alpha",
        "members/{alpha.lead}/remove/",
        {},
        "alpha.lead is the last lead of Alpha",
        id="remove-last-lead",
    ),
    pytest.param(
        "alpha",
        "sub-teams/new/",
        {"name": "Another Beta", "slug": "beta"},
        "is taken by another team",
        id="subteam-slug-taken",
    ),
    pytest.param(
        "alpha",
        "responsibilities/assign/",
        {"user": "{alpha.viewer:user}", "kind": "R", "area": "", "subject": ""},
        "Choose either a governed subject or a named area (exactly one).",
        id="assign-neither-subject-nor-area",
    ),
    pytest.param(
        "alpha",
        "responsibilities/assign/",
        {"user": "{outsider:user}", "kind": "R", "area": NEW_AREA},
        "Select a valid choice",
        id="assign-to-non-member",
    ),
    pytest.param(
        "alpha-sub",
        "edit/",
        {"name": "", "description": "", "parent": "{alpha:team}"},
        "This field is required.",
        id="edit-empty-name",
    ),
]


def _fill(m, value):
    """Resolve "{username}" (membership id in that user's team), "{username:user}" (user id)
    and "{slug:team}" (team id) placeholders."""
    from teams.models import Membership, Team

    if not (isinstance(value, str) and value.startswith("{")):
        return value
    name, _, kind = value.strip("{}").partition(":")
    if kind == "user":
        return m.user(name).id
    if kind == "team":
        return Team.objects.get(slug=name).id
    return Membership.objects.get(user=m.user(name)).id


@pytest.mark.parametrize(("slug", "path", "data", "error"), INVALID)
def test_invalid_submission_is_400_with_the_error(m, slug, path, data, error):
    path = re.sub(r"\{[^}]+\}", lambda match: str(_fill(m, match.group(0))), path)
    data = {key: _fill(m, value) for key, value in data.items()}
    client = client_for(m, "alpha.lead")
    before = snapshot()

    response = client.post(f"/teams/{slug}/{path}", data)

    assert response.status_code == 400
    assert any(error in message for message in page_errors(response)), page_errors(response)
    assert_unchanged(before)


# --- the org chart lists only visible teams -----------------------------------------------------

ACME = {"acme", "alpha", "alpha-sub", "beta"}
CHART = {
    "admin": ACME | {"globex"},
    "alpha.lead": ACME,
    "alpha.viewer": ACME,
    "acme.lead": ACME,
    "outsider": set(),
    "globex.lead": {"globex"},
}


@pytest.mark.parametrize("actor", list(CHART))
def test_org_chart_shows_only_visible_teams(m, actor):
    response = client_for(m, actor).get("/teams/")

    assert response.status_code == 200
    assert set(re.findall(r'href="/teams/([\w-]+)/"', response.content.decode())) == CHART[actor]


def test_org_chart_needs_login(m):
    response = Client().get("/teams/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/teams/"
