"""Who may decide an approval request: the one rule, for every kind of approval (four eyes).

A user may decide a request when all of these hold:

1. it is pending;
2. they are not one of its *excluded persons*: whoever asked for the approval of its subject
   (the requester of this request or of an earlier one on the same subject) or produced the
   subject (its handler's ``authors``: who uploaded a dataset version, who requested a run, who
   requested the run that built an index...);
3. they are active and hold, in a team the request needs, one of the approver roles of that
   team's requirement (the policy snapshot taken when the request was opened);
4. they have not decided on it yet.

Everything that asks "may this user decide" derives from the definitions below:
``decide_check`` (the service's guard and the decide button, with the reason when refused),
``decidable_by`` (the same rule as a filter over ApprovalRequest: the inbox; and as the API's
``can_decide`` column) and
``eligible_approvers`` (who is asked, i.e. notified; ``approvers_by_team``: the same, per team
they would approve for). Approver roles (ApprovalRequirementRole: a row per role of each
requirement) are read only through ``_holds_role`` and ``_role_q``.
tests/governance/test_four_eyes.py checks that the three answers agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, Value

from core.errors import ApplicationError, InvalidTransitionError, PermissionDeniedError
from governance.choices import ApprovalState
from governance.models import ApprovalRequest, ApprovalRequirement, Decision
from teams.models import Membership

OWN_REQUEST = "You cannot decide on your own request."
FOUR_EYES = "four eyes: nobody decides on what they produced or asked for"


@dataclass(frozen=True)
class DecideCheck:
    """The answer of decide_check: allowed, or refused with the reason and the error to raise.

    `excluded` says the refusal is the four-eyes rule (the user produced or asked for the
    subject); `requirements` are those an allowed decision counts toward, the one still short
    of its quorum first."""

    allowed: bool
    reason: str = ""
    error: type[ApplicationError] | None = None
    excluded: bool = False
    requirements: tuple = field(default=())

    def __bool__(self) -> bool:
        return self.allowed

    def raise_if_refused(self) -> None:
        if not self.allowed:
            raise self.error(self.reason)


def _handlers_with_authors(kind: str | None = None) -> list:
    """The subject handlers that name authors (of `kind`, or all)."""
    # The registry lives in the engine, which imports this module.
    from governance.services.approvals import handler_for, registered_handlers

    handlers = [handler_for(kind)] if kind else registered_handlers()
    return [h for h in handlers if h.authors]


# --- the parts of the rule ----------------------------------------------------------------


def excluded_persons(request: ApprovalRequest) -> dict[int, str]:
    """User id -> why they may not decide on `request` (rule 2), the requester first."""
    excluded = {request.requester_id: OWN_REQUEST}
    for handler in _handlers_with_authors(request.kind):
        if request.subject_type_id != ContentType.objects.get_for_model(handler.model).pk:
            continue
        lookups = [lookup for lookup, _what in handler.authors]
        rows = handler.model._default_manager.filter(pk=request.subject_id).values_list(*lookups)
        for row in rows:
            for (_lookup, what), user_id in zip(handler.authors, row, strict=True):
                if user_id is not None:
                    excluded.setdefault(user_id, _excluded_reason(f"you {what}"))
    asked = ApprovalRequest.objects.filter(
        subject_type_id=request.subject_type_id, subject_id=request.subject_id
    ).values_list("requester_id", flat=True)
    for user_id in asked:
        excluded.setdefault(user_id, _excluded_reason("you asked for its approval before"))
    return excluded


def _excluded_reason(what: str) -> str:
    return f"You cannot decide on this request: {what} ({FOUR_EYES})."


def _excluded_q(user) -> Q:
    """Requests `user` is an excluded person of (rule 2), as a filter over ApprovalRequest."""
    asked = Exists(
        ApprovalRequest.objects.filter(
            subject_type=OuterRef("subject_type"),
            subject_id=OuterRef("subject_id"),
            requester=user,
        )
    )
    q = Q(requester=user) | Q(asked)
    for handler in _handlers_with_authors():
        for lookup, _what in handler.authors:
            authored = handler.model._default_manager.filter(
                pk=OuterRef("subject_id"), **{lookup: user}
            )
            q |= Q(
                kind=handler.kind,
                subject_type=ContentType.objects.get_for_model(handler.model),
            ) & Q(Exists(authored))
    return q


def _approver_roles_of(user) -> dict[int, str]:
    """team id -> the user's role there (one membership per team)."""
    if not user.is_authenticated or not user.is_active:
        return {}
    return dict(Membership.objects.filter(user=user).values_list("team_id", "role"))


def _holds_role(role: str | None, requirement: ApprovalRequirement) -> bool:
    """Rule 3 for one requirement, in Python (see _role_q for the same in SQL)."""
    return bool(role) and role in requirement.roles


def _role_q(roles_by_team: dict[int, str]) -> Q:
    """Rule 3 as a filter over ApprovalRequirement (see _holds_role)."""
    q = Q(pk__in=[])
    for team_id, role in roles_by_team.items():
        q |= Q(team_id=team_id, approver_roles__role=role)
    return q


# --- the rule, three ways -----------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What the rule reads of one request, loaded once for any number of users."""

    request: ApprovalRequest
    excluded: dict[int, str]
    requirements: list[ApprovalRequirement]
    decided: set[int]


def _facts(request: ApprovalRequest) -> _Facts:
    return _Facts(
        request=request,
        excluded=excluded_persons(request),
        requirements=list(
            request.requirements.select_related("team")
            .prefetch_related("approver_roles")
            .order_by("id")
        ),
        decided=set(Decision.objects.filter(request=request).values_list("approver_id", flat=True)),
    )


def _check(user, facts: _Facts, roles_by_team: dict[int, str]) -> DecideCheck:
    request = facts.request
    if request.state != ApprovalState.PENDING:
        return DecideCheck(
            False,
            f"This request is already {request.state}: it cannot be decided again.",
            InvalidTransitionError,
        )
    if user.pk in facts.excluded:
        return DecideCheck(False, facts.excluded[user.pk], PermissionDeniedError, excluded=True)
    mine = [r for r in facts.requirements if _holds_role(roles_by_team.get(r.team_id), r)]
    if not mine:
        teams = ", ".join(r.team.name for r in facts.requirements)
        return DecideCheck(
            False,
            f"You cannot decide on this request: it needs approvers of {teams}.",
            PermissionDeniedError,
        )
    if user.pk in facts.decided:
        return DecideCheck(
            False, "You have already decided on this request.", InvalidTransitionError
        )
    # Count toward a team still short of its quorum first.
    return DecideCheck(True, requirements=tuple(sorted(mine, key=lambda r: r.satisfied)))


def decide_check(user, request: ApprovalRequest) -> DecideCheck:
    """May `user` decide `request` now? Allowed, or refused with the reason (see the module
    docstring). The service calls it under the request's row lock."""
    return _check(user, _facts(request), _approver_roles_of(user))


def decidable_by(user) -> Q:
    """The requests `user` may decide now, as a filter over ApprovalRequest (the inbox)."""
    roles_by_team = _approver_roles_of(user)
    if not roles_by_team:
        return Q(pk__in=[])
    holds_role = Exists(
        ApprovalRequirement.objects.filter(_role_q(roles_by_team), request=OuterRef("pk"))
    )
    decided = Exists(Decision.objects.filter(request=OuterRef("pk"), approver=user))
    return Q(state=ApprovalState.PENDING) & Q(holds_role) & ~_excluded_q(user) & ~Q(decided)


def can_decide_annotation(user):
    """decidable_by as a boolean column (`.annotate(can_decide=...)`): the API's decide button."""
    if not _approver_roles_of(user):
        return Value(False)
    return ExpressionWrapper(decidable_by(user), output_field=BooleanField())


def eligible_approvers(request: ApprovalRequest) -> list:
    """The users who may decide `request` now (those notified of it), by username."""
    return [user for user, _check in _allowed(request)]


def approvers_by_team(request: ApprovalRequest) -> dict[int, list]:
    """Team id -> the users who may decide `request` now for that team (they hold one of its
    approver roles there), by username; a team nobody may approve for is absent."""
    by_team: dict[int, list] = {}
    for user, check in _allowed(request):
        for requirement in check.requirements:
            by_team.setdefault(requirement.team_id, []).append(user)
    return by_team


def _allowed(request: ApprovalRequest) -> list[tuple]:
    """(user, allowed DecideCheck) for every user who may decide `request` now, by username:
    in a fixed number of queries."""
    facts = _facts(request)
    roles: dict = {}
    users: dict = {}
    memberships = Membership.objects.filter(
        team_id__in=[r.team_id for r in facts.requirements], user__is_active=True
    ).select_related("user")
    for membership in memberships:
        roles.setdefault(membership.user_id, {})[membership.team_id] = membership.role
        users[membership.user_id] = membership.user
    allowed = [(users[pk], _check(users[pk], facts, roles[pk])) for pk in roles]
    return sorted(
        [(user, check) for user, check in allowed if check], key=lambda a: a[0].get_username()
    )
