"""The allowed state transitions of governed objects, and the one guard services call."""

from core.actions import Allowed, Refused, Verdict
from core.errors import InvalidTransitionError
from governance.choices import ApprovalState, IncidentStatus, VersionStatus

VERSION_TRANSITIONS = {
    VersionStatus.DRAFT: {VersionStatus.SUBMITTED},
    VersionStatus.SUBMITTED: {VersionStatus.APPROVED, VersionStatus.REJECTED, VersionStatus.DRAFT},
    VersionStatus.APPROVED: {VersionStatus.SUPERSEDED, VersionStatus.DEPRECATED},
    VersionStatus.REJECTED: set(),
    VersionStatus.SUPERSEDED: {VersionStatus.DEPRECATED},
    VersionStatus.DEPRECATED: set(),
}

APPROVAL_TRANSITIONS = {
    ApprovalState.PENDING: {
        ApprovalState.APPROVED,
        ApprovalState.REJECTED,
        ApprovalState.EXPIRED,
        ApprovalState.CANCELLED,
    },
    ApprovalState.APPROVED: set(),
    ApprovalState.REJECTED: set(),
    ApprovalState.EXPIRED: set(),
    ApprovalState.CANCELLED: set(),
}

INCIDENT_TRANSITIONS = {
    IncidentStatus.OPEN: {IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED},
    IncidentStatus.ACKNOWLEDGED: {IncidentStatus.RESOLVED},
    IncidentStatus.RESOLVED: set(),
}

_TABLES = {
    "version": VERSION_TRANSITIONS,
    "approval": APPROVAL_TRANSITIONS,
    "incident": INCIDENT_TRANSITIONS,
}


def transition_verdict(machine: str, current: str, target: str, *, what: str = "") -> Verdict:
    """Allowed when `current -> target` is in the machine's table, else refused with an
    InvalidTransitionError."""
    if target in _TABLES[machine].get(current, set()):
        return Allowed()
    label = what or machine
    return Refused(
        f"{label.capitalize()} is {current}: it cannot become {target}.", InvalidTransitionError
    )


def assert_transition(machine: str, current: str, target: str, *, what: str = "") -> None:
    """Raise InvalidTransitionError unless `current -> target` is in the machine's table."""
    transition_verdict(machine, current, target, what=what).require()
