"""Pipelines: owned, governed objects with input assets, default parameters and an optional
schedule (a cron expression: see recsys/services/schedules.py)."""

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from core.audit import audit_record
from core.errors import ValidationError
from recsys.actions import pipeline_actions
from recsys.models import Pipeline
from recsys.services.run_validation import validate_parameters
from recsys.services.schedules import clean_schedule
from teams import permissions as team_perms


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
    schedule: str = "",
) -> Pipeline:
    """Register a pipeline owned by `owning_team` (its leads or above). A schedule counts its
    slots from now on: none already past is due."""
    team_perms.require_manage_team(actor, owning_team, "register pipelines for this team")
    slug = slug or slugify(name)[:60]
    if Pipeline.objects.filter(slug=slug).exists():
        raise ValidationError(f"The slug '{slug}' is taken by another pipeline.", field="slug")
    schedule = clean_schedule(schedule)
    pipeline = Pipeline(
        name=name.strip(),
        slug=slug,
        owning_team=owning_team,
        description=description,
        default_parameters={},
        schedule=schedule,
        schedule_last_slot=timezone.now() if schedule else None,
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
            "schedule": pipeline.schedule,
        },
    )
    return pipeline


@transaction.atomic
def pipeline_set_schedule(*, actor, pipeline: Pipeline, schedule: str) -> Pipeline:
    """Set, change or clear ("") the pipeline's cron schedule (its team's leads or above, as
    for registering it: runs are then requested in its accountable person's name). The new
    schedule counts its slots from now on: a slot already past is not due."""
    pipeline = (
        Pipeline.objects.select_for_update(of=("self",))
        .select_related("owning_team")
        .get(pk=pipeline.pk)
    )
    pipeline_actions(actor, pipeline, active=None)["schedule"].require()
    schedule = clean_schedule(schedule)
    before = {"schedule": pipeline.schedule, "schedule_last_slot": pipeline.schedule_last_slot}
    pipeline.schedule = schedule
    pipeline.schedule_last_slot = timezone.now() if schedule else None
    pipeline.save(update_fields=["schedule", "schedule_last_slot"])
    audit_record(
        actor=actor,
        verb="pipeline.schedule_set",
        target=pipeline,
        before=before,
        after={"schedule": schedule, "schedule_last_slot": pipeline.schedule_last_slot},
    )
    return pipeline
