"""python manage.py seed_demo: the demo organization, idempotent (a second run changes nothing).

Its users share a public password, so with DEBUG off it refuses unless --i-know-this-is-a-demo."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from governance.choices import AssetKind, Classification
from governance.models import DataAsset
from governance.services import dataasset_create
from teams import services
from teams.demo import (
    DEMO_ADMIN,
    DEMO_HEAD,
    DEMO_PASSWORD,
    DEMO_ROOT,
    DEMO_TEAMS,
    demo_logins,
    demo_users,
)
from teams.models import Membership, Responsibility, Team

User = get_user_model()

DEMO_ASSETS = [
    # slug, name, kind, team, classification, accountable (None = a reported gap), description
    (
        "product-catalog",
        "Product catalog",
        AssetKind.PRODUCT_CATALOG,
        "catalog-data",
        Classification.INTERNAL,
        "catalog.steward",
        "Titles, brands, prices and attributes of every product.",
    ),
    (
        "behaviour-events",
        "Behaviour events",
        AssetKind.BEHAVIOUR_EVENTS,
        "behaviour-analytics",
        Classification.PERSONAL,
        "behaviour.steward",
        "Views, clicks, carts and purchases per user.",
    ),
    (
        "relevance-labels",
        "Relevance labels",
        AssetKind.RELEVANCE_LABELS,
        "relevance-ml",
        Classification.INTERNAL,
        "relevance.steward",
        "Graded query-product judgments.",
    ),
    (
        "search-queries",
        "Search queries",
        AssetKind.QUERIES,
        "search-ops",
        Classification.CONFIDENTIAL,
        None,
        "Queries typed into the shop's search box.",
    ),
]
# username, RACI, asset slug or None, area, team slug (for areas)
DEMO_RACI = [
    ("catalog.engineer", "R", "product-catalog", "", ""),
    ("relevance.lead", "C", "product-catalog", "", ""),
    ("ops.ops", "I", "product-catalog", "", ""),
    ("behaviour.engineer", "R", "behaviour-events", "", ""),
    ("relevance.engineer", "R", "relevance-labels", "", ""),
    ("catalog.steward", "C", "relevance-labels", "", ""),
    ("ops.engineer", "R", "search-queries", "", ""),
    ("catalog.lead", "A", None, "catalog quality", "catalog-data"),
    ("catalog.steward", "R", None, "catalog quality", "catalog-data"),
    ("ops.lead", "A", None, "index activation", "search-ops"),
    ("ops.ops", "R", None, "index activation", "search-ops"),
]


class Command(BaseCommand):
    help = "Create the demo organization (teams, one user per role, assets, RACI). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--quiet-logins", action="store_true", help="Do not print the logins.")
        parser.add_argument(
            "--i-know-this-is-a-demo",
            action="store_true",
            dest="i_know_this_is_a_demo",
            help="Create the demo users (public password) even with DEBUG off.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["i_know_this_is_a_demo"]:
            raise CommandError(
                "seed_demo creates demo users (an admin among them) whose password "
                f"'{DEMO_PASSWORD}' is public, and DEBUG is off: refusing. On a demo or test "
                "installation that nobody else can reach, run it with --i-know-this-is-a-demo."
            )
        self._seed(**options)

    @transaction.atomic
    def _seed(self, **options):
        admin = self._user(DEMO_ADMIN, superuser=True)
        root_slug, root_name, root_description = DEMO_ROOT
        root = Team.objects.filter(slug=root_slug).first() or services.team_create(
            actor=admin, name=root_name, slug=root_slug, parent=None, description=root_description
        )
        teams = {root_slug: root}
        for slug, name, description, _prefix in DEMO_TEAMS:
            teams[slug] = Team.objects.filter(slug=slug).first() or services.team_create(
                actor=admin, name=name, slug=slug, parent=root, description=description
            )
        users = {}
        for username, team_slug, role in demo_users():
            users[username] = user = self._user(username)
            if not Membership.objects.filter(user=user, team=teams[team_slug]).exists():
                services.membership_grant(actor=admin, team=teams[team_slug], user=user, role=role)
        head = self._user(DEMO_HEAD)
        if not Membership.objects.filter(user=head, team=root).exists():
            services.membership_grant(actor=admin, team=root, user=head, role="lead")
        assets = {}
        for slug, name, kind, team_slug, classification, accountable, description in DEMO_ASSETS:
            assets[slug] = DataAsset.objects.filter(slug=slug).first() or dataasset_create(
                actor=admin,
                name=name,
                slug=slug,
                kind=kind,
                owning_team=teams[team_slug],
                classification=classification,
                description=description,
            )
            if accountable:
                self._raci(admin, users[accountable], "A", subject=assets[slug])
        for username, kind, asset_slug, area, team_slug in DEMO_RACI:
            subject = assets[asset_slug] if asset_slug else None
            self._raci(
                admin, users[username], kind, subject=subject, area=area, team=teams.get(team_slug)
            )
        from governance.demo import seed_governance
        from recsys.demo.pipeline import seed_pipeline
        from teams.permissions import sync_team_grants

        sync_team_grants()  # grants added by later releases reach existing teams too
        uploaded = seed_governance(admin=admin, users={**users, "admin": admin})
        seed_pipeline(admin=admin, users=users)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organization ready: {Team.objects.count()} teams, "
                f"{Membership.objects.count()} memberships, "
                f"{Responsibility.objects.count()} responsibilities; "
                f"{uploaded} demo dataset versions uploaded."
            )
        )
        if not options["quiet_logins"]:
            self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
            for row in demo_logins():
                self.stdout.write(f"  {row['username']:<22} {row['role']:<9} {row['team']}")

    def _user(self, username: str, superuser: bool = False):
        user = User.objects.filter(username=username).first()
        if user is None:
            first, _, last = username.partition(".")
            user = User(
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

    def _raci(self, admin, user, kind, *, subject=None, area="", team=None):
        where = (
            {"subject_id": subject.pk, "team": subject.owning_team}
            if subject
            else {"area": area, "team": team}
        )
        if not Responsibility.objects.filter(user=user, kind=kind, **where).exists():
            services.responsibility_assign(
                actor=admin, user=user, kind=kind, subject=subject, area=area, team=team
            )
