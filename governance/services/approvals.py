"""The generic approval engine: dataset versions, pipeline runs and index activations.

A request needs the approval of every required team (quorum and approver roles from each team's
policy, snapshotted at request time). Decisions are row-locked transitions; who may decide is
one rule (governance/deciders.py: never whoever asked for or produced the subject); a changed
subject (content hash) invalidates the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.audit import audit_record
from core.errors import InvalidTransitionError, PermissionDeniedError, ValidationError
from governance.choices import ApprovalState, Verdict
from governance.constants import (
    DEFAULT_APPROVER_ROLES,
    DEFAULT_APPROVER_ROLES_BY_KIND,
    DEFAULT_QUORUM,
)
from governance.deciders import decide_check, eligible_approvers
from governance.models import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalRequirement,
    ApprovalRequirementRole,
    Decision,
)
from governance.transitions import assert_transition
from teams.services import notification_send

User = get_user_model()


@dataclass(frozen=True)
class SubjectHandler:
    """How the engine treats one kind of subject; registered by the app that owns the subject."""

    kind: str
    content_hash: Callable  # (subject) -> str
    required_teams: Callable  # (subject) -> list[Team]
    on_approved: Callable  # (actor, subject, request) -> None, inside the decision transaction
    on_closed: Callable  # (actor, subject, request) -> None: rejected, expired or cancelled
    link: Callable  # (subject) -> str, the subject's page
    latency_hours: Callable = lambda subject: None  # approval-latency SLA, hours
    # Who produced the subject, so may not decide on it (four eyes): (lookup from `model` to a
    # user, what they did), e.g. ("uploaded_by", "uploaded it"). Read by governance.deciders.
    authors: tuple[tuple[str, str], ...] = ()
    model: type | None = None  # the subject's model; needed when `authors` are given


_handlers: dict[str, SubjectHandler] = {}


def register_subject_handler(handler: SubjectHandler) -> None:
    _handlers[handler.kind] = handler


def handler_for(kind: str) -> SubjectHandler:
    return _handlers[kind]


def registered_handlers() -> list[SubjectHandler]:
    return list(_handlers.values())


def _state(request: ApprovalRequest) -> dict:
    return {
        "state": request.state,
        "requirements": {
            r.team.slug: f"{r.approvals}/{r.quorum}"
            for r in request.requirements.select_related("team")
        },
    }


@transaction.atomic
def approval_request_open(*, actor, kind: str, subject, reason: str = "") -> ApprovalRequest:
    """Ask every team that owns the subject (and its inputs) to approve it."""
    handler = handler_for(kind)
    now = timezone.now()
    teams = list({t.pk: t for t in handler.required_teams(subject)}.values())
    if not teams:
        raise ValidationError("Nothing to approve: the subject has no owning team.")
    policies = {
        p.team_id: p
        for p in ApprovalPolicy.objects.filter(team__in=teams, kind=kind).prefetch_related(
            "approver_roles"
        )
    }
    expiry = min((p.expiry_hours for p in policies.values() if p.expiry_hours), default=None)
    latency = handler.latency_hours(subject)
    request = ApprovalRequest.objects.create(
        kind=kind,
        subject_type=ContentType.objects.get_for_model(subject),
        subject_id=subject.pk,
        requester=actor,
        reason=reason.strip(),
        content_hash=handler.content_hash(subject),
        expires_at=now + timedelta(hours=expiry) if expiry else None,
        due_at=now + timedelta(hours=latency) if latency else None,
    )
    roles = []
    for team in teams:
        policy = policies.get(team.pk)
        requirement = ApprovalRequirement.objects.create(
            request=request, team=team, quorum=policy.quorum if policy else DEFAULT_QUORUM
        )
        roles += [
            ApprovalRequirementRole(requirement=requirement, role=role)
            for role in (policy.roles if policy else default_approver_roles(kind))
        ]
    ApprovalRequirementRole.objects.bulk_create(roles)
    audit_record(actor=actor, verb="approval.requested", target=request, after=_state(request))
    _notify_approvers(request=request, subject=subject, handler=handler)
    return request


def default_approver_roles(kind: str) -> list[str]:
    return DEFAULT_APPROVER_ROLES_BY_KIND.get(kind, DEFAULT_APPROVER_ROLES)


def _notify_approvers(*, request, subject, handler) -> None:
    for user in eligible_approvers(request):
        notification_send(
            recipient=user,
            subject=f"Approval needed: {subject}",
            body=f"{request.requester.get_username()} asks for approval. {request.reason}".strip(),
            link=handler.link(subject),
        )


def approval_decide(*, actor, request: ApprovalRequest, verdict: str, comment: str = ""):
    """Approve or reject, under a row lock. Returns the request in its new state.

    An expired request or a changed subject closes the request (committed) and then refuses.
    """
    with transaction.atomic():
        request, refusal = _decide_locked(
            actor=actor, request_id=request.pk, verdict=verdict, comment=comment.strip()
        )
    if refusal is not None:
        raise refusal
    return request


def _decide_locked(*, actor, request_id: int, verdict: str, comment: str):
    request = ApprovalRequest.objects.select_for_update().get(pk=request_id)
    if verdict not in Verdict.values:
        raise ValidationError("The verdict must be approve or reject.", field="verdict")
    check = decide_check(actor, request)
    check.raise_if_refused()
    if verdict == Verdict.REJECT and not comment:
        raise ValidationError("A rejection needs a comment saying why.", field="comment")
    handler = handler_for(request.kind)
    subject = request.subject
    if request.expires_at and request.expires_at <= timezone.now():
        _close(
            actor=None,
            request=request,
            state=ApprovalState.EXPIRED,
            note="expired",
            handler=handler,
            subject=subject,
        )
        return request, InvalidTransitionError(
            "This request has expired: it can no longer be decided."
        )
    if subject is None or handler.content_hash(subject) != request.content_hash:
        _close(
            actor=None,
            request=request,
            state=ApprovalState.CANCELLED,
            note="the subject changed after the request",
            handler=handler,
            subject=subject,
        )
        return request, InvalidTransitionError(
            "The subject changed after approval was requested: the request is invalidated."
        )
    request = _record_decision(
        actor=actor,
        request=request,
        requirement=check.requirements[0],
        verdict=verdict,
        comment=comment,
        handler=handler,
        subject=subject,
    )
    return request, None


_DECISION_VERBS = {Verdict.APPROVE: "approval.approved", Verdict.REJECT: "approval.rejected"}


def _record_decision(*, actor, request, requirement, verdict, comment, handler, subject):
    before = _state(request)
    Decision.objects.create(
        request=request, approver=actor, team=requirement.team, verdict=verdict, comment=comment
    )
    if verdict == Verdict.REJECT:
        assert_transition("approval", request.state, ApprovalState.REJECTED, what="the request")
        request.state = ApprovalState.REJECTED
    else:
        ApprovalRequirement.objects.filter(pk=requirement.pk).update(approvals=F("approvals") + 1)
        if all(r.approvals >= r.quorum for r in request.requirements.all()):
            request.state = ApprovalState.APPROVED
    if request.state != ApprovalState.PENDING:
        request.decided_at = timezone.now()
        request.save(update_fields=["state", "decided_at"])
    audit_record(
        actor=actor,
        verb=_DECISION_VERBS[verdict],
        target=request,
        before=before,
        after={**_state(request), "comment": comment},
    )
    if request.state == ApprovalState.APPROVED:
        handler.on_approved(actor, subject, request)
    elif request.state == ApprovalState.REJECTED:
        handler.on_closed(actor, subject, request)
    if request.state != ApprovalState.PENDING:
        _notify_requester(request=request, subject=subject, handler=handler, comment=comment)
    return request


def _notify_requester(*, request, subject, handler, comment: str = "") -> None:
    notification_send(
        recipient=request.requester,
        subject=f"{subject}: approval {request.state}",
        body=comment or request.outcome_note,
        link=handler.link(subject) if subject is not None else "",
    )


def _close(*, actor, request, state: str, note: str, handler, subject) -> None:
    assert_transition("approval", request.state, state, what="the request")
    before = {"state": request.state}
    request.state = state
    request.decided_at = timezone.now()
    request.outcome_note = note[:300]
    request.save(update_fields=["state", "decided_at", "outcome_note"])
    audit_record(
        actor=actor,
        verb=f"approval.{state}",
        target=request,
        before=before,
        after={"state": state, "note": note},
    )
    if subject is not None:
        handler.on_closed(actor, subject, request)
    _notify_requester(request=request, subject=subject, handler=handler)


@transaction.atomic
def approval_cancel(*, actor, request: ApprovalRequest, reason: str = "") -> ApprovalRequest:
    """The requester (or a site admin) withdraws a pending request."""
    request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
    if request.requester_id != actor.pk and not actor.is_superuser:
        raise PermissionDeniedError("Only the requester can cancel this request.")
    if request.state != ApprovalState.PENDING:
        raise InvalidTransitionError(f"This request is already {request.state}.")
    handler = handler_for(request.kind)
    _close(
        actor=actor,
        request=request,
        state=ApprovalState.CANCELLED,
        note=reason.strip() or "cancelled by the requester",
        handler=handler,
        subject=request.subject,
    )
    return request


@transaction.atomic
def approval_withdraw(*, actor, request: ApprovalRequest, reason: str) -> ApprovalRequest:
    """The subject's own service closes its pending request because `actor` cancelled the
    subject (that service checked that they may): cancelled, recorded as done by `actor`."""
    request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
    if request.state != ApprovalState.PENDING:
        raise InvalidTransitionError(f"This request is already {request.state}.")
    _close(
        actor=actor,
        request=request,
        state=ApprovalState.CANCELLED,
        note=reason,
        handler=handler_for(request.kind),
        subject=request.subject,
    )
    return request


def approvals_expire_due(*, now=None) -> int:
    """Expire pending requests past their expiry (beat; idempotent)."""
    now = now or timezone.now()
    expired = 0
    due = ApprovalRequest.objects.filter(state=ApprovalState.PENDING, expires_at__lte=now)
    for request_id in due.values_list("id", flat=True):
        with transaction.atomic():
            request = ApprovalRequest.objects.select_for_update().get(pk=request_id)
            if request.state != ApprovalState.PENDING:
                continue
            handler = handler_for(request.kind)
            _close(
                actor=None,
                request=request,
                state=ApprovalState.EXPIRED,
                note="expired",
                handler=handler,
                subject=request.subject,
            )
            expired += 1
    return expired


def approvals_escalate_overdue(*, now=None) -> int:
    """Past the approval-latency SLA, notify the required teams' leads (level 1), then after
    another window their parent teams' leads (level 2). Idempotent: each level is sent once."""
    now = now or timezone.now()
    escalated = 0
    overdue = ApprovalRequest.objects.filter(
        state=ApprovalState.PENDING, due_at__lte=now, escalation_level__lt=2
    )
    for request_id in overdue.values_list("id", flat=True):
        with transaction.atomic():
            request = ApprovalRequest.objects.select_for_update().get(pk=request_id)
            level = _escalation_level_due(request, now)
            if request.state != ApprovalState.PENDING or level <= request.escalation_level:
                continue
            _escalate(request=request, level=level)
            escalated += 1
    return escalated


def _escalation_level_due(request, now) -> int:
    window = request.due_at - request.created_at
    return 2 if now >= request.due_at + window else 1


def _escalate(*, request, level: int) -> None:
    requirements = list(request.requirements.select_related("team__parent"))
    teams = (
        [r.team for r in requirements]
        if level == 1
        else [r.team.parent for r in requirements if r.team.parent_id]
    )
    leads = User.objects.filter(
        memberships__team__in=teams, memberships__role="lead", is_active=True
    ).distinct()
    handler = handler_for(request.kind)
    subject = request.subject
    for lead in leads:
        notification_send(
            recipient=lead,
            subject=f"Overdue approval: {subject}",
            body=f"Approval #{request.pk} has waited past its SLA (escalation level {level}).",
            link=handler.link(subject) if subject is not None else "",
        )
    before = {"escalation_level": request.escalation_level}
    request.escalation_level = level
    request.escalated_at = timezone.now()
    request.save(update_fields=["escalation_level", "escalated_at"])
    audit_record(
        actor=None,
        verb="approval.escalated",
        target=request,
        before=before,
        after={"escalation_level": level, "notified": [u.username for u in leads]},
    )
