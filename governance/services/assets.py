"""Data assets and their SLAs."""

from django.db import transaction
from django.utils.text import slugify

from core.audit import audit_record
from core.errors import PermissionDeniedError, ValidationError
from governance import permissions as asset_perms
from governance.choices import AssetKind, Classification
from governance.models import AssetSLA, DataAsset
from teams import permissions
from teams.models import Team

_UNSET = object()


def _asset_state(asset: DataAsset) -> dict:
    return {
        "name": asset.name,
        "slug": asset.slug,
        "kind": asset.kind,
        "owning_team": asset.owning_team.slug,
        "classification": asset.classification,
        "description": asset.description,
        "retention_days": asset.retention_days,
        "schema_contract": asset.schema_contract,
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
    """Register a data asset owned by `owning_team` (its stewards and leads)."""
    permissions.require_view_team(actor, owning_team)
    if not actor.has_perm(permissions.STEWARD_DATA, owning_team):
        raise PermissionDeniedError(
            f"You cannot register data assets for {owning_team.name}: only its stewards and "
            "leads can."
        )
    if owning_team.archived:
        raise ValidationError(f"{owning_team.name} is archived: it cannot own new assets.")
    if kind not in AssetKind.values:
        raise ValidationError(f"Unknown asset kind '{kind}'.", field="kind")
    if classification not in Classification.values:
        raise ValidationError(f"Unknown classification '{classification}'.", field="classification")
    _check_contract(schema_contract)
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


def _check_contract(contract: dict | None) -> None:
    if not contract:
        return
    from governance import profiling  # pandas: imported only where it is needed

    try:
        profiling.SchemaContract.from_dict(contract or None)
    except ValueError as exc:
        raise ValidationError(f"Schema contract: {exc}", field="schema_contract") from None


@transaction.atomic
def dataasset_update(
    *,
    actor,
    asset: DataAsset,
    name=_UNSET,
    description=_UNSET,
    classification=_UNSET,
    retention_days=_UNSET,
    schema_contract=_UNSET,
) -> DataAsset:
    """Edit an asset's description, classification, retention or schema contract."""
    asset = (
        DataAsset.objects.select_for_update(of=("self",))
        .select_related("owning_team")
        .get(pk=asset.pk)
    )
    asset_perms.require_steward(actor, asset, "edit this asset")
    before = _asset_state(asset)
    if classification is not _UNSET and classification not in Classification.values:
        raise ValidationError(f"Unknown classification '{classification}'.", field="classification")
    if schema_contract is not _UNSET:
        _check_contract(schema_contract)
    for field, value in {
        "name": name,
        "description": description,
        "classification": classification,
        "retention_days": retention_days,
        "schema_contract": schema_contract,
    }.items():
        if value is not _UNSET:
            setattr(asset, field, value.strip() if isinstance(value, str) else value)
    after = _asset_state(asset)
    if after == before:
        raise ValidationError("Nothing to change.")
    asset.save()
    audit_record(actor=actor, verb="dataasset.updated", target=asset, before=before, after=after)
    return asset


SLA_FIELDS = (
    "freshness_hours",
    "min_rows",
    "max_null_rate",
    "column_max_null_rates",
    "max_duplicate_rate",
    "enforce_schema",
    "approval_latency_hours",
)


def _sla_state(sla: AssetSLA) -> dict:
    return {field: getattr(sla, field) for field in SLA_FIELDS}


@transaction.atomic
def assetsla_update(*, actor, asset: DataAsset, **values) -> AssetSLA:
    """Set the asset's SLA thresholds (None: not checked); re-evaluates incidents."""
    asset = (
        DataAsset.objects.select_for_update(of=("self",))
        .select_related("owning_team")
        .get(pk=asset.pk)
    )
    asset_perms.require_steward(actor, asset, "change the SLA of this asset")
    unknown = set(values) - set(SLA_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown SLA field(s): {', '.join(sorted(unknown))}.")
    for rate_field in ("max_null_rate", "max_duplicate_rate"):
        rate = values.get(rate_field)
        if rate is not None and not 0 <= rate <= 1:
            raise ValidationError(f"{rate_field} must be between 0 and 1.", field=rate_field)
    for column, rate in (values.get("column_max_null_rates") or {}).items():
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValidationError(
                f"The null-rate limit of {column} must be between 0 and 1.",
                field="column_max_null_rates",
            )
    sla, _created = AssetSLA.objects.get_or_create(asset=asset)
    before = _sla_state(sla)
    for field, value in values.items():
        setattr(sla, field, value if value is not None or field != "column_max_null_rates" else {})
    sla.save()
    audit_record(
        actor=actor, verb="assetsla.updated", target=sla, before=before, after=_sla_state(sla)
    )
    from governance.services.incidents import sla_evaluate_asset

    sla_evaluate_asset(asset=asset)
    return sla
