"""The org chart, the team list API and the team page use the same number of queries for a small
and for a large organization (no query per team, member or responsibility)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from rest_framework.test import APIClient

from governance.models import DataAsset
from teams import permissions
from teams.choices import Role
from teams.models import Membership, Responsibility, Team
from tests.helpers import assert_queries_constant, count_queries

pytestmark = pytest.mark.django_db

User = get_user_model()
ROLES = list(Role.values)
SMALL, LARGE = 10, 500


@dataclass
class BigOrg:
    """acme (root, lead: boss)
    ├── focus (lead: focus.lead; plus `size` members, assets, R/A on assets and areas)
    │   └── half of the `size` extra teams (some nested one level deeper)
    └── the other half of the extra teams
    Every extra team has one lead of its own."""

    boss: object
    root: Team
    focus: Team
    size: int = 0
    teams: list = field(default_factory=list)


def _users(names: list[str]) -> list:
    User.objects.bulk_create(
        [User(username=n, first_name=n.split(".")[0].title(), password="!") for n in names]
    )
    return list(User.objects.filter(username__in=names).order_by("id"))


def _teams(rows: list[tuple[str, Team]]) -> list[Team]:
    Team.objects.bulk_create(
        [
            Team(name=slug.replace("-", " ").title(), slug=slug, parent=parent)
            for slug, parent in rows
        ]
    )
    return list(Team.objects.filter(slug__in=[slug for slug, _ in rows]).order_by("id"))


def _sync_groups(teams: list[Team], memberships: list[tuple]) -> None:
    """What the services do for each team and membership, in bulk."""
    names = {permissions.role_group_name(t, role) for t in teams for role in ROLES}
    names |= {permissions.org_group_name(t) for t in teams if t.parent_id is None}
    existing = set(Group.objects.filter(name__in=names).values_list("name", flat=True))
    Group.objects.bulk_create([Group(name=n) for n in sorted(names - existing)])
    group_ids = dict(Group.objects.values_list("name", "id"))
    through = User.groups.through
    have = set(through.objects.values_list("user_id", "group_id"))
    wanted = set()
    for user, team, role, root in memberships:
        wanted.add((user.pk, group_ids[permissions.role_group_name(team, role)]))
        wanted.add((user.pk, group_ids[permissions.org_group_name(root)]))
    through.objects.bulk_create([through(user_id=u, group_id=g) for u, g in sorted(wanted - have)])
    permissions.sync_team_grants()


def start_org() -> BigOrg:
    root, *_ = _teams([("acme", None)])
    (focus,) = _teams([("focus", root)])
    boss, focus_lead = _users(["boss", "focus.lead"])
    Membership.objects.bulk_create(
        [
            Membership(user=boss, team=root, role=Role.LEAD),
            Membership(user=focus_lead, team=focus, role=Role.LEAD),
        ]
    )
    _sync_groups(
        [root, focus], [(boss, root, Role.LEAD, root), (focus_lead, focus, Role.LEAD, root)]
    )
    return BigOrg(boss=boss, root=root, focus=focus)


def grow(org: BigOrg, size: int) -> None:
    """Add teams, members, assets and responsibilities up to `size` of each."""
    new = range(org.size, size)
    if not new:
        return
    # Extra teams: under focus, under the root, or one level below the previous team.
    rows = []
    for i in new:
        parent = org.focus if i % 3 == 0 else org.root
        rows.append((f"team-{i:04d}", parent))
    made = _teams(rows)
    nested = [t for i, t in zip(new, made, strict=True) if i % 3 == 2 and i > 0]
    for team in nested:
        team.parent = made[made.index(team) - 1]
    Team.objects.bulk_update(nested, ["parent"])
    org.teams += made

    leads = _users([f"lead.{i:04d}" for i in new])
    members = _users([f"member.{i:04d}" for i in new])
    rows = [(u, t, Role.LEAD) for u, t in zip(leads, made, strict=True)]
    rows += [(u, org.focus, ROLES[i % len(ROLES)]) for i, u in zip(new, members, strict=True)]
    Membership.objects.bulk_create([Membership(user=u, team=t, role=r) for u, t, r in rows])
    _sync_groups([*org.teams, org.root, org.focus], [(u, t, r, org.root) for u, t, r in rows])

    DataAsset.objects.bulk_create(
        [
            DataAsset(
                name=f"Asset {i:04d}", slug=f"asset-{i:04d}", kind="queries", owning_team=org.focus
            )
            for i in new
        ]
    )
    assets = DataAsset.objects.filter(slug__in=[f"asset-{i:04d}" for i in new]).order_by("id")
    ct = ContentType.objects.get_for_model(DataAsset)
    raci = []
    for i, member, asset in zip(new, members, assets, strict=True):
        on_asset = {"team": org.focus, "user": member, "subject_type": ct, "subject_id": asset.pk}
        raci.append(Responsibility(kind="R", **on_asset))
        if i % 2 == 0:  # the odd ones are accountability gaps
            raci.append(Responsibility(kind="A", **on_asset))
        area = {"team": org.focus, "user": member, "area": f"area {i:04d}"}
        raci.append(Responsibility(kind="R", **area))
        if i % 3 == 0:
            raci.append(Responsibility(kind="A", **area))
    Responsibility.objects.bulk_create(raci)
    org.size = size


@pytest.fixture
def big_org(db) -> BigOrg:
    org = start_org()
    grow(org, SMALL)
    return org


def test_the_bulk_built_org_matches_what_the_services_would_grant(big_org):
    grow(big_org, 30)
    member = User.objects.get(username="member.0003")
    before = set(member.groups.values_list("name", flat=True))
    permissions.sync_user_groups(member)
    assert set(member.groups.values_list("name", flat=True)) == before
    assert before == {f"team:focus:{ROLES[3]}", "org:acme"}
    boss = User.objects.get(pk=big_org.boss.pk)
    assert all(permissions.can_manage_team(boss, t) for t in big_org.teams)
    deep = Team.objects.get(slug="team-0002")
    assert deep.parent.slug == "team-0001"
    lead = User.objects.get(username="lead.0001")
    assert permissions.can_manage_team(lead, deep)
    assert not permissions.can_manage_team(lead, big_org.focus)
    assert permissions.can_view_team(User.objects.get(username="member.0007"), deep)


def ui_client(client, user):
    client.force_login(user)
    return client


def test_org_chart_uses_a_constant_number_of_queries(big_org, client):
    ui_client(client, big_org.boss)
    small = count_queries(client, "/teams/", expect=["Team 0009", "you manage"])
    started = time.monotonic()
    grow(big_org, LARGE)
    print(f"\n[query count] grew the org to {LARGE} in {time.monotonic() - started:.1f}s")
    large = count_queries(client, "/teams/", expect="Team 0499")
    assert_queries_constant("org chart GET /teams/", small, large, rows=(SMALL, LARGE))


def test_team_list_api_uses_a_constant_number_of_queries(big_org):
    api = APIClient()
    api.force_authenticate(big_org.boss)
    small = count_queries(api, "/api/v1/teams/", expect=f'"count":{SMALL + 2}')
    grow(big_org, LARGE)
    large = count_queries(api, "/api/v1/teams/", expect=f'"count":{LARGE + 2}')
    assert_queries_constant("team list API GET /api/v1/teams/", small, large, rows=(SMALL, LARGE))


def page_texts(size: int) -> list[str]:
    last = size - 1  # odd: its asset has no A (a gap); a multiple of 3 below it is a sub-team
    return [
        f"Members ({size + 1})",
        f"member.{last:04d}",
        f"Asset {last:04d}",
        f"area {last:04d} (Focus)",
        f"Team {last - last % 3:04d}",
    ]


@pytest.mark.parametrize("viewer", ["boss", "member"])
def test_team_page_uses_a_constant_number_of_queries(big_org, client, viewer):
    user = big_org.boss if viewer == "boss" else User.objects.get(username="member.0001")
    ui_client(client, user)
    small = count_queries(client, "/teams/focus/", expect=page_texts(SMALL))
    grow(big_org, LARGE)
    large = count_queries(client, "/teams/focus/", expect=page_texts(LARGE))
    assert_queries_constant(
        f"team page GET /teams/focus/ as {viewer}", small, large, rows=(SMALL, LARGE)
    )


@pytest.mark.parametrize("endpoint", ["memberships", "responsibilities"])
def test_other_list_endpoints_use_a_constant_number_of_queries(big_org, endpoint):
    api = APIClient()
    api.force_authenticate(big_org.boss)
    small = count_queries(api, f"/api/v1/{endpoint}/?page=1", expect='"results"')
    grow(big_org, LARGE)
    large = count_queries(api, f"/api/v1/{endpoint}/?page=1", expect='"results"')
    assert_queries_constant(f"API GET /api/v1/{endpoint}/", small, large, rows=(SMALL, LARGE))
