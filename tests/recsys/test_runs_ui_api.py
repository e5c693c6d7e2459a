"""The ops UI and the REST API of the pipeline: the same rules as the services, with clear
refusals (401 anonymous, 404 invisible, 403 with a message) and nothing changed on refusal."""

import pytest

from recsys.models import PipelineRun
from tests.conftest import api_as, login
from tests.recsys.pipeline_setup import request_run

pytestmark = pytest.mark.django_db


def _body(porg, **extra):
    return {
        "pipeline": porg.pipeline.slug,
        "inputs": [porg.catalog_v.pk, porg.labels_v.pk],
        "reason": "weekly",
        **extra,
    }


def test_bad_run_request_api_gets_a_reason(porg):
    ops = api_as(porg.user("beta.ops"))
    bad = ops.post("/api/v1/runs/", _body(porg, parameters={"epochs": 99}), format="json")
    assert bad.status_code == 400 and "epochs must be between" in bad.json()["detail"]
    missing = ops.post(
        "/api/v1/runs/", {"pipeline": porg.pipeline.slug, "inputs": []}, format="json"
    )
    assert missing.status_code == 400
    assert not PipelineRun.objects.exists()


def test_run_approval_names_the_teams_and_cancel(porg):
    run = request_run(porg)
    ops = api_as(porg.user("beta.ops"))
    body = ops.get(f"/api/v1/runs/{run.pk}/approval/").json()
    assert {r["team"] for r in body["approval"]["requirements"]} == {"alpha", "beta"}
    assert any("waiting for Alpha" in b and "alpha.steward" in b for b in body["blockers"])
    refused = api_as(porg.user("beta.steward")).post(f"/api/v1/runs/{run.pk}/cancel/")
    assert refused.status_code == 403
    cancelled = ops.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = ops.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert again.status_code == 400 and "already cancelled" in again.json()["detail"]
    assert api_as(porg.user("outsider")).get(f"/api/v1/runs/{run.pk}/").status_code == 404
    assert api_as(porg.user("outsider")).get("/api/v1/runs/").json()["results"] == []


def test_trigger_form_and_run_page(porg, client):
    login(client, porg.user("beta.ops"))
    form = client.get(f"/recsys/pipelines/{porg.pipeline.slug}/runs/new/")
    assert form.status_code == 200
    html = form.content.decode()
    assert f'value="{porg.catalog_v.pk}" selected' in html  # newest approved preselected
    bad = client.post(
        f"/recsys/pipelines/{porg.pipeline.slug}/runs/new/",
        {
            "kind": "full_retrain",
            "reason": "",
            f"input_{porg.asset.slug}": porg.catalog_v.pk,
            "input_labels": porg.labels_v.pk,
        },
    )
    assert bad.status_code == 400 and not PipelineRun.objects.exists()
    ok = client.post(
        f"/recsys/pipelines/{porg.pipeline.slug}/runs/new/",
        {
            "kind": "full_retrain",
            "reason": "new labels",
            f"input_{porg.asset.slug}": porg.catalog_v.pk,
            "input_labels": porg.labels_v.pk,
            "param_epochs": 1,
        },
    )
    run = PipelineRun.objects.get()
    assert ok.status_code == 302 and ok["Location"] == f"/recsys/runs/{run.pk}/"
    page = client.get(f"/recsys/runs/{run.pk}/").content.decode()
    assert "Awaiting approval" in page and "waiting for Alpha" in page
    assert 'hx-trigger="every 2s"' in page  # live progress while not finished


@pytest.mark.parametrize(("actor", "status"), [("beta.steward", 403), ("outsider", 404)])
def test_trigger_form_refusals(porg, client, actor, status):
    login(client, porg.user(actor))
    assert client.get(f"/recsys/pipelines/{porg.pipeline.slug}/runs/new/").status_code == status


def test_pipeline_pages_render(porg, client):
    login(client, porg.user("alpha.viewer"))
    assert client.get("/recsys/").status_code == 200
    page = client.get(f"/recsys/pipelines/{porg.pipeline.slug}/").content.decode()
    assert "No index built yet" in page and "Trigger retrain" not in page


def test_open_incidents_on_the_inputs_are_shown_to_approvers_and_do_not_block(
    porg, client, django_capture_on_commit_callbacks
):
    from governance.models import Incident
    from tests.recsys.pipeline_setup import approve_run

    incident = Incident.objects.create(
        asset=porg.asset, rule="null_rate", dedup_key="null_rate", summary="ean: 6.0% nulls"
    )
    Incident.objects.create(
        asset=porg.asset,
        rule="volume",
        dedup_key="volume",
        summary="an old breach",
        status="resolved",
    )
    run = request_run(porg)
    body = api_as(porg.user("beta.ops")).get(f"/api/v1/runs/{run.pk}/approval/").json()
    assert body["input_incidents"] == [
        {
            "id": incident.pk,
            "asset": porg.asset.name,
            "summary": "ean: 6.0% nulls",
            "status": "open",
            "url": f"/governance/incidents/{incident.pk}/",
        }
    ]
    assert not any("ean" in b for b in body["blockers"])
    login(client, porg.user("alpha.steward"))
    page = client.get(f"/recsys/runs/{run.pk}/").content.decode()
    assert "Open incidents on its inputs" in page
    link = f'<a href="/governance/incidents/{incident.pk}/">{porg.asset.name}: ean: 6.0% nulls</a>'
    assert f"{link} (open)" in page
    assert "an old breach" not in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approve_run(porg, run)
    run.refresh_from_db()
    assert run.state == "queued" and callbacks  # the incident did not hold it back
    page = client.get(f"/recsys/runs/{run.pk}/").content.decode()
    assert "Open incidents on its inputs" not in page  # decided: nothing left to weigh


def test_run_request_api_does_not_leak_other_organizations_inputs(porg):
    """An input version the requester may not see is refused exactly like one that does not
    exist: the answer names only the id that was sent, never the other organization's asset."""
    from django.core.files.base import ContentFile

    from governance import services as gov
    from teams import services as team_services

    other = team_services.team_create(actor=porg.admin, name="Rival", slug="rival", parent=None)
    secret = gov.dataasset_create(
        actor=porg.admin,
        name="Secret Rival Catalog",
        slug="secret-rival-catalog",
        kind="product_catalog",
        owning_team=other,
    )
    hidden = gov.dataset_version_upload(
        actor=porg.admin, asset=secret, name="c.csv", file=ContentFile(b"id,title\n1,x\n")
    )
    ops = api_as(porg.user("beta.ops"))
    answers = {}
    for label, pk in [("invisible", hidden.pk), ("absent", hidden.pk + 1000)]:
        response = ops.post(
            "/api/v1/runs/", _body(porg, inputs=[pk, porg.labels_v.pk]), format="json"
        )
        answers[label] = (response.status_code, response.json()["detail"].replace(str(pk), "#"))
        assert (
            "Secret" not in response.content.decode() and "Rival" not in response.content.decode()
        )
    assert answers["invisible"] == answers["absent"]
    assert answers["absent"][0] == 400 and "not found" in answers["absent"][1]
    assert not PipelineRun.objects.exists()


def test_the_run_page_poller_stops_once_the_run_is_final(porg, client):
    """The poller lives on the swapped element (so a final answer drops it) and a poll of a
    finished run is answered with htmx's 286 (stop polling)."""
    run = request_run(porg)
    login(client, porg.user("beta.ops"))
    htmx = {"HX-Request": "true"}
    live = client.get(f"/recsys/runs/{run.pk}/", headers=htmx)
    assert live.status_code == 200
    assert 'id="run-main" hx-get=' in live.content.decode()
    api_as(porg.user("beta.ops")).post(f"/api/v1/runs/{run.pk}/cancel/")
    final = client.get(f"/recsys/runs/{run.pk}/", headers=htmx)
    assert final.status_code == 286
    assert "hx-trigger" not in final.content.decode() and "Cancelled" in final.content.decode()
    assert client.get(f"/recsys/runs/{run.pk}/").status_code == 200  # a plain visit: 200
