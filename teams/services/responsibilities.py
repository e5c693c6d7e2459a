"""RACI assignments on governed subjects and on named areas of a team."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from core import subjects
from core.audit import audit_record
from core.errors import ValidationError
from teams import permissions
from teams.choices import RaciKind
from teams.models import Membership, Responsibility, Team
from teams.services.validation import full_clean


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
            accountable_hand_over(
                actor=actor, responsibility=current, successor=user, leaving=current.user
            )
            return current
    responsibility = Responsibility(team=team, user=user, kind=kind, area=area, note=note.strip())
    if subject is not None:
        responsibility.subject = subject
    full_clean(responsibility, exclude=["subject_type", "subject_id"])
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


def accountable_hand_over(*, actor, responsibility: Responsibility, successor, leaving) -> None:
    """Hand an A over from `leaving` to `successor` (the caller has checked permission)."""
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
    responsibility_delete(actor=actor, responsibility=responsibility, reason="removed by a lead")


def responsibility_delete(*, actor, responsibility: Responsibility, reason: str) -> None:
    """Delete an assignment, audited with `reason` (the caller has checked permission)."""
    before = _responsibility_state(responsibility)
    audit_record(
        actor=actor,
        verb="responsibility.removed",
        target=responsibility,
        before=before,
        after={"reason": reason},
    )
    responsibility.delete()
