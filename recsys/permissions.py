"""Permissions on pipelines are team permissions of the owning team (they follow the org)."""

from core.actions import Allowed, Refused, Verdict
from core.errors import NotFoundError, PermissionDeniedError
from teams import permissions as team_perms


def can_view_pipeline(user, pipeline) -> bool:
    return team_perms.can_view_team(user, pipeline.owning_team)


def can_run(user, pipeline) -> bool:
    return bool(user.is_active and user.has_perm(team_perms.RUN_PIPELINE, pipeline.owning_team))


def can_view_and_run(user, pipeline) -> bool:
    """can_view_pipeline and can_run together, from one read of the user's object permissions
    on the owning team (the search request path)."""
    from guardian.core import ObjectPermissionChecker

    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    perms = set(ObjectPermissionChecker(user).get_perms(pipeline.owning_team))
    return {_codename(team_perms.VIEW_TEAM), _codename(team_perms.RUN_PIPELINE)} <= perms


def _codename(perm: str) -> str:
    return perm.split(".", 1)[1]


def require_view_pipeline(user, pipeline) -> None:
    if not can_view_pipeline(user, pipeline):
        raise NotFoundError("Pipeline not found.")


def run_verdict(user, pipeline, action: str = "request runs of this pipeline") -> Verdict:
    """May `user` do `action` (a run-permission action) on `pipeline`? Not found when it is
    not visible to them, so a refusal never reveals it."""
    visible, runs = _access(user, pipeline)
    if not visible:
        return Refused("Pipeline not found.", NotFoundError)
    if not runs:
        return Refused(
            f"You cannot {action}: only ops and leads of {pipeline.owning_team.name} can.",
            PermissionDeniedError,
        )
    return Allowed()


def _access(user, pipeline) -> tuple[bool, bool]:
    """(may view, may run) for `user` on this pipeline object, read once per object and user:
    a page asks it for the pipeline and each of its index versions."""
    known = pipeline.__dict__.setdefault("_access_by_user", {})
    seen = known.get(id(user))  # by identity: unsaved and anonymous users have no pk
    if seen is None or seen[0] is not user:
        visible = can_view_pipeline(user, pipeline)
        seen = known[id(user)] = (user, (visible, visible and can_run(user, pipeline)))
    return seen[1]


def require_run(user, pipeline, action: str = "request runs of this pipeline") -> None:
    run_verdict(user, pipeline, action).require()
