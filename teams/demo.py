"""The demo organization: who is in it, with which role and which responsibilities for areas of
work, and `seed_organization`, which builds it. Used by seed_demo and the login page.

The constants are read without Django set-up (scripts/readme_screenshots.py), so the functions
that build the organization import Django inside."""

from __future__ import annotations

from dataclasses import dataclass, field

DEMO_PASSWORD = "steward-demo"  # noqa: S105 - demo accounts only, shown only in demo mode
DEMO_ROOT = (
    "search-recs",
    "Search & Recommendations",
    "Everything behind product search and recommendations.",
)
DEMO_TEAMS = [
    ("catalog-data", "Catalog data", "Owns the product catalog and its quality.", "catalog"),
    (
        "behaviour-analytics",
        "Behaviour analytics",
        "Owns click, cart and purchase events.",
        "behaviour",
    ),
    ("relevance-ml", "Relevance ML", "Owns relevance labels and the ranking models.", "relevance"),
    ("search-ops", "Search ops", "Runs the pipeline and the live search index.", "ops"),
]
DEMO_ROLES = ["lead", "steward", "engineer", "ops", "viewer"]
DEMO_ADMIN = "admin"
DEMO_HEAD = "org.head"  # lead of the organization root
# username, RACI kind, area, team slug: responsibilities for areas of work (those for data assets
# are governance/services/demo.py's)
DEMO_AREA_RACI = [
    ("catalog.lead", "A", "catalog quality", "catalog-data"),
    ("catalog.steward", "R", "catalog quality", "catalog-data"),
    ("ops.lead", "A", "index activation", "search-ops"),
    ("ops.ops", "R", "index activation", "search-ops"),
]


def demo_users() -> list[tuple[str, str, str]]:
    """(username, team slug, role) for one user per role in each demo team."""
    return [
        (f"{prefix}.{role}", slug, role)
        for slug, _name, _description, prefix in DEMO_TEAMS
        for role in DEMO_ROLES
    ]


def demo_logins() -> list[dict]:
    rows = [
        {"username": DEMO_ADMIN, "team": "(site admin)", "role": "admin"},
        {"username": DEMO_HEAD, "team": DEMO_ROOT[0], "role": "lead"},
    ]
    rows += [{"username": u, "team": t, "role": r} for u, t, r in demo_users()]
    for row in rows:
        row["password"] = DEMO_PASSWORD
    return rows


@dataclass
class DemoOrganization:
    """What seed_organization built: the site admin, the teams by slug (the root included) and
    the demo users by username (one per role in each demo team; not the site admin or the head)."""

    admin: object
    teams: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)


def seed_organization() -> DemoOrganization:
    """Idempotent: the site admin, the team tree, one user per role in each demo team, the head
    of the organization and the responsibilities for areas, all created through the services."""
    from teams import services
    from teams.models import Membership, Team

    admin = demo_account(DEMO_ADMIN, superuser=True)
    root_slug, root_name, root_description = DEMO_ROOT
    root = Team.objects.filter(slug=root_slug).first() or services.team_create(
        actor=admin, name=root_name, slug=root_slug, parent=None, description=root_description
    )
    org = DemoOrganization(admin=admin, teams={root_slug: root})
    for slug, name, description, _prefix in DEMO_TEAMS:
        org.teams[slug] = Team.objects.filter(slug=slug).first() or services.team_create(
            actor=admin, name=name, slug=slug, parent=root, description=description
        )
    for username, team_slug, role in demo_users():
        org.users[username] = user = demo_account(username)
        if not Membership.objects.filter(user=user, team=org.teams[team_slug]).exists():
            services.membership_grant(actor=admin, team=org.teams[team_slug], user=user, role=role)
    head = demo_account(DEMO_HEAD)
    if not Membership.objects.filter(user=head, team=root).exists():
        services.membership_grant(actor=admin, team=root, user=head, role="lead")
    for username, kind, area, team_slug in DEMO_AREA_RACI:
        assign_once(admin, org.users[username], kind, area=area, team=org.teams[team_slug])
    return org


def demo_account(username: str, *, superuser: bool = False):
    """The demo user `username`, created with the public demo password if missing."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        first, _, last = username.partition(".")
        user = user_model(
            username=username,
            email=f"{username}@demo.steward.local",
            first_name=first.title(),
            last_name=last.title(),
            is_superuser=superuser,
            is_staff=superuser,
        )
        user.set_password(DEMO_PASSWORD)
        user.save()
    return user


def assign_once(admin, user, kind: str, *, subject=None, area: str = "", team=None) -> None:
    """Assign a responsibility (for a subject, or for an area of a team) unless it exists."""
    from teams import services
    from teams.models import Responsibility

    where = (
        {"subject_id": subject.pk, "team": subject.owning_team}
        if subject
        else {"area": area, "team": team}
    )
    if not Responsibility.objects.filter(user=user, kind=kind, **where).exists():
        services.responsibility_assign(
            actor=admin, user=user, kind=kind, subject=subject, area=area, team=team
        )
