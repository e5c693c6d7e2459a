"""Pipeline schedules: cron expressions validated where pipelines are created or edited, and
the every-minute beat job that requests a full retrain at each due slot, in the accountable
person's name, at most once per slot, or records why it did not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from core.errors import PermissionDeniedError, ValidationError
from core.models import AuditEvent
from governance import services as gov
from recsys import services
from recsys.models import Pipeline, PipelineRun
from recsys.services import schedules
from teams import services as team_services
from teams.models import Notification
from tests.conftest import api_as, login
from tests.recsys.pipeline_setup import build_pipeline_org, run_approval

pytestmark = pytest.mark.django_db
T0 = datetime(2030, 1, 7, 0, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def porg(org, settings, tmp_path, tiny_model_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TIME_ZONE = "UTC"
    return build_pipeline_org(org, tiny_model_path)


def _schedule(org, expression: str, *, accountable: str | None = "beta.lead") -> Pipeline:
    """Schedule the pipeline, counting slots from T0, with `accountable` as its A."""
    if accountable:
        team_services.responsibility_assign(
            actor=org.admin, user=org.user(accountable), kind="A", subject=org.pipeline
        )
    services.pipeline_set_schedule(
        actor=org.user("beta.lead"), pipeline=org.pipeline, schedule=expression
    )
    Pipeline.objects.filter(pk=org.pipeline.pk).update(schedule_last_slot=T0)
    return Pipeline.objects.get(pk=org.pipeline.pk)


def _events(verb: str):
    return AuditEvent.objects.filter(verb=verb, target_type__model="pipeline")


def test_a_due_slot_requests_one_full_retrain_that_waits_for_approval(porg):
    pipeline = _schedule(porg, "0 3 * * *")
    assert services.schedules_run(now=T0 + timedelta(hours=2, minutes=59)) == {
        "requested": 0,
        "skipped": 0,
        "not_due": 1,
    }
    assert not PipelineRun.objects.exists()

    due = T0 + timedelta(hours=3, seconds=20)
    assert services.schedules_run(now=due)["requested"] == 1
    run = PipelineRun.objects.get()
    assert run.kind == "full_retrain" and run.state == "awaiting_approval"
    assert run.requested_by == porg.user("beta.lead")
    assert run.reason.startswith("Scheduled retrain (cron 0 3 * * *)")
    assert set(run.inputs.all()) == {porg.catalog_v, porg.labels_v}  # newest approved
    assert sorted(r.team.slug for r in run_approval(run).requirements.all()) == ["alpha", "beta"]
    pipeline.refresh_from_db()
    assert pipeline.schedule_last_slot == T0 + timedelta(hours=3)
    event = _events("pipeline.schedule_requested").get()
    assert event.after["run"] == run.pk
    assert Notification.objects.filter(
        recipient=porg.user("beta.lead"), subject__contains="requested in your name"
    ).exists()

    # The same slot again (a second beat, or the next minutes): nothing more.
    for later in (due, due + timedelta(minutes=1), T0 + timedelta(hours=23)):
        assert services.schedules_run(now=later)["not_due"] == 1
    assert PipelineRun.objects.count() == 1
    # The next day's slot is due again.
    assert services.schedules_run(now=T0 + timedelta(days=1, hours=3))["requested"] == 1
    assert PipelineRun.objects.count() == 2


def test_two_beats_claim_a_slot_once(porg):
    """The slot is claimed by compare-and-set: a beat that read the pipeline before another
    beat claimed the slot cannot claim it again."""
    _schedule(porg, "*/15 * * * *")
    stale = Pipeline.objects.get(pk=porg.pipeline.pk)
    due = T0 + timedelta(minutes=15)
    assert services.schedules_run(now=due)["requested"] == 1
    assert not schedules._claim(stale, stale.schedule_last_slot, due)
    assert services.schedules_run(now=due)["not_due"] == 1
    assert PipelineRun.objects.count() == 1
    assert _events("pipeline.schedule_requested").count() == 1


def test_missed_slots_are_caught_up_once(porg):
    _schedule(porg, "*/15 * * * *")
    now = T0 + timedelta(hours=2, minutes=7)  # beat was down: eight slots passed
    assert services.schedules_run(now=now)["requested"] == 1
    assert Pipeline.objects.get().schedule_last_slot == T0 + timedelta(hours=2)
    assert PipelineRun.objects.count() == 1


def test_no_accountable_person_skips_with_the_reason(porg):
    pipeline = _schedule(porg, "0 3 * * *", accountable=None)
    counts = services.schedules_run(now=T0 + timedelta(hours=3))
    assert counts["skipped"] == 1 and not PipelineRun.objects.exists()
    event = _events("pipeline.schedule_skipped").get()
    assert "no accountable person" in event.after["reason"]
    assert Notification.objects.filter(
        recipient=porg.user("beta.lead"), subject__contains="scheduled retrain skipped"
    ).exists()
    pipeline.refresh_from_db()
    assert pipeline.schedule_last_slot == T0 + timedelta(hours=3)  # not retried every minute
    assert services.schedules_run(now=T0 + timedelta(hours=3, minutes=1))["not_due"] == 1
    # The next slot is skipped for the same reason: recorded again, the leads not told again.
    assert services.schedules_run(now=T0 + timedelta(days=1, hours=3))["skipped"] == 1
    assert _events("pipeline.schedule_skipped").count() == 2
    assert Notification.objects.filter(subject__contains="retrain skipped").count() == 1


def test_no_approved_input_skips_with_the_reason(porg):
    _schedule(porg, "0 3 * * *")
    gov.dataset_version_deprecate(
        actor=porg.user("beta.steward"), version=porg.labels_v, reason="wrong grades"
    )
    assert services.schedules_run(now=T0 + timedelta(hours=3))["skipped"] == 1
    assert not PipelineRun.objects.exists()
    reason = _events("pipeline.schedule_skipped").get().after["reason"]
    assert reason == "no approved relevance_labels version"


def test_an_accountable_person_who_may_not_run_is_skipped(porg):
    _schedule(porg, "0 3 * * *", accountable="beta.steward")
    assert services.schedules_run(now=T0 + timedelta(hours=3))["skipped"] == 1
    assert not PipelineRun.objects.exists()
    reason = _events("pipeline.schedule_skipped").get().after["reason"]
    assert reason.startswith("the request was refused: You cannot request runs")


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 3 * *", "needs 5 fields"),
        ("61 * * * *", "Bad minute '61'"),
        ("0 25 * * *", "Bad hour '25'"),
        ("0 0 * * funday", "Bad day of week 'funday'"),
        ("*/0 * * * *", "Bad minute"),
        ("0 0 31 2 *", "never runs"),
        (",".join(["1"] * 40) + " * * * *", "at most 60 characters"),
    ],
)
def test_bad_cron_expressions_are_refused(porg, expression, words):
    with pytest.raises(ValidationError, match=words):
        services.pipeline_set_schedule(
            actor=porg.user("beta.lead"), pipeline=porg.pipeline, schedule=expression
        )
    with pytest.raises(ValidationError, match=words):
        services.pipeline_create(
            actor=porg.admin,
            name="Nightly",
            owning_team=porg.beta,
            input_assets=[porg.asset],
            schedule=expression,
        )
    pipeline = Pipeline.objects.get(pk=porg.pipeline.pk)
    assert pipeline.schedule == "" and not Pipeline.objects.filter(name="Nightly").exists()


def test_setting_a_schedule_is_for_leads_audited_and_counts_from_now(porg):
    with pytest.raises(PermissionDeniedError, match="change the schedule"):
        services.pipeline_set_schedule(
            actor=porg.user("beta.ops"), pipeline=porg.pipeline, schedule="0 3 * * *"
        )
    before = datetime.now(UTC)
    pipeline = services.pipeline_set_schedule(
        actor=porg.user("beta.lead"), pipeline=porg.pipeline, schedule="  0  3 * * 1-5 "
    )
    assert pipeline.schedule == "0 3 * * 1-5" and pipeline.schedule_last_slot >= before
    assert _events("pipeline.schedule_set").count() == 1
    cleared = services.pipeline_set_schedule(
        actor=porg.user("beta.lead"), pipeline=pipeline, schedule=""
    )
    assert cleared.schedule == "" and cleared.schedule_last_slot is None
    created = services.pipeline_create(
        actor=porg.admin,
        name="Nightly",
        owning_team=porg.beta,
        input_assets=[porg.asset],
        schedule="30 1 * * *",
    )
    assert created.schedule_last_slot >= before  # a slot already past is not due


def test_latest_slot_follows_cron_fields_and_the_time_zone(settings):
    settings.TIME_ZONE = "UTC"
    weekdays = schedules.parse_schedule("0 3 * * 1-5")
    saturday = datetime(2030, 1, 12, 12, 0, tzinfo=UTC)
    assert schedules.latest_slot(weekdays, after=T0, now=saturday) == datetime(
        2030, 1, 11, 3, 0, tzinfo=UTC
    )
    assert (
        schedules.latest_slot(weekdays, after=saturday - timedelta(hours=1), now=saturday) is None
    )
    first_monday = schedules.parse_schedule("15 8 1-7 * mon")  # both day fields must match
    assert schedules.latest_slot(
        first_monday, after=T0 - timedelta(days=40), now=datetime(2030, 2, 20, tzinfo=UTC)
    ) == datetime(2030, 2, 4, 8, 15, tzinfo=UTC)
    settings.TIME_ZONE = "Europe/Paris"  # 03:00 in Paris is 02:00 UTC in winter
    nightly = schedules.parse_schedule("0 3 * * *")
    assert schedules.latest_slot(
        nightly, after=T0, now=datetime(2030, 1, 7, 2, 30, tzinfo=UTC)
    ) == datetime(2030, 1, 7, 2, 0, tzinfo=UTC)


def test_the_beat_runs_the_schedules_every_minute(porg):
    from celery.schedules import crontab

    from config.celery import app
    from recsys.tasks import schedules_run_task

    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == "recsys.schedules_run"]
    assert len(entries) == 1 and entries[0]["schedule"] == crontab()
    _schedule(porg, "* * * * *")
    Pipeline.objects.filter(pk=porg.pipeline.pk).update(
        schedule_last_slot=datetime.now(UTC) - timedelta(minutes=5)
    )
    schedules_run_task()
    assert PipelineRun.objects.filter(reason__startswith="Scheduled retrain").count() == 1


# --- setting the schedule from the pipeline page and the API ------------------------------

ALLOWED = {"admin", "acme.lead", "beta.lead"}
ACTORS = sorted(ALLOWED | {"beta.ops", "beta.steward", "alpha.lead", "alpha.ops", "outsider"})


@pytest.mark.parametrize("actor", ACTORS)
def test_api_schedule_permission_matrix(porg, actor):
    response = api_as(porg.user(actor)).post(
        f"/api/v1/pipelines/{porg.pipeline.slug}/schedule/", {"schedule": "0 3 * * 1"}
    )
    schedule = Pipeline.objects.get(pk=porg.pipeline.pk).schedule
    if actor in ALLOWED:
        assert response.status_code == 200, response.content
        assert response.json()["schedule"] == "0 3 * * 1" == schedule
    else:
        assert response.status_code in (403, 404), response.content
        assert schedule == ""
        if response.status_code == 403:
            assert "change the schedule" in response.json()["detail"]


def test_api_refuses_a_bad_schedule_with_the_field_at_fault(porg):
    lead = api_as(porg.user("beta.lead"))
    url = f"/api/v1/pipelines/{porg.pipeline.slug}/schedule/"
    bad = lead.post(url, {"schedule": "0 25 * * *"})
    assert bad.status_code == 400
    assert "hour" in json.dumps(bad.json())
    missing = lead.post(url, {})
    assert missing.status_code == 400 and "schedule" in missing.json()["errors"]
    assert Pipeline.objects.get(pk=porg.pipeline.pk).schedule == ""
    cleared = lead.post(url, {"schedule": ""})
    assert cleared.status_code == 200 and cleared.json()["schedule"] == ""


def test_pipeline_page_shows_the_schedule_and_lets_leads_change_it(porg, client):
    page = reverse("recsys:pipeline_detail", args=[porg.pipeline.slug])
    action = reverse("recsys:schedule", args=[porg.pipeline.slug])

    login(client, porg.user("beta.ops"))
    html = client.get(page).content.decode()
    assert "none: retrains are requested by hand" in html and 'id="schedule-form"' not in html
    refused = client.post(action, {"schedule": "0 3 * * 1"}, follow=True).content.decode()
    assert "change the schedule" in refused
    assert Pipeline.objects.get(pk=porg.pipeline.pk).schedule == ""

    login(client, porg.user("beta.lead"))
    assert 'id="schedule-form"' in client.get(page).content.decode()
    bad = client.post(action, {"schedule": "61 * * * *"}, follow=True).content.decode()
    assert "Bad minute" in bad
    assert Pipeline.objects.get(pk=porg.pipeline.pk).schedule == ""
    saved = client.post(action, {"schedule": " 0 3  * * 1 "}, follow=True).content.decode()
    assert "are scheduled at &#x27;0 3 * * 1&#x27;" in saved and "<code>0 3 * * 1</code>" in saved
    assert Pipeline.objects.get(pk=porg.pipeline.pk).schedule == "0 3 * * 1"
    cleared = client.post(action, {"schedule": ""}, follow=True).content.decode()
    assert "has no schedule any more" in cleared
    assert Pipeline.objects.get(pk=porg.pipeline.pk).schedule == ""
