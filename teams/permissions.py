"""Permissions follow the org.

Each team has one Django group per role (`team:<slug>:<role>`) and each organization (a root
team's tree) one group of everyone who belongs to it (`org:<root slug>`). Services keep group
membership and the guardian object grants in line with the org:

* view_team on a team   -> the org group of its tree (members of the organization see it);
* the role permissions of ROLE_PERMISSIONS on a team -> that role's group of the team;
* every permission of a lead on a team -> the lead group of every ancestor team
  (a lead manages their team and its sub-teams only).

Permissions on a team's objects (its data assets, later its pipelines) are these team
permissions of the owning team.

Site admins (superusers) may do everything. Only services call the grant helpers.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group, Permission
from django.db.models import QuerySet
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from core.actions import Allowed, Refused, Verdict
from core.errors import NotFoundError, PermissionDeniedError
from teams.choices import Role
from teams.constants import GROUP_ORG, GROUP_TEAM_ROLE
from teams.models import Membership, Team, TeamGroupObjectPermission

VIEW_TEAM = "teams.view_team"
MANAGE_TEAM = "teams.manage_team"
UPLOAD_DATA = "teams.upload_data_team"
STEWARD_DATA = "teams.steward_data_team"
RUN_PIPELINE = "teams.run_pipeline_team"

# What each role may do on its own team (codenames of Team permissions). Leads of ancestor
# teams get the lead's set on every team below them.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    Role.LEAD: {"manage_team", "upload_data_team", "steward_data_team", "run_pipeline_team"},
    Role.STEWARD: {"upload_data_team", "steward_data_team"},
    Role.ENGINEER: {"upload_data_team"},
    Role.OPS: {"run_pipeline_team"},
    Role.VIEWER: set(),
}
_GRANTED_CODENAMES = {"view_team"} | set().union(*ROLE_PERMISSIONS.values())


# --- group names -----------------------------------------------------------------------


def role_group_name(team: Team, role: str) -> str:
    return GROUP_TEAM_ROLE.format(slug=team.slug, role=role)


def org_group_name(root: Team) -> str:
    return GROUP_ORG.format(root_slug=root.slug)


def _ancestry(team_id: int, parent_of: dict[int, int | None]) -> list[int]:
    """The team itself, then its parent, up to the root."""
    chain, current, seen = [], team_id, set()
    while current is not None and current not in seen:
        seen.add(current)
        chain.append(current)
        current = parent_of.get(current)
    return chain


def teams_by_id() -> dict[int, tuple[int | None, str]]:
    """Every team as id -> (parent id, slug): one query; the org tree is small."""
    return {
        tid: (pid, slug) for tid, pid, slug in Team.objects.values_list("id", "parent_id", "slug")
    }


def root_id_of(team_id: int, tree: dict[int, tuple[int | None, str]] | None = None) -> int:
    tree = tree if tree is not None else teams_by_id()
    return _ancestry(team_id, {k: v[0] for k, v in tree.items()})[-1]


# --- grants (services only) -------------------------------------------------------------------


def ensure_team_groups(team: Team) -> None:
    """Create the role groups of a team (and the org group if it is a root)."""
    names = [role_group_name(team, role) for role in Role.values]
    if team.parent_id is None:
        names.append(org_group_name(team))
    existing = set(Group.objects.filter(name__in=names).values_list("name", flat=True))
    Group.objects.bulk_create([Group(name=n) for n in names if n not in existing])


def sync_team_grants(team_ids: Iterable[int] | None = None) -> None:
    """Make the guardian grants on the given teams (default: all) match the org tree.

    A diff against the stored grants, in a constant number of queries: it runs when a team
    is created or moved, never per request.
    """
    tree = teams_by_id()
    parent_of = {tid: parent for tid, (parent, _slug) in tree.items()}
    targets = set(tree) if team_ids is None else set(team_ids) & set(tree)
    if not targets:
        return
    perms = dict(
        Permission.objects.filter(
            content_type__app_label="teams", codename__in=_GRANTED_CODENAMES
        ).values_list("codename", "id")
    )
    wanted: set[tuple[str, str, int]] = set()  # (group name, codename, team id)
    for tid in targets:
        chain = _ancestry(tid, parent_of)
        wanted.add((GROUP_ORG.format(root_slug=tree[chain[-1]][1]), "view_team", tid))
        for role, codenames in ROLE_PERMISSIONS.items():
            group = GROUP_TEAM_ROLE.format(slug=tree[tid][1], role=role)
            wanted.update((group, codename, tid) for codename in codenames)
        for ancestor in chain[1:]:
            group = GROUP_TEAM_ROLE.format(slug=tree[ancestor][1], role=Role.LEAD)
            wanted.update((group, codename, tid) for codename in ROLE_PERMISSIONS[Role.LEAD])
    group_ids = dict(
        Group.objects.filter(name__in={g for g, _c, _t in wanted}).values_list("name", "id")
    )
    expected = {(group_ids[g], perms[c], t) for g, c, t in wanted if g in group_ids and c in perms}
    stored = TeamGroupObjectPermission.objects.filter(
        content_object_id__in=targets, permission_id__in=perms.values()
    ).values_list("id", "group_id", "permission_id", "content_object_id")
    current = {(g, p, t): pk for pk, g, p, t in stored}
    stale = [pk for key, pk in current.items() if key not in expected]
    if stale:
        TeamGroupObjectPermission.objects.filter(pk__in=stale).delete()
    TeamGroupObjectPermission.objects.bulk_create(
        [
            TeamGroupObjectPermission(group_id=g, permission_id=p, content_object_id=t)
            for g, p, t in expected - set(current)
        ]
    )


def subtree_ids(team: Team) -> set[int]:
    """The team and all its descendants."""
    tree = teams_by_id()
    children: dict[int | None, list[int]] = {}
    for tid, (parent, _slug) in tree.items():
        children.setdefault(parent, []).append(tid)
    found, stack = set(), [team.id]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.add(current)
        stack.extend(children.get(current, []))
    return found


def sync_user_groups(user) -> None:
    """Make the user's team and org groups match their memberships."""
    tree = teams_by_id()
    parent_of = {tid: parent for tid, (parent, _slug) in tree.items()}
    wanted = set()
    for team_id, role in Membership.objects.filter(user=user).values_list("team_id", "role"):
        wanted.add(GROUP_TEAM_ROLE.format(slug=tree[team_id][1], role=role))
        root = _ancestry(team_id, parent_of)[-1]
        wanted.add(GROUP_ORG.format(root_slug=tree[root][1]))
    managed = user.groups.filter(name__startswith="team:") | user.groups.filter(
        name__startswith="org:"
    )
    have = {g.name: g for g in managed}
    to_remove = [g for name, g in have.items() if name not in wanted]
    if to_remove:
        user.groups.remove(*to_remove)
    to_add = list(Group.objects.filter(name__in=wanted - set(have)))
    if to_add:
        user.groups.add(*to_add)


# --- predicates ------------------------------------------------------------------------------


def can_view_team(user, team: Team) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(VIEW_TEAM, team))


def can_manage_team(user, team: Team) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(MANAGE_TEAM, team))


def require_view_team(user, team: Team) -> None:
    """Not visible and not existing look the same: 404."""
    if not can_view_team(user, team):
        raise NotFoundError("Team not found.")


def manage_verdict(user, team: Team, action: str = "manage this team") -> Verdict:
    """May `user` do `action` (a lead's action) on `team`? Not found when it is not visible."""
    if not can_view_team(user, team):
        return Refused("Team not found.", NotFoundError)
    if not can_manage_team(user, team):
        return Refused(
            f"You cannot {action}: only a lead of {team.name} or of a team above it can.",
            PermissionDeniedError,
        )
    return Allowed()


def require_manage_team(user, team: Team, action: str = "manage this team") -> None:
    manage_verdict(user, team, action).require()


def teams_with_perm(user, perm: str, queryset: QuerySet[Team] | None = None) -> QuerySet[Team]:
    """Teams on which `user` holds `perm` (object grants only; superusers get all)."""
    if not (user.is_authenticated and user.is_active):
        return Team.objects.none()
    return get_objects_for_user(
        user,
        perm,
        klass=queryset if queryset is not None else Team.objects.all(),
        accept_global_perms=False,
    )


def manage_flags(user, teams: list[Team]) -> dict[int, bool]:
    """can-manage per team for a list page, in one query (no has_perm per row)."""
    if not (user.is_authenticated and user.is_active):
        return {t.id: False for t in teams}
    if user.is_superuser:
        return {t.id: True for t in teams}
    checker = ObjectPermissionChecker(user)
    checker.prefetch_perms(teams)
    return {t.id: checker.has_perm("manage_team", t) for t in teams}
