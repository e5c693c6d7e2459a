"""Base models (issue 11, item 7): a run fine-tunes only a base model of STEWARD_BASE_MODELS (the
shipped all-MiniLM-L6-v2 by default; the tests register their tiny models there, see
tests/conftest.py) or an earlier model version of its own pipeline; checked when the run is
requested (service: API and UI alike) and again by the worker; the worker never reaches a hub;
the shipped model's files are checked against their pinned sha256 when loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ValidationError
from recsys import services
from recsys.models import PipelineRun
from recsys.pipelines import encoding
from recsys.services.run_validation import resolve_base_model
from tests.conftest import api_as, login
from tests.recsys.pipeline_setup import approve_run, request_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("base", ["sentence-transformers/all-mpnet-base-v2", "/tmp", "model:999"])
def test_a_base_model_outside_the_list_is_refused_with_the_choices(porg, base):
    with pytest.raises(ValidationError) as info:
        request_run(porg, base_model=base)
    message = info.value.message
    assert "is not allowed" in message and "all-MiniLM-L6-v2" in message
    assert "tiny-bert-0" in message and "model:<id>" in message
    assert not PipelineRun.objects.exists()


def test_api_and_form_refuse_an_unlisted_base_model(porg, client):
    body = {
        "pipeline": porg.pipeline.slug,
        "inputs": [porg.catalog_v.pk, porg.labels_v.pk],
        "reason": "weekly",
        "parameters": {"base_model": "bert-base-uncased"},
    }
    response = api_as(porg.user("beta.ops")).post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400
    assert "is not allowed. Choose one of: all-MiniLM-L6-v2" in response.json()["detail"]
    login(client, porg.user("beta.ops"))
    page = client.post(
        f"/recsys/pipelines/{porg.pipeline.slug}/runs/new/",
        {
            "kind": "full_retrain",
            "reason": "new labels",
            f"input_{porg.asset.slug}": porg.catalog_v.pk,
            "input_labels": porg.labels_v.pk,
            "param_base_model": "bert-base-uncased",
        },
    )
    assert page.status_code == 400 and "is not allowed" in page.content.decode()
    assert not PipelineRun.objects.exists()


def test_the_worker_checks_the_base_model_again_then_an_earlier_version_can_be_the_base(
    porg, settings, tmp_path, django_capture_on_commit_callbacks
):
    run = request_run(porg, base_model="tiny-bert-0")
    with django_capture_on_commit_callbacks(execute=False):
        approve_run(porg, run)
    allowed = settings.STEWARD_BASE_MODELS
    # This worker's list no longer holds the model: the run fails with the reason.
    settings.STEWARD_BASE_MODELS = {"all-MiniLM-L6-v2": encoding.default_model_path()}
    services.run_execute(run_id=run.pk, attempt=1)
    run.refresh_from_db()
    assert run.state == "failed"
    assert "Base model 'tiny-bert-0' is not allowed" in run.error
    assert not run.model_versions.exists()
    # With the list back, the retried run succeeds; its model version may then be a base.
    settings.STEWARD_BASE_MODELS = allowed
    with django_capture_on_commit_callbacks(execute=False):
        services.run_retry(actor=porg.user("beta.ops"), run=run)
    services.run_execute(run_id=run.pk, attempt=2)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error + run.log
    model = run.model_versions.get()
    # Recorded by name: a host whose STEWARD_BASE_MODELS keeps that model in another folder
    # (an index host, say) finds it there when it builds or evaluates from this model version.
    assert model.base_model == "tiny-bert-0"
    elsewhere = tmp_path / "other-host" / "tiny-bert-0"
    shutil.copytree(allowed["tiny-bert-0"], elsewhere)
    settings.STEWARD_BASE_MODELS = {**allowed, "tiny-bert-0": str(elsewhere)}
    assert resolve_base_model(porg.pipeline, model.base_model) == str(elsewhere)
    settings.STEWARD_BASE_MODELS = allowed
    again = services.run_request(
        actor=porg.user("beta.ops"),
        pipeline=porg.pipeline,
        kind="fine_tune",
        inputs=[porg.catalog_v, porg.labels_v],
        parameters={"base_model": f"model:{model.pk}"},
        reason="continue from the last model",
    )
    with django_capture_on_commit_callbacks(execute=False):
        approve_run(porg, again)
    services.run_execute(run_id=again.pk, attempt=1)
    again.refresh_from_db()
    assert again.state == "succeeded", again.error + again.log
    assert again.model_versions.get().base_model == model.path


def test_the_shipped_model_is_checked_against_its_sha256(tmp_path, monkeypatch):
    shipped = Path(encoding.default_model_path())
    tampered = tmp_path / "model"
    shutil.copytree(shipped, tampered)
    weights = tampered / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one weight changed: the model still loads, but is not the shipped one
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(encoding, "default_model_path", lambda: str(tampered))
    with pytest.raises(ValueError, match=r"model\.safetensors has sha256 \w+, expected 53aa5117"):
        encoding.load_encoder(str(tampered))
    encoding.verify_shipped_model(str(shipped))  # the installed files are the pinned ones


def test_django_processes_run_offline_whatever_the_environment_says():
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    code = "import config, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "True", out.stderr
