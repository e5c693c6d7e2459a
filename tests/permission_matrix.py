"""Shared pieces of the permission-matrix tests (tests/teams/test_permission_matrix_*.py).

* `shared_org()`: the `build_org()` organization plus what the matrix acts on, built once per
  test module inside an outer transaction; each test runs in its own savepoint (the `db`
  fixture), so every test starts from the same state.
* `snapshot()`: everything a refused request must leave alone (rows of the organization, groups,
  object grants, notifications, assets, the audit trail). Compare two snapshots with `==`.
* `ACCESS`: the explicit expectation table, actor x target -> what the actor may do there.
* `ACTIONS`: per write action, the audit verbs and row-count changes a success must produce and
  a check that its effect is in the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.conftest import Org, build_org
from tests.factories import UserFactory

# --- the expectation table ------------------------------------------------------------------------

OWN, SUB, OTHER = "own", "sub", "other"
TARGET_KEYS = [OWN, SUB, OTHER]
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
    "outsider",
]

# "manage": may read and change the team; "view": may read it only (writes -> 403);
# "none": cannot see it (404); "login": not logged in (UI -> login page, API -> 401).
#                    own = alpha   sub = alpha-sub   other = beta
ACCESS = {
    ANONYMOUS: {OWN: "login", SUB: "login", OTHER: "login"},
    "admin": {OWN: "manage", SUB: "manage", OTHER: "manage"},
    "alpha.lead": {OWN: "manage", SUB: "manage", OTHER: "view"},
    "alpha.steward": {OWN: "view", SUB: "view", OTHER: "view"},
    "alpha.engineer": {OWN: "view", SUB: "view", OTHER: "view"},
    "alpha.ops": {OWN: "view", SUB: "view", OTHER: "view"},
    "alpha.viewer": {OWN: "view", SUB: "view", OTHER: "view"},
    "acme.lead": {OWN: "manage", SUB: "manage", OTHER: "manage"},
    "outsider": {OWN: "none", SUB: "none", OTHER: "none"},
}

# --- the organization the matrix acts on ----------------------------------------------------------

NEW_MEMBER = "newcomer"  # added by "add member"
NEW_ROLE = "engineer"  # given by "change role" (no target member has it)
NEW_AREA = "matrix area"  # named by "assign responsibility (area)"
NEW_DESCRIPTION = "Edited by the permission matrix."
SEEDED_AREA = "seeded area"


@dataclass(frozen=True)
class Target:
    """One team of the matrix and the objects the write actions touch in it."""

    key: str
    slug: str
    team_id: int
    name: str
    parent_id: int
    member: str  # username of a plain member: role changed / removed / given an R
    member_user_id: int
    membership_id: int
    asset_id: int  # a data asset the team owns
    responsibility_id: int  # an R on SEEDED_AREA, held by someone other than `member`

    @property
    def new_slug(self) -> str:
        return f"matrix-{self.slug}"


@dataclass
class MatrixOrg:
    org: Org
    targets: dict[str, Target]
    tokens: dict[str, str] = field(default_factory=dict)
    asset_type_id: int = 0

    def user(self, name: str):
        return self.org.user(name)


def build_matrix_org() -> MatrixOrg:
    """build_org() plus an asset and a seeded responsibility per target team, a second
    organization (globex) that nobody in acme may see, and an API token per user."""
    from django.contrib.contenttypes.models import ContentType
    from rest_framework.authtoken.models import Token

    from governance.models import DataAsset
    from governance.services import dataasset_create
    from teams import services
    from teams.models import Membership

    org = build_org()
    admin = org.admin
    assets = {
        OWN: org.asset,
        SUB: dataasset_create(
            actor=admin, name="Sub Catalog", slug="sub-catalog", kind="queries", owning_team=org.sub
        ),
        OTHER: dataasset_create(
            actor=admin,
            name="Beta Catalog",
            slug="beta-catalog",
            kind="queries",
            owning_team=org.beta,
        ),
    }
    layout = {
        OWN: (org.alpha, "alpha.viewer", "alpha.engineer"),
        SUB: (org.sub, "sub.viewer", "sub.lead"),
        OTHER: (org.beta, "beta.steward", "beta.lead"),
    }
    targets = {}
    for key, (team, member, holder) in layout.items():
        seeded = services.responsibility_assign(
            actor=admin, user=org.user(holder), kind="R", team=team, area=SEEDED_AREA
        )
        targets[key] = Target(
            key=key,
            slug=team.slug,
            team_id=team.id,
            name=team.name,
            parent_id=team.parent_id,
            member=member,
            member_user_id=org.user(member).id,
            membership_id=Membership.objects.get(team=team, user=org.user(member)).id,
            asset_id=assets[key].id,
            responsibility_id=seeded.id,
        )
    globex = services.team_create(actor=admin, name="Globex", slug="globex", parent=None)
    globex_lead = UserFactory(username="globex.lead")
    services.membership_grant(actor=admin, team=globex, user=globex_lead, role="lead")
    services.responsibility_assign(
        actor=admin, user=globex_lead, kind="A", team=globex, area="globex area"
    )
    org.users["globex.lead"] = globex_lead
    tokens = {name: Token.objects.create(user=user).key for name, user in org.users.items()}
    return MatrixOrg(
        org=org,
        targets=targets,
        tokens=tokens,
        asset_type_id=ContentType.objects.get_for_model(DataAsset).id,
    )


@contextmanager
def shared_org(django_db_blocker) -> Iterator[MatrixOrg]:
    """Build the matrix organization once, in a transaction rolled back at the end.

    Use from a module-scoped fixture; tests that also request `db` run in a savepoint inside it.
    A fast password hasher keeps the build short (nothing here logs in with a password)."""
    from django.db import transaction
    from django.test import override_settings

    fast_hashing = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    )
    with django_db_blocker.unblock(), transaction.atomic():
        try:
            with fast_hashing:
                built = build_matrix_org()
            yield built
        finally:
            transaction.set_rollback(True)


# --- state snapshots ---------------------------------------------------------------------------


def _digest(rows) -> str:
    payload = json.dumps(sorted(rows), default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def snapshot() -> dict:
    """Counts of the organization's rows plus digests of their content (roles, team fields,
    RACI, groups and grants), and the last audit event id."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.models import AuditEvent
    from governance.models import DataAsset
    from teams.models import (
        Membership,
        Notification,
        Responsibility,
        Team,
        TeamGroupObjectPermission,
        TeamUserObjectPermission,
    )

    user_groups = get_user_model().groups.through.objects
    memberships = list(Membership.objects.values_list("id", "user_id", "team_id", "role"))
    teams = list(
        Team.objects.values_list("id", "name", "slug", "description", "parent_id", "archived")
    )
    responsibilities = list(
        Responsibility.objects.values_list(
            "id", "team_id", "user_id", "kind", "subject_type_id", "subject_id", "area", "note"
        )
    )
    last_audit = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return {
        "counts": {
            "memberships": len(memberships),
            "responsibilities": len(responsibilities),
            "teams": len(teams),
            "audit_events": AuditEvent.objects.count(),
            "notifications": Notification.objects.count(),
        },
        "last_audit_id": last_audit or 0,
        "memberships": _digest(memberships),
        "teams": _digest(teams),
        "responsibilities": _digest(responsibilities),
        "assets": _digest(DataAsset.objects.values_list("id", "slug", "owning_team_id", "name")),
        "groups": _digest(Group.objects.values_list("id", "name")),
        "user_groups": _digest(user_groups.values_list("user_id", "group_id")),
        "grants": _digest(
            TeamGroupObjectPermission.objects.values_list(
                "group_id", "permission_id", "content_object_id"
            )
        ),
        "user_grants": _digest(
            TeamUserObjectPermission.objects.values_list(
                "user_id", "permission_id", "content_object_id"
            )
        ),
    }


def count_changes(before: dict, after: dict) -> dict[str, int]:
    """The row counts that changed, as name -> difference."""
    return {
        name: after["counts"][name] - count
        for name, count in before["counts"].items()
        if after["counts"][name] != count
    }


def audit_since(before: dict) -> list[tuple[str, str]]:
    """(verb, actor username) of the audit events written after `before`, oldest first."""
    from core.models import AuditEvent

    return list(
        AuditEvent.objects.filter(id__gt=before["last_audit_id"])
        .order_by("id")
        .values_list("verb", "actor_repr")
    )


def assert_unchanged(before: dict) -> None:
    after = snapshot()
    assert audit_since(before) == [], "a refused request wrote audit events"
    assert after == before, "a refused request changed the organization"


# --- write actions: what a success must leave behind ---------------------------------------------


def _membership(t: Target):
    from teams.models import Membership

    return Membership.objects.filter(pk=t.membership_id)


def _member_added(m: MatrixOrg, t: Target) -> bool:
    from teams.models import Membership

    return Membership.objects.filter(
        team_id=t.team_id, user__username=NEW_MEMBER, role="viewer"
    ).exists()


def _role_changed(m: MatrixOrg, t: Target) -> bool:
    return _membership(t).filter(role=NEW_ROLE).exists()


def _member_removed(m: MatrixOrg, t: Target) -> bool:
    return not _membership(t).exists()


def _area_assigned(m: MatrixOrg, t: Target) -> bool:
    from teams.models import Responsibility

    return Responsibility.objects.filter(
        team_id=t.team_id,
        user_id=t.member_user_id,
        kind="R",
        area=NEW_AREA,
        subject_id__isnull=True,
    ).exists()


def _asset_assigned(m: MatrixOrg, t: Target) -> bool:
    from teams.models import Responsibility

    return Responsibility.objects.filter(
        team_id=t.team_id,
        user_id=t.member_user_id,
        kind="R",
        subject_type_id=m.asset_type_id,
        subject_id=t.asset_id,
        area="",
    ).exists()


def _responsibility_removed(m: MatrixOrg, t: Target) -> bool:
    from teams.models import Responsibility

    return not Responsibility.objects.filter(pk=t.responsibility_id).exists()


def _subteam_created(m: MatrixOrg, t: Target) -> bool:
    from teams.models import Team

    return Team.objects.filter(slug=t.new_slug, parent_id=t.team_id, archived=False).exists()


def _team_edited(m: MatrixOrg, t: Target) -> bool:
    from teams.models import Team

    return Team.objects.filter(
        pk=t.team_id, description=NEW_DESCRIPTION, name=t.name, parent_id=t.parent_id
    ).exists()


@dataclass(frozen=True)
class WriteAction:
    name: str
    refused: str  # "You cannot <refused>: only a lead of <team> or of a team above it can."
    verbs: tuple[str, ...]  # the audit events a success writes, in order
    counts: dict[str, int]  # the row counts a success changes
    effect: Callable[[MatrixOrg, Target], bool]

    def refusal(self, t: Target) -> str:
        return f"You cannot {self.refused}: only a lead of {t.name} or of a team above it can."


ACTIONS = {
    a.name: a
    for a in [
        WriteAction(
            "add_member",
            "add members to this team",
            ("membership.granted",),
            {"memberships": 1, "audit_events": 1},
            _member_added,
        ),
        WriteAction(
            "change_role",
            "change roles in this team",
            ("membership.role_changed",),
            {"audit_events": 1},
            _role_changed,
        ),
        WriteAction(
            "remove_member",
            "remove members from this team",
            ("membership.revoked",),
            {"memberships": -1, "audit_events": 1},
            _member_removed,
        ),
        WriteAction(
            "assign_area",
            "assign responsibilities in this team",
            ("responsibility.assigned",),
            {"responsibilities": 1, "audit_events": 1},
            _area_assigned,
        ),
        WriteAction(
            "assign_asset",
            "assign responsibilities in this team",
            ("responsibility.assigned",),
            {"responsibilities": 1, "audit_events": 1},
            _asset_assigned,
        ),
        WriteAction(
            "remove_responsibility",
            "remove responsibilities in this team",
            ("responsibility.removed",),
            {"responsibilities": -1, "audit_events": 1},
            _responsibility_removed,
        ),
        WriteAction(
            "create_subteam",
            "create a sub-team here",
            ("team.created",),
            {"teams": 1, "audit_events": 1},
            _subteam_created,
        ),
        WriteAction(
            "edit_team",
            "edit this team",
            ("team.updated",),
            {"audit_events": 1},
            _team_edited,
        ),
    ]
}
