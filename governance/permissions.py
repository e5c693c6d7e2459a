"""Permissions on governed objects are the team permissions of the owning team
(see teams/permissions.py: they follow the org)."""

from core.actions import Allowed, Refused, Verdict
from core.errors import NotFoundError, PermissionDeniedError
from teams import permissions as team_perms


def can_view_asset(user, asset) -> bool:
    return team_perms.can_view_team(user, asset.owning_team)


def can_upload(user, asset) -> bool:
    return bool(user.is_active and user.has_perm(team_perms.UPLOAD_DATA, asset.owning_team))


def can_steward(user, asset) -> bool:
    return bool(user.is_active and user.has_perm(team_perms.STEWARD_DATA, asset.owning_team))


def view_verdict(user, asset) -> Verdict:
    """Not found (never "forbidden") when `user` may not see `asset`."""
    if not can_view_asset(user, asset):
        return Refused("Data asset not found.", NotFoundError)
    return Allowed()


def upload_verdict(user, asset) -> Verdict:
    if not can_view_asset(user, asset):
        return view_verdict(user, asset)
    if not can_upload(user, asset):
        return Refused(
            f"You cannot upload versions of {asset.name}: only engineers, stewards and leads "
            f"of {asset.owning_team.name} can.",
            PermissionDeniedError,
        )
    return Allowed()


def steward_verdict(user, asset, action: str = "change this asset") -> Verdict:
    if not can_view_asset(user, asset):
        return view_verdict(user, asset)
    if not can_steward(user, asset):
        return Refused(
            f"You cannot {action}: only stewards and leads of {asset.owning_team.name} can.",
            PermissionDeniedError,
        )
    return Allowed()


def require_view_asset(user, asset) -> None:
    view_verdict(user, asset).require()


def require_upload(user, asset) -> None:
    upload_verdict(user, asset).require()


def require_steward(user, asset, action: str = "change this asset") -> None:
    steward_verdict(user, asset, action).require()
