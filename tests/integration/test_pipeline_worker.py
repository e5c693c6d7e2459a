"""A full retrain on a real worker (filesystem broker on the embedded pass, Redis on the
PostgreSQL pass): the run is enqueued on commit only after the last required approval, the
worker executes it end to end with a tiny model, and its results are in the database. The
worker reads the real MEDIA_ROOT and ARTIFACT_ROOT, so storage is not overridden here."""

import pytest

from governance import services as gov
from recsys.models import IndexVersion, PipelineRun
from recsys.pipelines.encoding import tiny_encoder
from tests.conftest import build_org, tiny_models_dir, wait_for
from tests.recsys.pipeline_setup import build_pipeline_org, request_run, run_approval

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_full_retrain_on_the_worker_only_after_every_approval(celery_worker, tmp_path):
    model_path = tiny_encoder(str(tiny_models_dir()), seed=1)
    org = build_pipeline_org(build_org(), model_path)
    run = request_run(org)

    gov.approval_decide(
        actor=org.user("alpha.steward"),
        request=run_approval(run),
        verdict="approve",
        comment="catalog ok",
    )
    run.refresh_from_db()
    assert run.state == "awaiting_approval"  # beta has not approved: nothing enqueued

    gov.approval_decide(
        actor=org.user("beta.lead"), request=run_approval(run), verdict="approve", comment="go"
    )

    def finished():
        state = PipelineRun.objects.values_list("state", flat=True).get(pk=run.pk)
        return state if state in ("succeeded", "failed", "cancelled") else None

    assert wait_for(finished, timeout=240) == "succeeded", PipelineRun.objects.get(pk=run.pk).log
    run.refresh_from_db()
    assert run.attempt == 1 and run.worker_host
    assert "recsys.run_execute" in celery_worker.log()
    index = IndexVersion.objects.get(run=run)
    assert index.metrics["fine_tuned"]["n_queries"] > 0
