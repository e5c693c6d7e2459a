"""python manage.py seed_demo: the demo organization, idempotent (a second run changes nothing).

Each part is built next to what it is about: the teams, users, memberships and responsibilities
for areas by teams/demo.py, the data assets, their responsibilities and the demo dataset versions
by governance/services/demo.py, the pipeline by recsys/demo/pipeline.py. The command lives in
recsys, the app above the other two, because it needs all three.

Its users share a public password, so with DEBUG off it refuses unless --i-know-this-is-a-demo."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from teams.demo import DEMO_PASSWORD, demo_logins, seed_organization
from teams.models import Membership, Responsibility, Team


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
        from governance.services.demo import seed_assets, seed_governance
        from recsys.demo.pipeline import seed_pipeline
        from teams.permissions import sync_team_grants

        org = seed_organization()
        seed_assets(admin=org.admin, teams=org.teams, users=org.users)
        sync_team_grants()  # grants added by later releases reach existing teams too
        uploaded = seed_governance(admin=org.admin, users={**org.users, "admin": org.admin})
        seed_pipeline(admin=org.admin, users=org.users)
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
