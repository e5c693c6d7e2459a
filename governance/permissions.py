"""Permissions on governed objects are the team permissions of the owning team
(see teams/permissions.py: they follow the org)."""

from core.errors import NotFoundError, PermissionDeniedError
from teams import permissions as team_perms


def can_view_asset(user, asset) -> bool:
    return team_perms.can_view_team(user, asset.owning_team)


def can_upload(user, asset) -> bool:
    return bool(user.is_active and user.has_perm(team_perms.UPLOAD_DATA, asset.owning_team))


def can_steward(user, asset) -> bool:
    return bool(user.is_active and user.has_perm(team_perms.STEWARD_DATA, asset.owning_team))


def require_view_asset(user, asset) -> None:
    if not can_view_asset(user, asset):
        raise NotFoundError("Data asset not found.")


def require_upload(user, asset) -> None:
    require_view_asset(user, asset)
    if not can_upload(user, asset):
        raise PermissionDeniedError(
            f"You cannot upload versions of {asset.name}: only engineers, stewards and leads "
            f"of {asset.owning_team.name} can."
        )


def require_steward(user, asset, action: str = "change this asset") -> None:
    require_view_asset(user, asset)
    if not can_steward(user, asset):
        raise PermissionDeniedError(
            f"You cannot {action}: only stewards and leads of {asset.owning_team.name} can."
        )
