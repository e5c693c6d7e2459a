"""Pipelines: owned, governed objects with input assets and default parameters."""

from django.db import transaction
from django.utils.text import slugify

from governance.audit import audit_record
from recsys.models import Pipeline
from teams import permissions as team_perms
from teams.errors import ValidationError


@transaction.atomic
def pipeline_create(
    *,
    actor,
    name: str,
    owning_team,
    input_assets,
    slug: str = "",
    description: str = "",
    default_parameters: dict | None = None,
) -> Pipeline:
    """Register a pipeline owned by `owning_team` (its leads or above)."""
    from recsys.services.runs import validate_parameters

    team_perms.require_manage_team(actor, owning_team, "register pipelines for this team")
    slug = slug or slugify(name)[:60]
    if Pipeline.objects.filter(slug=slug).exists():
        raise ValidationError(f"The slug '{slug}' is taken by another pipeline.", field="slug")
    pipeline = Pipeline(
        name=name.strip(),
        slug=slug,
        owning_team=owning_team,
        description=description,
        default_parameters={},
    )
    validate_parameters(pipeline, default_parameters or {})
    pipeline.default_parameters = default_parameters or {}
    pipeline.save()
    pipeline.input_assets.set(input_assets)
    audit_record(
        actor=actor,
        verb="pipeline.created",
        target=pipeline,
        after={
            "name": pipeline.name,
            "owning_team": owning_team.slug,
            "inputs": sorted(a.slug for a in input_assets),
            "parameters": pipeline.default_parameters,
        },
    )
    return pipeline
