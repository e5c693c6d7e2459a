"""Creating, editing, moving and archiving teams."""

from __future__ import annotations

from django.db import transaction
from django.utils.text import slugify

from core.audit import audit_record
from core.errors import PermissionDeniedError, ValidationError
from teams import permissions
from teams.constants import MAX_TEAM_DEPTH
from teams.models import Team
from teams.services.validation import full_clean

_UNSET = object()


def _team_state(team: Team) -> dict:
    return {
        "name": team.name,
        "slug": team.slug,
        "description": team.description,
        "parent": team.parent_id,
        "archived": team.archived,
    }


def _check_parent(*, team: Team | None, parent: Team) -> None:
    """A parent must exist, be active, keep the tree acyclic and not too deep."""
    if parent.archived:
        raise ValidationError(
            f"{parent.name} is archived: it cannot take sub-teams.", field="parent"
        )
    tree = permissions.teams_by_id()
    chain = [parent.id]
    current = tree[parent.id][0]
    while current is not None:
        if current in chain:
            raise ValidationError(
                f"The teams above {parent.name} form a cycle: ask a site admin to repair the "
                "team tree before changing it.",
                field="parent",
            )
        chain.append(current)
        current = tree[current][0]
    if team is not None and team.id in chain:
        raise ValidationError(
            f"{parent.name} is {team.name} itself or one of its sub-teams: "
            "that would make a cycle.",
            field="parent",
        )
    height = _subtree_height(team.id, tree) if team is not None else 0
    if len(chain) + 1 + height > MAX_TEAM_DEPTH:
        raise ValidationError(
            f"The team tree may be at most {MAX_TEAM_DEPTH} levels deep.", field="parent"
        )


def _subtree_height(team_id: int, tree: dict) -> int:
    """Levels below `team_id` (0 for a team without sub-teams)."""
    children: dict[int, list[int]] = {}
    for tid, (parent, _slug) in tree.items():
        if parent is not None:
            children.setdefault(parent, []).append(tid)
    height, level, seen = 0, children.get(team_id, []), {team_id}
    while level:
        if seen.intersection(level):
            raise ValidationError(
                "The teams below form a cycle: ask a site admin to repair the team tree "
                "before changing it.",
                field="parent",
            )
        seen.update(level)
        height += 1
        level = [child for tid in level for child in children.get(tid, [])]
    return height


def _lock_organizations(*team_ids: int) -> None:
    """Serialise structural changes of an organization: lock the root row of each given team's
    tree, in id order (so two changes never wait on each other crosswise). Taken before any
    team row and before the tree is read for the cycle and depth checks, so a second move in
    the same organization waits and then checks the tree the first one left."""
    tree = permissions.teams_by_id()
    for root_id in sorted({permissions.root_id_of(tid, tree) for tid in team_ids}):
        Team.objects.select_for_update().get(pk=root_id)


@transaction.atomic
def team_create(
    *, actor, name: str, parent: Team | None, slug: str = "", description: str = ""
) -> Team:
    """Create a team under `parent` (a lead of the parent), or an organization root (admins)."""
    if parent is None:
        if not actor.is_superuser:
            raise PermissionDeniedError(
                "Only site admins can create a new organization (a team without a parent)."
            )
    else:
        # Re-read under a lock: an archive happening at the same time must be seen.
        _lock_organizations(parent.pk)
        parent = Team.objects.select_for_update().get(pk=parent.pk)
        permissions.require_manage_team(actor, parent, "create a sub-team here")
        _check_parent(team=None, parent=parent)
    slug = slug or slugify(name)[:60]
    if not slug:
        raise ValidationError("Give the team a name with letters or digits.", field="name")
    if Team.objects.filter(slug=slug).exists():
        raise ValidationError(
            f"The slug '{slug}' is taken by another team; choose another.", field="slug"
        )
    team = Team(name=name.strip(), slug=slug, description=description, parent=parent)
    full_clean(team, exclude=["parent"])
    team.save()
    permissions.ensure_team_groups(team)
    permissions.sync_team_grants({team.id})
    audit_record(actor=actor, verb="team.created", target=team, after=_team_state(team))
    return team


@transaction.atomic
def team_update(
    *, actor, team: Team, name=_UNSET, description=_UNSET, parent=_UNSET, archived=_UNSET
) -> Team:
    """Rename, describe, move (within the organization) or archive/restore a team."""
    if parent is not _UNSET and parent is not None:
        _lock_organizations(team.pk, parent.pk)
    team = Team.objects.select_for_update().get(pk=team.pk)
    permissions.require_manage_team(actor, team, "edit this team")
    before = _team_state(team)
    moved = parent is not _UNSET and (parent.id if parent else None) != team.parent_id
    if moved:
        _move_team(actor=actor, team=team, parent=parent)
    if name is not _UNSET:
        team.name = name.strip()
    if description is not _UNSET:
        team.description = description
    if archived is not _UNSET and archived != team.archived:
        _check_archive(team=team, archived=archived)
        team.archived = archived
    full_clean(team, exclude=["parent"])
    after = _team_state(team)
    if after == before:
        raise ValidationError("Nothing to change.")
    team.save()
    if moved:
        permissions.sync_team_grants(permissions.subtree_ids(team))
    audit_record(actor=actor, verb="team.updated", target=team, before=before, after=after)
    return team


def _move_team(*, actor, team: Team, parent: Team | None) -> None:
    if parent is None or team.parent_id is None:
        raise ValidationError(
            "A team cannot leave or become the root of its organization.", field="parent"
        )
    permissions.require_manage_team(actor, parent, f"move {team.name} under {parent.name}")
    _check_parent(team=team, parent=parent)
    tree = permissions.teams_by_id()
    if permissions.root_id_of(parent.id, tree) != permissions.root_id_of(team.id, tree):
        raise ValidationError("A team can only move within its own organization.", field="parent")
    team.parent = parent


def _check_archive(*, team: Team, archived: bool) -> None:
    if archived and team.children.filter(archived=False).exists():
        raise ValidationError(f"Archive the sub-teams of {team.name} first.", field="archived")
    if not archived and team.parent_id and team.parent.archived:
        raise ValidationError(
            f"Restore {team.parent.name} first: it is archived.", field="archived"
        )
