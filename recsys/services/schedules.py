"""Pipeline schedules: a pipeline's optional cron expression ("m h dom mon dow", in the server's
TIME_ZONE, parsed by celery's crontab: day of month and day of week must both match) asks for a
full retrain at each of its slots.

The beat job (`schedules_run`, every minute) requests, for each pipeline whose latest slot is
newer than the last one it handled, a full retrain with the newest approved input versions,
in the name of the pipeline's accountable person (RACI "A"). That run waits for every approval
like any other. Without an accountable person, a usable input or the right to run, the slot is
skipped with the reason (audited, the team's leads notified) and nothing runs.

Idempotent: a slot is claimed by a compare-and-set of `Pipeline.schedule_last_slot` before
anything is requested, so two beats firing together request at most one run per slot. A slot
missed while beat was down is caught up once (the latest only), never replayed one by one.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import ApplicationError, ValidationError
from governance.selectors import dataset_versions
from recsys.choices import RunKind
from recsys.models import Pipeline
from recsys.services.run_validation import REQUIRED_INPUT_KINDS, USABLE_INPUT_STATES
from teams.choices import Role
from teams.selectors import accountable_for

if TYPE_CHECKING:
    from governance.models import DatasetVersion

logger = logging.getLogger(__name__)
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
CRON_HELP = "minute hour day-of-month month day-of-week, e.g. '0 3 * * 1' (Mondays at 03:00)"


def parse_schedule(expression: str):
    """A celery crontab for a 5-field cron expression, or a ValidationError naming the field
    at fault."""
    from celery.schedules import crontab

    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValidationError(
            f"'{expression}' is not a cron expression: it needs 5 fields ({CRON_HELP}).",
            field="schedule",
        )
    for name, value in zip(CRON_FIELDS, fields, strict=True):
        try:
            crontab(**{name: value})
        except (ValueError, TypeError, IndexError) as exc:
            raise ValidationError(
                f"Bad {name.replace('_', ' ')} '{value}' in schedule '{expression}': {exc}",
                field="schedule",
            ) from None
    try:
        return crontab(**dict(zip(CRON_FIELDS, fields, strict=True)))
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            f"Schedule '{expression}' never runs: {exc}", field="schedule"
        ) from None


def clean_schedule(expression: str) -> str:
    """The expression normalised (single spaces), "" for no schedule; refused if invalid."""
    expression = " ".join((expression or "").split())
    longest = Pipeline._meta.get_field("schedule").max_length
    if len(expression) > longest:
        raise ValidationError(
            f"A schedule has at most {longest} characters ({CRON_HELP}).", field="schedule"
        )
    if expression:
        parse_schedule(expression)
    return expression


def latest_slot(cron, *, after: datetime, now: datetime) -> datetime | None:
    """The latest minute t with after < t <= now that `cron` matches, or None. Walks back one
    day at a time from `now` to `after` (a cheap set lookup per day)."""
    local_now = timezone.localtime(now).replace(second=0, microsecond=0)
    first_day = timezone.localtime(after).date()
    day = local_now.date()
    while day >= first_day:
        found = _last_time_of_day(cron, day, local_now)
        if found is not None:
            slot = timezone.make_aware(datetime.combine(day, found))
            return slot if slot > after else None
        day -= timedelta(days=1)
    return None


def _last_time_of_day(cron, day: date, local_now: datetime) -> time | None:
    if not (
        day.month in cron.month_of_year
        and day.day in cron.day_of_month
        and day.isoweekday() % 7 in cron.day_of_week
    ):
        return None
    today = day == local_now.date()
    for hour in sorted(cron.hour, reverse=True):
        if today and hour > local_now.hour:
            continue
        minutes = [
            m
            for m in cron.minute
            if not (today and hour == local_now.hour) or m <= local_now.minute
        ]
        if minutes:
            return time(hour, max(minutes))
    return None


def schedules_run(*, now: datetime | None = None) -> dict:
    """The beat job: handle the due slot of every scheduled pipeline (see module docstring).
    Returns counts: requested, skipped, not_due."""
    now = now or timezone.now()
    counts = {"requested": 0, "skipped": 0, "not_due": 0}
    for pipeline_id in Pipeline.objects.exclude(schedule="").values_list("pk", flat=True):
        try:
            counts[schedule_fire(pipeline_id=pipeline_id, now=now)] += 1
        except Exception:  # one pipeline's trouble never stops the others
            logger.exception("schedule of pipeline %s failed", pipeline_id)
    return counts


@transaction.atomic
def schedule_fire(*, pipeline_id: int, now: datetime) -> str:
    """Claim the pipeline's latest due slot, then request its run or record why not:
    "requested", "skipped" or "not_due"."""
    pipeline = (
        Pipeline.objects.select_for_update(of=("self",))
        .select_related("owning_team")
        .get(pk=pipeline_id)
    )
    previous = pipeline.schedule_last_slot
    try:
        cron = parse_schedule(pipeline.schedule)
    except ValidationError as exc:  # only a write that bypassed the services can store one
        logger.error("pipeline %s: %s", pipeline.slug, exc.message)
        return "skipped"
    slot = latest_slot(cron, after=previous or pipeline.created_at, now=now)
    if slot is None:
        return "not_due"
    # Compare-and-set: of two beats that both saw this slot due, only one claims it.
    if not _claim(pipeline, previous, slot):
        return "not_due"
    return _request(pipeline, previous, slot)


def _claim(pipeline: Pipeline, previous: datetime | None, slot: datetime) -> bool:
    same = {"schedule_last_slot": previous} if previous else {"schedule_last_slot__isnull": True}
    claimed = Pipeline.objects.filter(pk=pipeline.pk, **same).update(schedule_last_slot=slot)
    pipeline.schedule_last_slot = slot
    return claimed == 1


def _request(pipeline: Pipeline, previous: datetime | None, slot: datetime) -> str:
    from recsys.services.runs import run_request

    accountable = accountable_for(pipeline)
    if accountable is None:
        return _skip(pipeline, previous, slot, "the pipeline has no accountable person (RACI A)")
    inputs, missing = newest_approved_inputs(pipeline)
    if missing:
        return _skip(
            pipeline, previous, slot, f"no approved {' or '.join(sorted(missing))} version"
        )
    try:
        run = run_request(
            actor=accountable,
            pipeline=pipeline,
            kind=RunKind.FULL_RETRAIN,
            inputs=inputs,
            reason=f"Scheduled retrain (cron {pipeline.schedule}) for the slot of "
            f"{timezone.localtime(slot):%Y-%m-%d %H:%M %Z}",
        )
    except ApplicationError as exc:
        return _skip(pipeline, previous, slot, f"the request was refused: {exc.message}")
    _audit(pipeline, previous, slot, verb="pipeline.schedule_requested", run=run.pk)
    _notify(
        [accountable],
        pipeline,
        subject=f"{pipeline.name}: scheduled retrain #{run.pk} requested in your name",
        body=f"{run.reason}. It waits for the approvals of the teams owning its inputs.",
        link=f"/recsys/runs/{run.pk}/",
    )
    return "requested"


def _skip(pipeline: Pipeline, previous, slot: datetime, reason: str) -> str:
    """Record the skipped slot with its reason; the team's leads and the accountable person
    are told, once for a run of slots skipped for the same reason (a minutely cron with no
    accountable person notifies once, not every minute)."""
    logger.warning("scheduled retrain of %s skipped: %s", pipeline.slug, reason)
    repeated = _last_skip_reason(pipeline) == reason
    _audit(pipeline, previous, slot, verb="pipeline.schedule_skipped", reason=reason)
    if repeated:
        return "skipped"
    recipients = [*_leads(pipeline)]
    accountable = accountable_for(pipeline)
    if accountable is not None and accountable not in recipients:
        recipients.append(accountable)
    _notify(
        recipients,
        pipeline,
        subject=f"{pipeline.name}: scheduled retrain skipped",
        body=f"The retrain due at {timezone.localtime(slot):%Y-%m-%d %H:%M %Z} (cron "
        f"{pipeline.schedule}) was not requested: {reason}.",
        link=f"/recsys/pipelines/{pipeline.slug}/",
    )
    return "skipped"


def _last_skip_reason(pipeline: Pipeline) -> str | None:
    """The reason of the pipeline's last schedule event if it was a skip, else None."""
    from core.models import AuditEvent

    last = (
        AuditEvent.objects.filter(
            target_type=ContentType.objects.get_for_model(Pipeline),
            target_id=str(pipeline.pk),
            verb__in=["pipeline.schedule_requested", "pipeline.schedule_skipped"],
        )
        .order_by("-id")
        .values_list("verb", "after")
        .first()
    )
    if last is None or last[0] != "pipeline.schedule_skipped":
        return None
    return (last[1] or {}).get("reason")


def _audit(pipeline: Pipeline, previous, slot: datetime, *, verb: str, **after) -> None:
    audit_record(
        actor=None,
        verb=verb,
        target=pipeline,
        before={"schedule_last_slot": previous},
        after={"schedule": pipeline.schedule, "schedule_last_slot": slot, **after},
    )


def _notify(recipients, pipeline: Pipeline, *, subject: str, body: str, link: str) -> None:
    from teams.services import notification_send

    for user in recipients:
        notification_send(recipient=user, subject=subject, body=body, link=link)


def _leads(pipeline: Pipeline) -> list:
    from django.contrib.auth import get_user_model

    return list(
        get_user_model().objects.filter(
            memberships__team=pipeline.owning_team,
            memberships__role=Role.LEAD,
            is_active=True,
        )
    )


def newest_approved_inputs(pipeline: Pipeline) -> tuple[list[DatasetVersion], set[str]]:
    """The newest usable version of each input asset, and the input kinds a full retrain
    needs that have none."""
    newest: dict[int, DatasetVersion] = {}
    versions = dataset_versions(assets=pipeline.input_assets.all(), statuses=USABLE_INPUT_STATES)
    for version in versions.order_by("asset_id", "-number"):
        newest.setdefault(version.asset_id, version)
    kinds = {v.asset.kind for v in newest.values()}
    return list(newest.values()), set(REQUIRED_INPUT_KINDS[RunKind.FULL_RETRAIN]) - kinds
