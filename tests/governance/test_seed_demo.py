"""seed_demo builds the demo organization through the services, and a second run changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from core.audit import verify_chain
from core.models import AuditEvent
from governance.models import DataAsset
from teams import permissions, selectors
from teams.demo import DEMO_PASSWORD, DEMO_ROLES, DEMO_TEAMS
from teams.models import Membership, Responsibility, Team, TeamGroupObjectPermission

pytestmark = pytest.mark.django_db

User = get_user_model()
TEAM_SLUGS = ["catalog-data", "behaviour-analytics", "relevance-ml", "search-ops"]


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", "--i-know-this-is-a-demo", *args, stdout=out)
    return out.getvalue()


def state() -> dict:
    """Row counts of every model, and the exact rows of the organization and the audit trail."""
    counts = {
        model._meta.label: model._default_manager.count()
        for app in ("auth", "teams", "governance", "recsys")
        for model in apps.get_app_config(app).get_models()
    }
    through = User.groups.through
    return {
        "counts": counts,
        "users": list(User.objects.order_by("id").values_list("id", "username", "password")),
        "teams": list(Team.objects.order_by("id").values_list("id", "slug", "name", "parent_id")),
        "memberships": list(
            Membership.objects.order_by("id").values_list("id", "user_id", "team_id", "role")
        ),
        "responsibilities": list(
            Responsibility.objects.order_by("id").values_list(
                "id", "user_id", "kind", "team_id", "subject_id", "area"
            )
        ),
        "assets": list(DataAsset.objects.order_by("id").values_list("id", "slug", "owning_team")),
        "user_groups": sorted(through.objects.values_list("user_id", "group_id")),
        "grants": sorted(
            TeamGroupObjectPermission.objects.values_list(
                "group_id", "permission_id", "content_object_id"
            )
        ),
        "audit": list(AuditEvent.objects.order_by("id").values_list("id", "hash")),
    }


def raci(slug: str) -> dict[str, list[str]]:
    asset = DataAsset.objects.get(slug=slug)
    found: dict[str, list[str]] = {}
    for kind, username in (
        Responsibility.objects.filter(subject_id=asset.pk, subject_type__model="dataasset")
        .order_by("user__username")
        .values_list("kind", "user__username")
    ):
        found.setdefault(kind, []).append(username)
    return found


def test_seed_demo_creates_the_demo_organization(db):
    output = seed("--quiet-logins")
    assert "Demo organization ready: 5 teams" in output
    assert DEMO_PASSWORD not in output

    root = Team.objects.get(slug="search-recs")
    assert root.name == "Search & Recommendations" and root.parent_id is None
    assert sorted(root.children.values_list("slug", flat=True)) == sorted(TEAM_SLUGS)
    assert Team.objects.count() == 5

    for slug, _name, _description, prefix in DEMO_TEAMS:
        roles = dict(
            Membership.objects.filter(team__slug=slug).values_list("user__username", "role")
        )
        assert roles == {f"{prefix}.{role}": role for role in DEMO_ROLES}
    head = User.objects.get(username="org.head")
    assert list(head.memberships.values_list("team__slug", "role")) == [("search-recs", "lead")]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert not admin.memberships.exists()
    assert User.objects.count() == 2 + len(DEMO_TEAMS) * len(DEMO_ROLES)
    assert User.objects.get(username="ops.viewer").check_password(DEMO_PASSWORD)

    owners = dict(DataAsset.objects.values_list("slug", "owning_team__slug"))
    assert owners == {
        "product-catalog": "catalog-data",
        "behaviour-events": "behaviour-analytics",
        "relevance-labels": "relevance-ml",
        "search-queries": "search-ops",
    }
    assert raci("product-catalog") == {
        "A": ["catalog.steward"],
        "R": ["catalog.engineer"],
        "C": ["relevance.lead"],
        "I": ["ops.ops"],
    }
    assert raci("behaviour-events") == {"A": ["behaviour.steward"], "R": ["behaviour.engineer"]}
    assert raci("relevance-labels") == {
        "A": ["relevance.steward"],
        "R": ["relevance.engineer"],
        "C": ["catalog.steward"],
    }
    assert raci("search-queries") == {"R": ["ops.engineer"]}
    areas = set(
        Responsibility.objects.filter(subject_type__isnull=True).values_list(
            "team__slug", "area", "kind", "user__username"
        )
    )
    assert areas == {
        ("catalog-data", "catalog quality", "A", "catalog.lead"),
        ("catalog-data", "catalog quality", "R", "catalog.steward"),
        ("search-ops", "index activation", "A", "ops.lead"),
        ("search-ops", "index activation", "R", "ops.ops"),
    }

    # The only reported gap: search-queries, in search-ops.
    gaps = {slug: selectors.gaps_of(team=Team.objects.get(slug=slug)) for slug in TEAM_SLUGS}
    assert [g.subject.slug for g in gaps["search-ops"]] == ["search-queries"]
    assert all(gaps[slug] == [] for slug in TEAM_SLUGS if slug != "search-ops")

    # Grants follow the org.
    def user(name):
        return User.objects.get(username=name)

    catalog, ops = Team.objects.get(slug="catalog-data"), Team.objects.get(slug="search-ops")
    assert permissions.can_manage_team(user("org.head"), catalog)
    assert permissions.can_manage_team(user("catalog.lead"), catalog)
    assert not permissions.can_manage_team(user("catalog.lead"), ops)
    assert not permissions.can_manage_team(user("catalog.lead"), root)
    assert not permissions.can_manage_team(user("catalog.steward"), catalog)
    assert permissions.can_view_team(user("ops.viewer"), catalog)


def test_seed_demo_twice_changes_nothing(db):
    seed("--quiet-logins")
    first = state()
    assert first["audit"], "the first run writes audit events"
    output = seed()  # this time with the logins
    assert state() == first
    assert "Demo organization ready: 5 teams, 21 memberships" in output
    assert f"password for all: {DEMO_PASSWORD}" in output
    assert "org.head" in output and "ops.viewer" in output


def test_seed_demo_refuses_the_public_demo_password_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError) as info:
        call_command("seed_demo", "--quiet-logins", stdout=StringIO())
    message = str(info.value)
    assert "DEBUG is off" in message and DEMO_PASSWORD in message
    assert "--i-know-this-is-a-demo" in message
    assert not User.objects.exists() and not Team.objects.exists()


def test_seed_demo_with_debug_on_needs_no_flag(db, settings):
    settings.DEBUG = True
    call_command("seed_demo", "--quiet-logins", stdout=StringIO())
    assert User.objects.get(username="admin").check_password(DEMO_PASSWORD)


def test_verify_audit_passes_after_seed_demo(db):
    seed("--quiet-logins")
    seed("--quiet-logins")
    out = StringIO()
    call_command("verify_audit", stdout=out)
    count = AuditEvent.objects.count()
    assert out.getvalue().strip() == f"OK: {count} audit events verified."
    assert verify_chain().checked == count
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert verbs >= {
        "team.created",
        "membership.granted",
        "dataasset.created",
        "responsibility.assigned",
    }


@pytest.mark.parametrize(
    "debug, demo_mode, shown",
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_the_login_page_lists_the_demo_logins_in_demo_mode_only(
    client, settings, debug, demo_mode, shown
):
    settings.DEBUG, settings.DEMO_MODE = debug, demo_mode
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    page = response.content.decode()
    assert ("<h2>Demo logins</h2>" in page) is shown
    for username in ("admin", "org.head", "catalog.steward", "ops.ops", "relevance.viewer"):
        assert (f"<code>{username}</code>" in page) is shown
    assert ("steward-demo" in page) is shown
    assert 'name="username"' in page  # the form itself is always there
