"""What a user may do with a dataset version or an incident, now: one predicate per kind of
object (see core.actions). The services raise its refusals, the views hand its verdicts to the
templates (booleans). Deciding an approval request is governance.deciders.decide_check."""

from core.actions import Refused, Verdict
from core.errors import PermissionDeniedError, ValidationError
from governance import permissions
from governance.choices import IncidentStatus, ProfileStatus, VersionStatus
from governance.transitions import transition_verdict


def version_actions(user, version) -> dict[str, Verdict]:
    """Submit: a profiled draft, by its uploaders. Deprecate: an approved or superseded
    version, by its stewards."""
    return {
        "submit": _version_submit(user, version),
        "deprecate": _version_deprecate(user, version),
    }


def _version_submit(user, version) -> Verdict:
    allowed = permissions.upload_verdict(user, version.asset)
    if not allowed:
        return allowed
    if version.profile_status != ProfileStatus.SUCCEEDED:
        return Refused(
            "Only a profiled version can be submitted: "
            + (
                f"profiling failed ({version.profile_error})."
                if version.profile_error
                else "its profile is not ready yet."
            ),
            ValidationError,
        )
    return transition_verdict(
        "version", version.status, VersionStatus.SUBMITTED, what="the version"
    )


def _version_deprecate(user, version) -> Verdict:
    allowed = permissions.steward_verdict(user, version.asset, "deprecate versions of this asset")
    if not allowed:
        return allowed
    return transition_verdict(
        "version", version.status, VersionStatus.DEPRECATED, what="the version"
    )


def incident_actions(user, incident) -> dict[str, Verdict]:
    """Acknowledge: an open incident, by the accountable person, a steward or a lead."""
    return {"acknowledge": _incident_acknowledge(user, incident)}


def _incident_acknowledge(user, incident) -> Verdict:
    allowed = permissions.view_verdict(user, incident.asset)
    if not allowed:
        return allowed
    if incident.assigned_to_id != user.pk and not permissions.can_steward(user, incident.asset):
        return Refused(
            "Only the accountable person, stewards and leads of "
            f"{incident.asset.owning_team.name} can acknowledge this incident.",
            PermissionDeniedError,
        )
    return transition_verdict(
        "incident", incident.status, IncidentStatus.ACKNOWLEDGED, what="the incident"
    )
