"""The allowed state transitions of pipeline runs and index versions, and the guards the
services call before they change a state (as governance/transitions.py does for governed
objects). The predicates answer the same question without raising, for interfaces that offer
an action only when it is allowed."""

from core.errors import InvalidTransitionError
from recsys.choices import IndexStatus, RunState

RUN_TRANSITIONS = {
    # Runs are created awaiting approval (run_request); REQUESTED is the model's default only.
    RunState.REQUESTED: {RunState.AWAITING_APPROVAL, RunState.CANCELLED},
    # Approved by every required team: queued; the approval closed without it, or cancelled.
    RunState.AWAITING_APPROVAL: {RunState.QUEUED, RunState.CANCELLED},
    # A worker starts it, or refuses it at start (failed with the reason); or cancelled.
    RunState.QUEUED: {RunState.RUNNING, RunState.FAILED, RunState.CANCELLED},
    # run_finish's compare-and-set (a cancel request while running ends as cancelled), or the
    # sweep fails it as worker lost.
    RunState.RUNNING: {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED},
    RunState.FAILED: {RunState.QUEUED},  # retried as a new attempt
    RunState.SUCCEEDED: set(),
    RunState.CANCELLED: set(),
}

INDEX_TRANSITIONS = {
    IndexStatus.CANDIDATE: {IndexStatus.ACTIVE},  # activated (approved, passes the gate)
    IndexStatus.ACTIVE: {IndexStatus.RETIRED},  # another index is served instead
    IndexStatus.RETIRED: {IndexStatus.ACTIVE},  # served again by a rollback
}


def run_can_transition(current: str, target: str) -> bool:
    """Whether a run in state `current` may move to `target`."""
    return target in RUN_TRANSITIONS.get(current, set())


def index_can_transition(current: str, target: str) -> bool:
    """Whether an index version in status `current` may move to `target`."""
    return target in INDEX_TRANSITIONS.get(current, set())


def assert_run_transition(current: str, target: str, *, what: str = "The run") -> None:
    """Raise InvalidTransitionError unless a run may move from `current` to `target`."""
    if not run_can_transition(current, target):
        raise InvalidTransitionError(f"{what} is {current}: it cannot become {target}.")


def assert_index_transition(current: str, target: str, *, what: str = "The index") -> None:
    """Raise InvalidTransitionError unless an index version may move from `current` to
    `target`."""
    if not index_can_transition(current, target):
        raise InvalidTransitionError(f"{what} is {current}: it cannot become {target}.")
