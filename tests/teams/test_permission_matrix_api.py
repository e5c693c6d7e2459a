"""Permission matrix of the organization API (/api/v1/...).

Every actor x action x target (own team = alpha, sub-team = alpha-sub, other team = beta) gets
the exact status code from the explicit ACCESS table (tests/permission_matrix.py), with token
authentication. A refusal has the documented JSON body and changes nothing; a success has its
effect and writes exactly the expected audit events. Lists are filtered per object, and session
authentication works like token authentication.
"""

import pytest
from rest_framework.test import APIClient

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

# access (see ACCESS) -> status of a read (GET) and of a refused or allowed write
READ_STATUS = {"login": 401, "none": 404, "view": 200, "manage": 200}
WRITE_STATUS = {"login": 401, "none": 404, "view": 403, "manage": "success"}

# API action -> (write action of tests/permission_matrix.py, status of a success)
API_ACTIONS = {
    "add_member": ("add_member", 201),
    "change_role": ("change_role", 200),
    "revoke_member": ("remove_member", 204),
    "delete_member": ("remove_member", 204),
    "assign_area": ("assign_area", 201),
    "assign_asset": ("assign_asset", 201),
    "remove_responsibility": ("remove_responsibility", 204),
    "create_subteam": ("create_subteam", 201),
    "edit_team": ("edit_team", 200),
}

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


def token_client(m, actor: str, **kwargs) -> APIClient:
    client = APIClient(**kwargs)
    if actor != ANONYMOUS:
        client.credentials(HTTP_AUTHORIZATION=f"Token {m.tokens[actor]}")
    return client


def session_client(m, actor: str, **kwargs) -> APIClient:
    client = APIClient(**kwargs)
    if actor != ANONYMOUS:
        client.force_login(m.user(actor))
    return client


def api_request(m, t, action: str) -> tuple[str, str, dict | None]:
    """Method, URL and JSON body of an API action on target `t`."""
    membership = f"/api/v1/memberships/{t.membership_id}/"
    requests = {
        "add_member": (
            "post",
            "/api/v1/memberships/",
            {"team": t.slug, "username": NEW_MEMBER, "role": "viewer"},
        ),
        "change_role": ("patch", membership, {"role": NEW_ROLE}),
        "revoke_member": ("post", f"{membership}revoke/", {}),
        "delete_member": ("delete", membership, None),
        "assign_area": (
            "post",
            "/api/v1/responsibilities/",
            {"username": t.member, "kind": "R", "team": t.slug, "area": NEW_AREA},
        ),
        "assign_asset": (
            "post",
            "/api/v1/responsibilities/",
            {
                "username": t.member,
                "kind": "R",
                "subject_type": "governance.dataasset",
                "subject_id": t.asset_id,
            },
        ),
        "remove_responsibility": (
            "delete",
            f"/api/v1/responsibilities/{t.responsibility_id}/",
            None,
        ),
        "create_subteam": (
            "post",
            "/api/v1/teams/",
            {"name": "Matrix Team", "slug": t.new_slug, "parent": t.slug},
        ),
        "edit_team": ("patch", f"/api/v1/teams/{t.slug}/", {"description": NEW_DESCRIPTION}),
    }
    return requests[action]


def send(client, method: str, url: str, data):
    return getattr(client, method)(url, data, format="json")


def assert_refused(response, access: str, message: str) -> None:
    matrix.assert_refused(response, OUTCOME[access], api=True, message=message)


# --- GET one team -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGET_KEYS, ids=TARGET_IDS.get)
@pytest.mark.parametrize("actor", ACTORS)
def test_get_team(m, actor, target):
    t = m.targets[target]
    access = ACCESS[actor][target]
    client = token_client(m, actor)
    before = snapshot()

    response = client.get(f"/api/v1/teams/{t.slug}/")

    assert response.status_code == READ_STATUS[access]
    if access in ("view", "manage"):
        assert response.json()["slug"] == t.slug
        assert response.json()["name"] == t.name
    else:
        assert_refused(response, access, "")
    assert_unchanged(before)


@pytest.mark.parametrize("target", TARGET_KEYS, ids=TARGET_IDS.get)
@pytest.mark.parametrize("kind", ["memberships", "responsibilities"])
@pytest.mark.parametrize("actor", ACTORS)
def test_get_membership_and_responsibility(m, actor, kind, target):
    t = m.targets[target]
    access = ACCESS[actor][target]
    pk = t.membership_id if kind == "memberships" else t.responsibility_id

    response = token_client(m, actor).get(f"/api/v1/{kind}/{pk}/")

    assert response.status_code == READ_STATUS[access]
    if access in ("view", "manage"):
        assert response.json()["id"] == pk
        assert response.json()["team"] == t.slug


# --- every write action -------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGET_KEYS, ids=TARGET_IDS.get)
@pytest.mark.parametrize("action", list(API_ACTIONS))
@pytest.mark.parametrize("actor", ACTORS)
def test_write_action(m, actor, action, target):
    t = m.targets[target]
    write, success_status = API_ACTIONS[action]
    spec = ACTIONS[write]
    access = ACCESS[actor][target]
    expected = WRITE_STATUS[access]
    client = token_client(m, actor)
    before = snapshot()

    response = send(client, *api_request(m, t, action))

    if access == "manage":
        assert response.status_code == success_status, response.content
        assert spec.effect(m, t)
        assert audit_since(before) == [(verb, actor) for verb in spec.verbs]
        assert count_changes(before, snapshot()) == spec.counts
    else:
        assert response.status_code == expected, response.content
        assert_refused(response, access, spec.refusal(t))
        assert_unchanged(before)


def test_successful_writes_answer_with_the_new_state(m):
    """Spot checks of the bodies the matrix only counts."""
    t = m.targets["own"]
    client = token_client(m, "alpha.lead")

    added = send(client, *api_request(m, t, "add_member")).json()
    assigned = send(client, *api_request(m, t, "assign_asset")).json()
    created = send(client, *api_request(m, t, "create_subteam")).json()

    assert added["team"] == "alpha"
    assert added["user"]["username"] == NEW_MEMBER
    assert added["role"] == "viewer"
    assert [assigned["team"], assigned["kind"]] == ["alpha", "R"]
    assert [assigned["subject_type"], assigned["subject_id"]] == ["dataasset", t.asset_id]
    assert (created["slug"], created["parent"], created["member_count"]) == (t.new_slug, "alpha", 0)


# --- lists are filtered per object ----------------------------------------------------------------

ACME = {"acme", "alpha", "alpha-sub", "beta"}
# actor -> teams in its lists; memberships and responsibilities per team in the built org
VISIBLE = {
    "admin": ACME | {"globex"},
    "alpha.lead": ACME,
    "alpha.viewer": ACME,
    "sub.viewer": ACME,
    "beta.steward": ACME,
    "acme.lead": ACME,
    "outsider": set(),
    "newcomer": set(),
    "globex.lead": {"globex"},
}
MEMBERS_PER_TEAM = {"acme": 1, "alpha": 5, "alpha-sub": 2, "beta": 2, "globex": 1}
RESPONSIBILITIES_PER_TEAM = {"acme": 0, "alpha": 1, "alpha-sub": 1, "beta": 1, "globex": 1}


@pytest.mark.parametrize("actor", list(VISIBLE))
def test_lists_hold_only_visible_objects(m, actor):
    client = token_client(m, actor)
    visible = VISIBLE[actor]

    teams = client.get("/api/v1/teams/").json()
    memberships = client.get("/api/v1/memberships/").json()
    responsibilities = client.get("/api/v1/responsibilities/").json()

    assert {row["slug"] for row in teams["results"]} == visible
    assert teams["count"] == len(visible)
    assert {row["team"] for row in memberships["results"]} == visible
    assert memberships["count"] == sum(MEMBERS_PER_TEAM[slug] for slug in visible)
    assert {row["team"] for row in responsibilities["results"]} <= visible
    assert responsibilities["count"] == sum(RESPONSIBILITIES_PER_TEAM[s] for s in visible)


def test_outsider_lists_are_empty(m):
    client = token_client(m, "outsider")

    for url in ["/api/v1/teams/", "/api/v1/memberships/", "/api/v1/responsibilities/"]:
        response = client.get(url)
        assert response.status_code == 200
        assert response.json()["count"] == 0
        assert response.json()["results"] == []


@pytest.mark.parametrize("url", ["teams", "memberships", "responsibilities"])
def test_lists_need_authentication(m, url):
    response = APIClient().get(f"/api/v1/{url}/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


# --- creating an organization (no parent) is for admins only --------------------------------------


@pytest.mark.parametrize(
    ("actor", "status"),
    [("admin", 201), ("acme.lead", 403), ("alpha.lead", 403), ("outsider", 403), (ANONYMOUS, 401)],
)
def test_create_organization(m, actor, status):
    client = token_client(m, actor)
    before = snapshot()

    response = client.post("/api/v1/teams/", {"name": "Initech", "slug": "initech"}, format="json")

    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["parent"] is None
        assert audit_since(before) == [("team.created", "admin")]
    else:
        assert_unchanged(before)


# --- token and session authentication -------------------------------------------------------------

CLIENTS = {"token": token_client, "session": session_client}


@pytest.mark.parametrize("auth", list(CLIENTS))
@pytest.mark.parametrize(
    ("actor", "read", "write"),
    [
        ("alpha.lead", 200, 201),
        ("alpha.viewer", 200, 403),
        ("outsider", 404, 404),
        (ANONYMOUS, 401, 401),
    ],
)
def test_token_and_session_auth_agree(m, auth, actor, read, write):
    client = CLIENTS[auth](m, actor)
    before = snapshot()

    got = client.get("/api/v1/teams/alpha/")
    added = client.post(
        "/api/v1/memberships/",
        {"team": "alpha", "username": NEW_MEMBER, "role": "viewer"},
        format="json",
    )

    assert (got.status_code, added.status_code) == (read, write)
    if write == 201:
        assert audit_since(before) == [("membership.granted", actor)]
    else:
        assert_unchanged(before)


def test_invalid_token_is_401(m):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    before = snapshot()

    got = client.get("/api/v1/teams/alpha/")
    added = client.post(
        "/api/v1/memberships/", {"team": "alpha", "username": NEW_MEMBER, "role": "viewer"}
    )

    assert (got.status_code, added.status_code) == (401, 401)
    assert got.json() == {"detail": "Invalid token."}
    assert_unchanged(before)


def test_token_of_an_inactive_user_is_401(m):
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="alpha.lead").update(is_active=False)
    before = snapshot()

    response = token_client(m, "alpha.lead").delete(
        f"/api/v1/memberships/{m.targets['own'].membership_id}/"
    )

    assert response.status_code == 401
    assert_unchanged(before)


def test_session_writes_need_the_csrf_token(m):
    """A browser session cannot be ridden by another site: unsafe methods need CSRF."""
    client = session_client(m, "alpha.lead", enforce_csrf_checks=True)
    before = snapshot()

    response = client.post(
        "/api/v1/memberships/",
        {"team": "alpha", "username": NEW_MEMBER, "role": "viewer"},
        format="json",
    )

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert_unchanged(before)


def test_token_writes_need_no_csrf_token(m):
    client = token_client(m, "alpha.lead", enforce_csrf_checks=True)

    response = client.post(
        "/api/v1/memberships/",
        {"team": "alpha", "username": NEW_MEMBER, "role": "viewer"},
        format="json",
    )

    assert response.status_code == 201


# --- invalid input by someone allowed: 400/409 with a JSON reason -----------------------------


@pytest.mark.parametrize(
    ("method", "url", "data", "status", "code"),
    [
        pytest.param(
            "post",
            "/api/v1/memberships/",
            {"team": "alpha", "username": "nobody", "role": "viewer"},
            400,
            "ValidationError",
            id="add-unknown-user",
        ),
        pytest.param(
            "post",
            "/api/v1/memberships/",
            {"team": "alpha", "username": NEW_MEMBER, "role": "owner"},
            400,
            "ValidationError",
            id="add-unknown-role",
        ),
        pytest.param(
            "post",
            "/api/v1/responsibilities/",
            {"username": "alpha.viewer", "kind": "R", "team": "alpha", "area": ""},
            400,
            "ValidationError",
            id="assign-neither-subject-nor-area",
        ),
        pytest.param(
            "post",
            "/api/v1/teams/",
            {"name": "Another Beta", "slug": "beta", "parent": "alpha"},
            400,
            "ValidationError",
            id="subteam-slug-taken",
        ),
        pytest.param(
            "patch",
            "/api/v1/teams/alpha/",
            {"parent": "globex"},
            404,
            None,
            id="move-under-invisible-team",
        ),
    ],
)
def test_invalid_input_is_refused_with_a_reason(m, method, url, data, status, code):
    before = snapshot()

    response = send(token_client(m, "alpha.lead"), method, url, data)

    assert response.status_code == status, response.content
    assert response.json()["detail"]
    if code:
        assert response.json()["code"] == code
    assert_unchanged(before)


def test_removing_an_accountable_member_needs_a_decision(m):
    """DELETE refuses (409) a member who is accountable for something; revoke with a successor
    hands it over."""
    from teams import services

    t = m.targets["own"]
    accountable = services.responsibility_assign(
        actor=m.user("admin"), user=m.user(t.member), kind="A", team=m.org.alpha, area="quality"
    )
    client = token_client(m, "alpha.lead")
    before = snapshot()

    refused = client.delete(f"/api/v1/memberships/{t.membership_id}/")

    assert refused.status_code == 409
    assert refused.json()["code"] == "ConflictError"
    assert refused.json()["undecided"] == [accountable.id]
    assert_unchanged(before)

    revoked = client.post(
        f"/api/v1/memberships/{t.membership_id}/revoke/",
        {"successors": [{"responsibility": accountable.id, "successor": "alpha.steward"}]},
        format="json",
    )

    assert revoked.status_code == 204
    assert audit_since(before) == [
        ("responsibility.reassigned", "alpha.lead"),
        ("membership.revoked", "alpha.lead"),
    ]
    accountable.refresh_from_db()
    assert accountable.user.username == "alpha.steward"
