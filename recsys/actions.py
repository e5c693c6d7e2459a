"""What a user may do with a pipeline run or an index version, now: one predicate per kind of
object (see core.actions). The services raise its refusals, the views hand its verdicts to the
templates (booleans) and the API."""

from core.actions import Allowed, Refused, Verdict
from core.errors import PermissionDeniedError, ValidationError
from governance.choices import ApprovalState
from recsys import permissions
from recsys.choices import IndexStatus, RunState
from recsys.transitions import run_can_transition
from teams import permissions as team_perms


def pipeline_actions(user, pipeline, *, active) -> dict[str, Verdict]:
    """Request a run: ops and leads of the owning team. Roll back: the same, when the served
    index (`active`, the pipeline's ActiveIndex or None) has a previous one. Schedule: leads of
    the owning team or of a team above it."""
    return {
        "request_run": permissions.run_verdict(user, pipeline),
        "rollback": _pipeline_rollback(user, pipeline, active),
        "schedule": team_perms.manage_verdict(
            user, pipeline.owning_team, "change the schedule of this pipeline"
        ),
    }


def _pipeline_rollback(user, pipeline, active) -> Verdict:
    allowed = permissions.run_verdict(user, pipeline, "roll back the index of this pipeline")
    if not allowed:
        return allowed
    if active is None or active.previous_id is None:
        return Refused(f"{pipeline.name} has no previous index to roll back to.", ValidationError)
    return Allowed()


def run_actions(user, run) -> dict[str, Verdict]:
    """Cancel: any run not yet finished, once. Retry: a failed run (the start guards re-check
    its approval, inputs and parameters when it is queued again)."""
    return {"cancel": _run_cancel(user, run), "retry": _run_retry(user, run)}


def _run_cancel(user, run) -> Verdict:
    allowed = permissions.run_verdict(user, run.pipeline, "cancel runs of this pipeline")
    if not allowed:
        return allowed
    if not run_can_transition(run.state, RunState.CANCELLED):
        return Refused(f"Run #{run.pk} already {run.state}.", ValidationError)
    if run.state == RunState.RUNNING and run.cancel_requested:
        return Refused(f"Cancelling run #{run.pk} was already requested.", ValidationError)
    return Allowed()


def _run_retry(user, run) -> Verdict:
    allowed = permissions.run_verdict(user, run.pipeline, "retry runs of this pipeline")
    if not allowed:
        return allowed
    if run.state != RunState.FAILED:  # the table also allows failed -> queued for a re-delivery
        return Refused(
            f"Only a failed run can be retried; run #{run.pk} is {run.state}.", ValidationError
        )
    return Allowed()


def index_actions(user, index, *, activation) -> dict[str, Verdict]:
    """Request activation: a candidate with no pending or approved activation request.
    Activate: a candidate whose latest activation request (`activation`, or None) is approved
    (the service then checks the quality gate and the index's files)."""
    return {
        "request_activation": _index_request_activation(user, index, activation),
        "activate": _index_activate(user, index, activation),
    }


def _index_request_activation(user, index, activation) -> Verdict:
    allowed = permissions.run_verdict(user, index.pipeline, "request the activation of this index")
    if not allowed:
        return allowed
    if index.status != IndexStatus.CANDIDATE:
        return Refused(
            f"Index v{index.pk} is {index.status}: only a candidate can be activated.",
            ValidationError,
        )
    if activation is not None and activation.state in (
        ApprovalState.PENDING,
        ApprovalState.APPROVED,
    ):
        return Refused(
            f"Activation of index v{index.pk} is already {activation.state}.", ValidationError
        )
    return Allowed()


def _index_activate(user, index, activation) -> Verdict:
    allowed = permissions.run_verdict(user, index.pipeline, "activate indexes of this pipeline")
    if not allowed:
        return allowed
    if index.status != IndexStatus.CANDIDATE:
        return Refused(f"Index v{index.pk} is {index.status}.", ValidationError)
    if activation is None or activation.state != ApprovalState.APPROVED:
        return Refused(
            f"Index v{index.pk} needs an approved activation request first.",
            PermissionDeniedError,
        )
    return Allowed()
