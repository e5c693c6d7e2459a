"""Reads of the organization, restricted to what the user may see, in constant queries.

Names follow the selectors' one scheme (README, Architecture, "Reads").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Prefetch, Q, QuerySet

from core import subjects
from core.errors import NotFoundError
from teams import permissions
from teams.choices import RaciKind, Role
from teams.models import Membership, Notification, Responsibility, Team

User = get_user_model()


def teams_visible_to(*, user, include_archived: bool = True) -> QuerySet[Team]:
    """Teams the user may see, with member counts; one query."""
    qs = Team.objects.select_related("parent").annotate(member_count=Count("memberships"))
    if not include_archived:
        qs = qs.filter(archived=False)
    return permissions.teams_with_perm(user, permissions.VIEW_TEAM, qs).order_by("name")


def team_get_for_user(*, user, slug: str) -> Team:
    """The team, or NotFoundError when it does not exist or is not visible."""
    team = teams_visible_to(user=user).filter(slug=slug).first()
    if team is None:
        raise NotFoundError("Team not found.")
    return team


@dataclass
class OrgNode:
    team: Team
    leads: list = field(default_factory=list)
    children: list[OrgNode] = field(default_factory=list)
    can_manage: bool = False


def org_chart_visible_to(*, user, include_archived: bool = False) -> list[OrgNode]:
    """The visible team tree with leads and member counts (constant number of queries)."""
    teams = list(
        teams_visible_to(user=user, include_archived=include_archived).prefetch_related(
            Prefetch(
                "memberships",
                queryset=Membership.objects.filter(role=Role.LEAD).select_related("user"),
                to_attr="lead_memberships",
            )
        )
    )
    flags = permissions.manage_flags(user, teams)
    nodes = {
        t.id: OrgNode(team=t, leads=[m.user for m in t.lead_memberships], can_manage=flags[t.id])
        for t in teams
    }
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.team.parent_id)
        (parent.children if parent else roots).append(node)
    return roots


def accountable_for(subject):
    """The accountable person (RACI "A"; at most one) of a governed subject, or None: a gap."""
    responsibility = (
        Responsibility.objects.filter(
            subject_type=ContentType.objects.get_for_model(type(subject)),
            subject_id=subject.pk,
            kind=RaciKind.ACCOUNTABLE,
        )
        .select_related("user")
        .first()
    )
    return responsibility.user if responsibility else None


def memberships_of(*, team: Team) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(team=team)
        .select_related("user")
        .order_by("role", "user__username")
    )


def responsibilities_of_team(*, team: Team) -> list[Responsibility]:
    return list(
        Responsibility.objects.filter(team=team)
        .select_related("user", "team", "subject_type")
        .prefetch_related("subject")
        .order_by("subject_type_id", "subject_id", "area", "kind", "user__username")
    )


@dataclass(frozen=True)
class Gap:
    """A governed subject or area of a team without an accountable person."""

    label: str
    subject: object | None = None
    area: str = ""


def gaps_of(*, team: Team) -> list[Gap]:
    """Subjects the team owns and areas it named, that have no A (one query per subject type)."""
    gaps: list[Gap] = []
    for model in subjects.subject_models():
        ct = ContentType.objects.get_for_model(model)
        with_accountable = Responsibility.objects.filter(
            subject_type=ct, kind=RaciKind.ACCOUNTABLE
        ).values("subject_id")
        for obj in model.objects.filter(owning_team=team).exclude(pk__in=with_accountable):
            gaps.append(Gap(label=f"{model._meta.verbose_name}: {obj}", subject=obj))
    areas = (
        Responsibility.objects.filter(team=team, subject_type__isnull=True)
        .values("area")
        .annotate(accountable=Count("id", filter=Q(kind=RaciKind.ACCOUNTABLE)))
        .filter(accountable=0)
        .order_by("area")
    )
    gaps.extend(Gap(label=f"area: {row['area']}", area=row["area"]) for row in areas)
    return gaps


def subjects_owned_by(*, team: Team) -> list:
    """The governed subjects this team owns (for the assignment form)."""
    found = []
    for model in subjects.subject_models():
        found.extend(model.objects.filter(owning_team=team).order_by("pk"))
    return found


def sub_teams_of(*, team: Team) -> QuerySet[Team]:
    return team.children.annotate(member_count=Count("memberships")).order_by("name")


def members_of_org(*, team: Team) -> QuerySet:
    """Active users with a membership anywhere in the team's organization."""
    tree = permissions.teams_by_id()
    root = permissions.root_id_of(team.id, tree)
    team_ids = [tid for tid in tree if permissions.root_id_of(tid, tree) == root]
    return (
        User.objects.filter(is_active=True, memberships__team_id__in=team_ids)
        .distinct()
        .order_by("username")
    )


def responsibilities_held_by(*, user) -> list[Responsibility]:
    """The user's own responsibilities, everywhere (the "My responsibilities" page)."""
    return list(
        Responsibility.objects.filter(user=user)
        .select_related("team", "subject_type")
        .prefetch_related("subject")
        .order_by("team__name", "kind", "area")
    )


def memberships_visible_to(*, user) -> QuerySet[Membership]:
    """Memberships of the teams the user may see."""
    visible = permissions.teams_with_perm(user, permissions.VIEW_TEAM)
    return (
        Membership.objects.filter(team__in=visible)
        .select_related("user", "team")
        .order_by("team__name", "user__username")
    )


def membership_get_for_user(*, user, pk: int) -> Membership:
    membership = memberships_visible_to(user=user).filter(pk=pk).first()
    if membership is None:
        raise NotFoundError("Membership not found.")
    return membership


def responsibilities_visible_to(*, user) -> QuerySet[Responsibility]:
    """Responsibilities in the teams the user may see."""
    visible = permissions.teams_with_perm(user, permissions.VIEW_TEAM)
    return (
        Responsibility.objects.filter(team__in=visible)
        .select_related("user", "team", "subject_type")
        .prefetch_related("subject")
        .order_by("team__name", "kind", "id")
    )


def responsibility_get_for_user(*, user, pk: int) -> Responsibility:
    responsibility = responsibilities_visible_to(user=user).filter(pk=pk).first()
    if responsibility is None:
        raise NotFoundError("Responsibility not found.")
    return responsibility


def notifications_of(*, user) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient=user)


def notifications_unread_count(*, user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def subject_get_for_user(*, user, type_label: str, subject_id: int):
    """A governed subject by "<app>.<model>" and id, if its owning team is visible to the user."""
    model = next(
        (m for m in subjects.subject_models() if m._meta.label_lower == type_label.lower()), None
    )
    if model is None:
        known = ", ".join(m._meta.label_lower for m in subjects.subject_models())
        raise NotFoundError(f"Unknown subject type '{type_label}'. Known types: {known}.")
    visible = permissions.teams_with_perm(user, permissions.VIEW_TEAM)
    obj = (
        model.objects.filter(pk=subject_id, owning_team__in=visible)
        .select_related("owning_team")
        .first()
    )
    if obj is None:
        raise NotFoundError("Subject not found.")
    return obj


def notification_get_for_user(*, user, pk: int) -> Notification:
    """One of the user's own notifications (404 for anyone else's)."""
    notification = notifications_of(user=user).filter(pk=pk).first()
    if notification is None:
        raise NotFoundError("Notification not found.")
    return notification


def parent_choices_for(*, user, team: Team) -> QuerySet[Team]:
    """Where `user` may move `team`: its current parent, plus any active team they manage
    outside its subtree."""
    movable = (
        permissions.teams_with_perm(user, permissions.MANAGE_TEAM)
        .exclude(pk__in=permissions.subtree_ids(team))
        .filter(archived=False)
        .values("pk")
    )
    return Team.objects.filter(Q(pk=team.parent_id) | Q(pk__in=movable))


def users_by_ids(*, ids: list[int]) -> dict:
    """{id: user} of the users with these ids (the ones that still exist)."""
    return get_user_model().objects.in_bulk(ids)


def active_users_by_username(*, usernames) -> dict:
    """{username: user} of the active users with these usernames."""
    return {
        u.username: u
        for u in get_user_model().objects.filter(username__in=usernames, is_active=True)
    }
