"""State changes of governance. Data assets for now; versions, SLAs and approvals build on it."""

from django.db import transaction
from django.utils.text import slugify

from governance.audit import audit_record
from governance.choices import AssetKind, Classification
from governance.models import DataAsset
from teams import permissions
from teams.errors import ValidationError
from teams.models import Team


def _asset_state(asset: DataAsset) -> dict:
    return {
        "name": asset.name,
        "slug": asset.slug,
        "kind": asset.kind,
        "owning_team": asset.owning_team.slug,
        "classification": asset.classification,
        "description": asset.description,
    }


@transaction.atomic
def dataasset_create(
    *,
    actor,
    name: str,
    kind: str,
    owning_team: Team,
    slug: str = "",
    classification: str = Classification.INTERNAL,
    description: str = "",
    retention_days: int | None = None,
    schema_contract: dict | None = None,
) -> DataAsset:
    """Register a data asset owned by `owning_team` (a lead of that team or above)."""
    permissions.require_manage_team(actor, owning_team, "register data assets for this team")
    if owning_team.archived:
        raise ValidationError(f"{owning_team.name} is archived: it cannot own new assets.")
    if kind not in AssetKind.values:
        raise ValidationError(f"Unknown asset kind '{kind}'.", field="kind")
    if classification not in Classification.values:
        raise ValidationError(f"Unknown classification '{classification}'.", field="classification")
    slug = slug or slugify(name)[:60]
    if DataAsset.objects.filter(slug=slug).exists():
        raise ValidationError(f"The slug '{slug}' is taken by another asset.", field="slug")
    asset = DataAsset.objects.create(
        name=name.strip(),
        slug=slug,
        kind=kind,
        owning_team=owning_team,
        classification=classification,
        description=description,
        retention_days=retention_days,
        schema_contract=schema_contract or {},
    )
    audit_record(actor=actor, verb="dataasset.created", target=asset, after=_asset_state(asset))
    return asset
