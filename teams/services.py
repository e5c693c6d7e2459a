"""Every state change of the organization: permission check -> validation -> write -> audit.

Each function takes the acting user, runs in one transaction and writes one audit event per
changed object. Side effects (e-mail) leave only after commit.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from core import subjects
from core.audit import audit_record
from core.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from core.queueing import enqueue_on_commit
from teams import permissions
from teams.choices import RaciKind, Role
from teams.constants import MAX_TEAM_DEPTH
from teams.models import Membership, Notification, Responsibility, Team

logger = logging.getLogger(__name__)

User = get_user_model()
_UNSET = object()


def _team_state(team: Team) -> dict:
    return {
        "name": team.name,
        "slug": team.slug,
        "description": team.description,
        "parent": team.parent_id,
        "archived": team.archived,
    }


def _full_clean(obj, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ValidationError(f"{field}: {' '.join(messages)}", field=field) from exc


# --- teams -------------------------------------------------------------------------------------


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
    _full_clean(team, exclude=["parent"])
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
    _full_clean(team, exclude=["parent"])
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


# --- memberships -------------------------------------------------------------------------------


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
            _responsibility_delete(
                actor=actor, responsibility=responsibility, reason="accountable member removed"
            )
        else:
            _accountable_hand_over(
                actor=actor, responsibility=responsibility, successor=successor, leaving=user
            )
    for other in Responsibility.objects.filter(team=team, user=user).exclude(
        kind=RaciKind.ACCOUNTABLE
    ):
        _responsibility_delete(actor=actor, responsibility=other, reason="member removed")
    before = {"user": user.get_username(), "team": team.slug, "role": membership.role}
    audit_record(actor=actor, verb="membership.revoked", target=membership, before=before)
    membership.delete()
    _drop_responsibilities_outside_org(actor=actor, user=user, team=team)
    permissions.sync_user_groups(user)
    if gaps:
        _notify_leads_of_gaps(team=team, gaps=gaps, removed=user, actor=actor)


def _accountable_hand_over(*, actor, responsibility: Responsibility, successor, leaving) -> None:
    if successor.pk == leaving.pk:
        raise ValidationError("The successor must be someone other than the member being removed.")
    if not successor.is_active:
        raise ValidationError(
            f"{successor.get_username()} is deactivated: choose an active member."
        )
    if not Membership.objects.filter(team_id=responsibility.team_id, user=successor).exists():
        raise ValidationError(
            f"{successor.get_username()} is not a member of {responsibility.team.name}: "
            "the accountable person must belong to the owning team."
        )
    Responsibility.objects.filter(
        team_id=responsibility.team_id,
        user=successor,
        kind=RaciKind.ACCOUNTABLE,
        subject_type_id=responsibility.subject_type_id,
        subject_id=responsibility.subject_id,
        area=responsibility.area,
    ).exclude(pk=responsibility.pk).delete()
    before = {"user": leaving.get_username()}
    responsibility.user = successor
    responsibility.save(update_fields=["user"])
    audit_record(
        actor=actor,
        verb="responsibility.reassigned",
        target=responsibility,
        before=before,
        after={"user": successor.get_username()},
    )


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
        _responsibility_delete(
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


# --- responsibilities --------------------------------------------------------------------------


def _responsibility_state(r: Responsibility) -> dict:
    return {
        "user": r.user.get_username(),
        "kind": r.kind,
        "team": r.team.slug,
        "subject": f"{r.subject_type_id}:{r.subject_id}" if r.subject_id else None,
        "area": r.area,
        "note": r.note,
    }


@transaction.atomic
def responsibility_assign(
    *,
    actor,
    user,
    kind: str,
    subject=None,
    team: Team | None = None,
    area: str = "",
    note: str = "",
    replace: bool = False,
) -> Responsibility:
    """Give `user` an R/A/C/I on a governed subject (its owning team's) or on an area of `team`.

    At most one A per subject/area, and the A is a member of the owning team. With
    `replace=True` an existing A is handed over to `user` instead of refused.
    """
    area = (area or "").strip()
    if (subject is None) == (not area):
        raise ValidationError(
            "Choose either a governed subject or a named area (exactly one).", field="subject"
        )
    if subject is not None:
        if not subjects.is_governed(type(subject)):
            raise ValidationError(
                f"{type(subject).__name__} is not a governed subject type.", field="subject"
            )
        team = subject.owning_team
    if team is None:
        raise ValidationError("An area belongs to a team: choose the team.", field="team")
    permissions.require_manage_team(actor, team, "assign responsibilities in this team")
    if kind not in RaciKind.values:
        raise ValidationError(
            f"Unknown RACI kind '{kind}'. Choose one of R, A, C, I.", field="kind"
        )
    _check_holder(user=user, kind=kind, team=team)
    where = _subject_filter(subject=subject, team=team, area=area)
    if Responsibility.objects.filter(user=user, kind=kind, **where).exists():
        raise ValidationError(
            f"{user.get_username()} already holds {kind} on {subject or area}.", field="user"
        )
    if kind == RaciKind.ACCOUNTABLE:
        current = (
            Responsibility.objects.select_for_update()
            .filter(kind=kind, **where)
            .select_related("user", "team")
            .first()
        )
        if current and not replace:
            raise ValidationError(
                f"{current.user.get_username()} is already accountable for {subject or area}: "
                "there is at most one accountable person. "
                "Replace them or remove that assignment first.",
                field="kind",
            )
        if current:
            _accountable_hand_over(
                actor=actor, responsibility=current, successor=user, leaving=current.user
            )
            return current
    responsibility = Responsibility(team=team, user=user, kind=kind, area=area, note=note.strip())
    if subject is not None:
        responsibility.subject = subject
    _full_clean(responsibility, exclude=["subject_type", "subject_id"])
    try:
        with transaction.atomic():
            responsibility.save()
    except IntegrityError:
        raise ValidationError(
            "Someone changed these responsibilities at the same time; reload and try again."
        ) from None
    audit_record(
        actor=actor,
        verb="responsibility.assigned",
        target=responsibility,
        after=_responsibility_state(responsibility),
    )
    return responsibility


def _subject_filter(*, subject, team: Team, area: str) -> dict:
    if subject is not None:
        from django.contrib.contenttypes.models import ContentType

        return {
            "subject_type": ContentType.objects.get_for_model(subject),
            "subject_id": subject.pk,
        }
    return {"team": team, "area": area, "subject_type__isnull": True}


def _check_holder(*, user, kind: str, team: Team) -> None:
    if not user.is_active:
        raise ValidationError(f"{user.get_username()} is deactivated.", field="user")
    if kind == RaciKind.ACCOUNTABLE:
        if not Membership.objects.filter(team=team, user=user).exists():
            raise ValidationError(
                f"{user.get_username()} is not a member of {team.name}: "
                "the accountable person must belong to the owning team.",
                field="user",
            )
        return
    tree = permissions.teams_by_id()
    root = permissions.root_id_of(team.id, tree)
    member_roots = {
        permissions.root_id_of(tid, tree)
        for tid in Membership.objects.filter(user=user).values_list("team_id", flat=True)
    }
    if root not in member_roots:
        raise ValidationError(
            f"{user.get_username()} is not a member of this organization.", field="user"
        )


@transaction.atomic
def responsibility_remove(*, actor, responsibility: Responsibility) -> None:
    """Remove an assignment; removing the A leaves the subject as a reported gap."""
    responsibility = (
        Responsibility.objects.select_for_update(of=("self",))
        .select_related("team", "user")
        .get(pk=responsibility.pk)
    )
    permissions.require_manage_team(
        actor, responsibility.team, "remove responsibilities in this team"
    )
    _responsibility_delete(actor=actor, responsibility=responsibility, reason="removed by a lead")


def _responsibility_delete(*, actor, responsibility: Responsibility, reason: str) -> None:
    before = _responsibility_state(responsibility)
    audit_record(
        actor=actor,
        verb="responsibility.removed",
        target=responsibility,
        before=before,
        after={"reason": reason},
    )
    responsibility.delete()


# --- notifications -----------------------------------------------------------------------------


# Control characters (line breaks above all: Django refuses a header holding one) and the
# Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """`text` as a single header-safe line: control characters become spaces, runs of spaces
    one. A subject names teams and assets, whose names may hold a newline."""
    return " ".join(_CONTROL.sub(" ", text).split())


def notification_send(*, recipient, subject: str, body: str = "", link: str = "") -> Notification:
    """An in-app notification; its e-mail copy is sent by a worker after commit."""
    from teams.tasks import notification_email_send_task

    notification = Notification.objects.create(
        recipient=recipient, subject=one_line(subject)[:200], body=body, link=link
    )
    enqueue_on_commit(notification_email_send_task, notification.id)
    return notification


def notification_email_send(*, notification_id: int) -> bool:
    """Send the e-mail copy of a notification: at least once, never lost.

    `emailed_at` is set only once the mail server has taken the mail (a short transaction,
    compare-and-set, audited), so a worker that dies mid-send leaves it pending for the sweep
    (a copy may then go out twice; none is lost). The SMTP conversation (EMAIL_TIMEOUT) runs
    outside any transaction, holding no lock: on SQLite the database's one write lock. A failed
    send is audited and raised, to be retried. False when there is nothing (left) to send."""
    notification = (
        Notification.objects.select_related("recipient")
        .filter(pk=notification_id, emailed_at__isnull=True)
        .first()
    )
    if notification is None:
        return False
    try:
        _notification_email_deliver(notification)
    except Exception as exc:
        audit_record(
            actor=None,
            verb="notification.email_failed",
            target=notification,
            after={"to": notification.recipient.email, "error": str(exc)[:500]},
        )
        raise
    with transaction.atomic():
        sent = Notification.objects.filter(pk=notification.pk, emailed_at__isnull=True).update(
            emailed_at=timezone.now()
        )
        if not sent:  # another delivery recorded it meanwhile
            return False
        audit_record(
            actor=None,
            verb="notification.emailed",
            target=notification,
            after={"to": notification.recipient.email or "(no address)"},
        )
    return True


def _notification_email_deliver(notification: Notification) -> None:
    """Hand the notification's e-mail to the mail server (nothing when it has no address)."""
    from django.conf import settings
    from django.core.mail import send_mail

    if notification.recipient.email:
        link = f"{settings.STEWARD_BASE_URL}{notification.link}" if notification.link else ""
        send_mail(
            subject=f"[Steward] {one_line(notification.subject)}",
            message=f"{notification.body}\n\n{link}".strip(),
            from_email=None,
            recipient_list=[notification.recipient.email],
        )


def notifications_deliver_pending(*, older_than_seconds: int = 120) -> int:
    """Send e-mail copies that were missed (e.g. the broker was down at commit time). Each is
    sent on its own: one that fails is logged and stays pending for the next sweep, and the
    others are still sent."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = Notification.objects.filter(emailed_at__isnull=True, created_at__lt=cutoff)
    sent = 0
    for notification_id in pending.values_list("id", flat=True)[:500]:
        try:
            sent += notification_email_send(notification_id=notification_id)
        except Exception:  # a bad address, a refusing server...: the others still go out
            logger.exception(
                "could not e-mail notification %s; the next sweep retries", notification_id
            )
    return sent


@transaction.atomic
def notification_mark_read(*, actor, notification: Notification) -> Notification:
    """Mark one of the actor's own notifications as read."""
    if notification.recipient_id != actor.pk:
        raise NotFoundError("Notification not found.")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
        audit_record(actor=actor, verb="notification.read", target=notification)
    return notification
