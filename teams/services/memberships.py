"""Adding members, changing their role and removing them (with their responsibilities)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from core.audit import audit_record
from core.errors import ConflictError, ValidationError
from teams import permissions
from teams.choices import RaciKind, Role
from teams.models import Membership, Responsibility, Team
from teams.services.notifications import notification_send
from teams.services.responsibilities import accountable_hand_over, responsibility_delete

User = get_user_model()


def user_by_username(username: str):
    """The active user with this username, or a clear error."""
    try:
        return User.objects.get(username=username.strip(), is_active=True)
    except User.DoesNotExist:
        raise ValidationError(
            f"No active user with the username '{username.strip()}'.", field="user"
        ) from None


def _lead_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.LEAD).count()


@transaction.atomic
def membership_grant(*, actor, team: Team, user, role: str) -> Membership:
    """Add `user` to `team` with `role` (leads of the team or above)."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    permissions.require_manage_team(actor, team, "add members to this team")
    if team.archived:
        raise ValidationError(f"{team.name} is archived: restore it before adding members.")
    if role not in Role.values:
        raise ValidationError(
            f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.", field="role"
        )
    if not user.is_active:
        raise ValidationError(f"{user.get_username()} is deactivated.", field="user")
    existing = Membership.objects.filter(team=team, user=user).first()
    if existing:
        raise ValidationError(
            f"{user.get_username()} is already a member of {team.name} "
            f"({existing.get_role_display()}); change their role instead.",
            field="user",
        )
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
    except IntegrityError:
        raise ValidationError(
            f"{user.get_username()} is already a member of {team.name}.", field="user"
        ) from None
    permissions.sync_user_groups(user)
    audit_record(
        actor=actor,
        verb="membership.granted",
        target=membership,
        after={"user": user.get_username(), "team": team.slug, "role": role},
    )
    return membership


@transaction.atomic
def membership_change_role(*, actor, membership: Membership, role: str) -> Membership:
    """Give a member another role in the same team."""
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("team", "user")
        .get(pk=membership.pk)
    )
    permissions.require_manage_team(actor, membership.team, "change roles in this team")
    if role not in Role.values:
        raise ValidationError(
            f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.", field="role"
        )
    if role == membership.role:
        raise ValidationError(
            f"{membership.user.get_username()} already has the role "
            f"{membership.get_role_display()}.",
            field="role",
        )
    _refuse_last_lead(actor=actor, membership=membership)
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    permissions.sync_user_groups(membership.user)
    audit_record(
        actor=actor,
        verb="membership.role_changed",
        target=membership,
        before=before,
        after={"role": role},
    )
    return membership


def _refuse_last_lead(*, actor, membership: Membership) -> None:
    if (
        membership.role == Role.LEAD
        and _lead_count(membership.team) == 1
        and not actor.is_superuser
    ):
        raise ValidationError(
            f"{membership.user.get_username()} is the last lead of {membership.team.name}: "
            "make someone else lead first."
        )


def accountable_held(membership: Membership) -> list[Responsibility]:
    """The A responsibilities a member holds in their team (they need a decision on removal)."""
    return list(
        Responsibility.objects.filter(
            team_id=membership.team_id, user_id=membership.user_id, kind=RaciKind.ACCOUNTABLE
        )
        .prefetch_related("subject")
        .select_related("team")
    )


@transaction.atomic
def membership_revoke(
    *, actor, membership: Membership, successors: dict[int, object] | None = None
) -> None:
    """Remove a member. Each subject they are accountable for needs a decision first:
    `successors[responsibility_id]` is the new accountable member, or None to leave the subject
    without one (a reported gap; the team's leads are notified).
    """
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("team", "user")
        .get(pk=membership.pk)
    )
    team, user = membership.team, membership.user
    permissions.require_manage_team(actor, team, "remove members from this team")
    _refuse_last_lead(actor=actor, membership=membership)
    successors = successors or {}
    held = accountable_held(membership)
    undecided = [r for r in held if r.id not in successors]
    if undecided:
        raise ConflictError(
            f"{user.get_username()} is accountable for "
            f"{', '.join(r.subject_label for r in undecided)}: "
            "name a successor for each, or leave it explicitly without one.",
            extra={"undecided": [r.id for r in undecided]},
        )
    gaps = []
    for responsibility in held:
        successor = successors[responsibility.id]
        if successor is None:
            gaps.append(responsibility.subject_label)
            responsibility_delete(
                actor=actor, responsibility=responsibility, reason="accountable member removed"
            )
        else:
            accountable_hand_over(
                actor=actor, responsibility=responsibility, successor=successor, leaving=user
            )
    for other in Responsibility.objects.filter(team=team, user=user).exclude(
        kind=RaciKind.ACCOUNTABLE
    ):
        responsibility_delete(actor=actor, responsibility=other, reason="member removed")
    before = {"user": user.get_username(), "team": team.slug, "role": membership.role}
    audit_record(actor=actor, verb="membership.revoked", target=membership, before=before)
    membership.delete()
    _drop_responsibilities_outside_org(actor=actor, user=user, team=team)
    permissions.sync_user_groups(user)
    if gaps:
        _notify_leads_of_gaps(team=team, gaps=gaps, removed=user, actor=actor)


def _drop_responsibilities_outside_org(*, actor, user, team: Team) -> None:
    """R/C/I held on subjects of an organization the user no longer belongs to."""
    tree = permissions.teams_by_id()
    root = permissions.root_id_of(team.id, tree)
    still_in_org = any(
        permissions.root_id_of(tid, tree) == root
        for tid in Membership.objects.filter(user=user).values_list("team_id", flat=True)
    )
    if still_in_org:
        return
    org_team_ids = [tid for tid in tree if permissions.root_id_of(tid, tree) == root]
    for responsibility in Responsibility.objects.filter(user=user, team_id__in=org_team_ids):
        responsibility_delete(
            actor=actor, responsibility=responsibility, reason="left the organization"
        )


def _notify_leads_of_gaps(*, team: Team, gaps: list[str], removed, actor) -> None:
    leads = User.objects.filter(memberships__team=team, memberships__role=Role.LEAD, is_active=True)
    for lead in leads:
        notification_send(
            recipient=lead,
            subject=f"{team.name}: no accountable person for {len(gaps)} subject(s)",
            body=(
                f"{actor.get_username()} removed {removed.get_username()} from {team.name} and "
                f"left these without an accountable person: {', '.join(gaps)}. "
                "Assign one on the team page."
            ),
            link=f"/teams/{team.slug}/",
        )
