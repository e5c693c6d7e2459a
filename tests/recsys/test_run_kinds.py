"""The single-step run kinds (fine_tune, build_index, evaluate) through the services with a tiny
model: what each produces, the model/index version they work on (validated, pinned by the
approval, re-checked at start), the same approval gate as a full retrain, and the UI and API."""

from __future__ import annotations

import uuid

import pytest

from core.errors import ValidationError
from core.models import AuditEvent
from data import demo_generator as gen
from governance import services as gov
from governance.models import DatasetVersion
from recsys import services
from recsys.models import IndexVersion, ModelVersion, PipelineRun
from recsys.storage import run_dir
from tests.conftest import api_as, login
from tests.recsys.pipeline_setup import (
    approve_run,
    approved_version,
    run_approval,
)

pytestmark = pytest.mark.django_db


def _request(org, kind, inputs=None, **parameters):
    return services.run_request(
        actor=org.user("beta.ops"),
        pipeline=org.pipeline,
        kind=kind,
        inputs=inputs if inputs is not None else [org.catalog_v, org.labels_v],
        parameters=parameters,
        reason=f"{kind} please",
    )


def _run(org, capture, kind, inputs=None, **parameters) -> PipelineRun:
    """Request, approve (every team) and execute a run as the worker would."""
    run = _request(org, kind, inputs, **parameters)
    with capture(execute=False):
        approve_run(org, run)
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error + run.log
    return run


def _fabricated_model(org, pipeline=None, state="succeeded") -> ModelVersion:
    """A model version row of a (fake) run, for checks that never load it."""
    run = PipelineRun.objects.create(
        pipeline=pipeline or org.pipeline,
        kind="fine_tune",
        state=state,
        inputs_hash="-",
        parameters={},
        parameters_hash="-",
        requested_by=org.user("beta.ops"),
        reason="fabricated",
        job_key=uuid.uuid4().hex,
    )
    return ModelVersion.objects.create(
        run=run, base_model="tiny", path="/nonexistent", checksum="0", config={}
    )


def _fabricated_index(org, model=None) -> IndexVersion:
    model = model or _fabricated_model(org)
    return IndexVersion.objects.create(
        pipeline=model.run.pipeline,
        run=model.run,
        model_version=model,
        catalog_version=org.catalog_v,
        path="/nonexistent",
        checksum="0",
        kind="flat",
        n_items=1,
        dim=1,
    )


def test_fine_tune_records_a_model_and_no_index(porg, django_capture_on_commit_callbacks):
    run = _run(porg, django_capture_on_commit_callbacks, "fine_tune")
    assert set(run.timings) == {"clean", "pairs", "fine_tune", "evaluate"}
    assert run.progress == 100
    model = ModelVersion.objects.get(run=run)
    assert run.outputs["model_version"] == model.pk and "index_version" not in run.outputs
    assert not IndexVersion.objects.exists()
    metrics = run.outputs["metrics"]
    assert {"zero_shot", "fine_tuned"} <= set(metrics)
    assert model.metrics == metrics["fine_tuned"]
    assert DatasetVersion.objects.filter(pk=run.outputs["cleaned_version"]).exists()
    assert not (run_dir(run.job_key, 1) / "work").exists()  # the scratch index is gone


def test_build_index_then_evaluate(porg, django_capture_on_commit_callbacks):
    """build_index takes the newest model; without labels its index has no metrics (the gate
    refuses it) until an evaluate run measures it and stores them, audited."""
    capture = django_capture_on_commit_callbacks
    fine_tune = _run(porg, capture, "fine_tune")
    model = ModelVersion.objects.get(run=fine_tune)

    build = _run(porg, capture, "build_index", inputs=[porg.catalog_v])
    assert build.parameters["model_version"] == model.pk  # resolved, pinned in the hash
    assert set(build.timings) == {"clean", "index"}
    index = IndexVersion.objects.get(run=build)
    assert index.model_version == model and index.catalog_version == porg.catalog_v
    assert index.status == "candidate" and index.metrics == {}
    assert build.outputs["index_version"] == index.pk and "metrics" not in build.outputs
    assert services.quality_gate(index) == (False, "the candidate has no held-out nDCG@10")

    versions_before = DatasetVersion.objects.count()
    evaluate = _run(porg, capture, "evaluate", index_version=index.pk)
    assert set(evaluate.timings) == {"clean", "pairs", "evaluate"}
    index.refresh_from_db()
    assert index.metrics == evaluate.outputs["metrics"]
    assert 0.0 <= index.metrics["fine_tuned"]["ndcg@10"] <= 1.0
    assert evaluate.outputs["previous_metrics"] == {}
    assert evaluate.outputs["heldout_split"] == {
        "model_version": model.pk,
        "same_labels_as_training": True,
    }
    assert services.quality_gate(index)[0]
    assert DatasetVersion.objects.count() == versions_before  # evaluate makes no versions
    audit = AuditEvent.objects.filter(verb="indexversion.evaluated", target_id=str(index.pk))
    assert audit.count() == 1 and audit.get().after["run"] == evaluate.pk


def test_build_index_with_labels_is_evaluated_for_the_gate(
    porg, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    model = ModelVersion.objects.get(run=_run(porg, capture, "fine_tune"))
    newer = ModelVersion.objects.get(run=_run(porg, capture, "fine_tune", seed=7))
    build = _run(porg, capture, "build_index", model_version=model.pk)  # not the newest
    assert build.parameters["model_version"] == model.pk != newer.pk
    assert set(build.timings) == {"clean", "index", "pairs", "evaluate"}
    index = IndexVersion.objects.get(run=build)
    assert index.model_version == model
    assert index.metrics == build.outputs["metrics"] and "fine_tuned" in index.metrics
    assert build.outputs["heldout_split"]["same_labels_as_training"] is True
    assert services.quality_gate(index)[0]


def test_version_parameters_are_checked(porg):
    org = porg
    with pytest.raises(ValidationError, match="has no model version yet"):
        _request(org, "build_index", inputs=[org.catalog_v])
    other = services.pipeline_create(
        actor=org.admin, name="Other", owning_team=org.beta, input_assets=[org.asset]
    )
    foreign = _fabricated_model(org, pipeline=other)
    failed = _fabricated_model(org, state="failed")
    for bad in (foreign.pk, failed.pk, 99999):
        with pytest.raises(ValidationError, match=f"no model version {bad} of Search"):
            _request(org, "build_index", inputs=[org.catalog_v], model_version=bad)
    with pytest.raises(ValidationError, match="needs index_version"):
        _request(org, "evaluate")
    with pytest.raises(ValidationError, match="no index version 99999 of Search"):
        _request(org, "evaluate", index_version=99999)
    index = _fabricated_index(org)
    with pytest.raises(ValidationError, match="index_version applies to evaluate runs only"):
        _request(org, "full_retrain", index_version=index.pk)
    with pytest.raises(ValidationError, match="model_version applies to build_index runs only"):
        _request(org, "evaluate", index_version=index.pk, model_version=index.model_version_id)
    with pytest.raises(ValidationError, match="needs an approved relevance_labels"):
        _request(org, "evaluate", inputs=[org.catalog_v], index_version=index.pk)
    with pytest.raises(ValidationError, match="needs an approved relevance_labels"):
        _request(org, "fine_tune", inputs=[org.catalog_v])
    with pytest.raises(ValidationError, match="chosen per run"):
        services.pipeline_create(
            actor=org.admin,
            name="Pinned",
            owning_team=org.beta,
            input_assets=[org.asset],
            default_parameters={"model_version": index.model_version_id},
        )
    assert not PipelineRun.objects.filter(reason__endswith="please").exists()


def test_evaluate_needs_the_catalog_the_index_was_built_from(porg):
    index = _fabricated_index(porg)
    newer = approved_version(
        porg, porg.asset, "alpha.steward", gen.to_csv(gen.catalog_rows(50, seed=9))
    )
    with pytest.raises(ValidationError, match=f"Index v{index.pk} was built from"):
        _request(porg, "evaluate", inputs=[newer, porg.labels_v], index_version=index.pk)
    run = _request(porg, "evaluate", index_version=index.pk)
    assert run.parameters["index_version"] == index.pk


@pytest.mark.parametrize("kind", ["fine_tune", "build_index", "evaluate"])
def test_every_kind_waits_for_every_approval(porg, kind, django_capture_on_commit_callbacks):
    index = _fabricated_index(porg)
    parameters = {"index_version": index.pk} if kind == "evaluate" else {}
    run = _request(porg, kind, **parameters)
    assert sorted(r.team.slug for r in run_approval(run).requirements.all()) == ["alpha", "beta"]
    with django_capture_on_commit_callbacks() as callbacks:
        gov.approval_decide(
            actor=porg.user("alpha.steward"), request=run_approval(run), verdict="approve"
        )
    assert callbacks == []  # beta has not approved: nothing enqueued
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "awaiting_approval" and "refused a delivery" in run.log


@pytest.mark.parametrize(
    "kind, queue",
    [
        ("full_retrain", "train"),
        ("fine_tune", "train"),
        ("build_index", "index"),
        ("evaluate", "index"),
        ("clean", "clean"),
    ],
)
def test_each_kind_is_sent_to_its_own_queue(porg, kind, queue, django_capture_on_commit_callbacks):
    """On approval, and again when the sweep re-sends a run no worker took, so that a host
    listening only on "train" (a GPU) or "index" gets only those jobs."""
    from unittest import mock

    from recsys.tasks import run_execute_task

    parameters = {"index_version": _fabricated_index(porg).pk} if kind == "evaluate" else {}
    if kind == "build_index":
        parameters = {"model_version": _fabricated_model(porg).pk}
    inputs = [porg.catalog_v] if kind in ("clean", "build_index") else None
    run = _request(porg, kind, inputs, **parameters)
    with mock.patch.object(run_execute_task, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            approve_run(porg, run)
        assert send.call_args.kwargs["queue"] == queue
        assert send.call_args.kwargs["args"] == [run.pk, 1]
        PipelineRun.objects.filter(pk=run.pk).update(enqueued_at=None)  # as if the send was lost
        assert services.runs_sweep()["requeued"] == 1
        assert send.call_count == 2 and send.call_args.kwargs["queue"] == queue
        PipelineRun.objects.filter(pk=run.pk).update(state="failed", attempt=1)
        with django_capture_on_commit_callbacks(execute=True):
            services.run_retry(actor=porg.user("beta.ops"), run=run)
        assert send.call_count == 3 and send.call_args.kwargs["queue"] == queue
        assert send.call_args.kwargs["args"] == [run.pk, 2]


def test_every_run_kind_has_a_queue_the_workers_listen_on():
    from config.celery import QUEUES
    from recsys.choices import RunKind
    from recsys.constants import RUN_QUEUES

    assert set(RUN_QUEUES) == set(RunKind.values)
    assert set(RUN_QUEUES.values()) <= set(QUEUES)


def test_the_version_is_pinned_by_the_approval_and_rechecked_at_start(
    porg, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    first, second = _fabricated_model(porg), _fabricated_model(porg)
    tampered = _request(porg, "build_index", inputs=[porg.catalog_v], model_version=first.pk)
    with capture(execute=False):
        approve_run(porg, tampered)
    PipelineRun.objects.filter(pk=tampered.pk).update(
        parameters={**tampered.parameters, "model_version": second.pk}
    )
    services.run_execute(run_id=tampered.pk, attempt=1)
    tampered.refresh_from_db()
    assert tampered.state == "failed"
    assert "parameters changed after they were approved" in tampered.error

    gone = _request(porg, "build_index", inputs=[porg.catalog_v])
    assert gone.parameters["model_version"] == second.pk
    with capture(execute=False):
        approve_run(porg, gone)
    PipelineRun.objects.filter(pk=second.run_id).update(state="failed")
    services.run_execute(run_id=gone.pk, attempt=1)
    gone.refresh_from_db()
    assert gone.state == "failed"
    assert f"its model version {second.pk} is no longer a version" in gone.error
    assert not IndexVersion.objects.filter(run=gone).exists()


def test_storing_an_evaluation_needs_the_running_attempt(porg):
    index = _fabricated_index(porg)
    run = _request(porg, "evaluate", index_version=index.pk)
    metrics = {"fine_tuned": {"ndcg@10": 0.5}}
    store = {"run_id": run.pk, "attempt": 1, "index_id": index.pk, "metrics": metrics}
    assert not services.run_record_index_metrics(**store)  # not running
    PipelineRun.objects.filter(pk=run.pk).update(state="running", attempt=1, cancel_requested=True)
    assert not services.run_record_index_metrics(**store)  # cancel requested
    PipelineRun.objects.filter(pk=run.pk).update(cancel_requested=False)
    assert services.run_record_index_metrics(**store)
    index.refresh_from_db()
    assert index.metrics == metrics
    assert AuditEvent.objects.filter(verb="indexversion.evaluated").count() == 1


@pytest.mark.parametrize("status", ["candidate", "active", "retired"])
def test_a_re_evaluation_keeps_how_an_activated_index_answers(porg, status):
    """An evaluate run stores fresh figures; an index that was activated keeps the serving
    mode and fusion weight its activation approved, the new choice recorded beside them."""
    index = _fabricated_index(porg)
    served = {"default_mode": "hybrid", "fusion": {"dense_weight": 0.3}}
    IndexVersion.objects.filter(pk=index.pk).update(
        status=status, metrics={"fine_tuned": {"ndcg@10": 0.4}, **served}
    )
    run = _request(porg, "evaluate", index_version=index.pk)
    PipelineRun.objects.filter(pk=run.pk).update(state="running", attempt=1)
    measured = {
        "fine_tuned": {"ndcg@10": 0.5},
        "default_mode": "bm25",
        "fusion": {"dense_weight": 0.7},
    }

    assert services.run_record_index_metrics(
        run_id=run.pk, attempt=1, index_id=index.pk, metrics=measured
    )

    index.refresh_from_db()
    assert index.metrics["fine_tuned"] == {"ndcg@10": 0.5}
    if status == "candidate":
        assert index.metrics == measured
    else:
        assert {k: index.metrics[k] for k in served} == served
        assert index.metrics["re_evaluated"] == {
            "default_mode": "bm25",
            "fusion": {"dense_weight": 0.7},
        }


def test_api_and_form_offer_the_kinds_and_versions(porg, client):
    index = _fabricated_index(porg)
    ops = api_as(porg.user("beta.ops"))
    body = {"pipeline": porg.pipeline.slug, "inputs": [porg.catalog_v.pk, porg.labels_v.pk]}
    missing = ops.post("/api/v1/runs/", {**body, "kind": "evaluate", "reason": "x"}, format="json")
    assert missing.status_code == 400 and "needs index_version" in missing.json()["detail"]
    created = ops.post(
        "/api/v1/runs/",
        {**body, "kind": "evaluate", "reason": "x", "parameters": {"index_version": index.pk}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "evaluate"
    assert created.json()["parameters"]["index_version"] == index.pk

    login(client, porg.user("beta.ops"))
    url = f"/recsys/pipelines/{porg.pipeline.slug}/runs/new/"
    html = client.get(url).content.decode()
    for kind in ("fine_tune", "build_index", "evaluate"):
        assert f'value="{kind}"' in html
    assert f'<option value="{index.pk}">Index v{index.pk} · candidate' in html
    assert f'<option value="{index.model_version_id}">Model v{index.model_version_id}' in html
    posted = client.post(
        url,
        {
            "kind": "build_index",
            "reason": "reindex",
            f"input_{porg.asset.slug}": porg.catalog_v.pk,
            "input_labels": porg.labels_v.pk,
            "param_model_version": index.model_version_id,
        },
    )
    assert posted.status_code == 302
    run = PipelineRun.objects.get(kind="build_index")
    assert run.parameters["model_version"] == index.model_version_id
