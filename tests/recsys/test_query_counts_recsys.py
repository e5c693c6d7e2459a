"""The run list and the index list of the pipeline API use the same number of queries for N and
for 3N rows (no query per run, requester, pipeline, model or catalog version).

The rows are bulk-created (what a worker would record, without running it): runs of the beta
pipeline in every state, each finished one with its model version and candidate index."""

from __future__ import annotations

import pytest

from recsys.models import IndexVersion, ModelVersion, PipelineRun
from tests.conftest import api_as
from tests.helpers import assert_queries_constant, count_queries

pytestmark = pytest.mark.django_db

N = 10
STATES = ["awaiting_approval", "queued", "running", "succeeded", "failed", "cancelled"]


def grow(porg, size: int) -> None:
    """Add runs (and for succeeded ones a model and an index) up to `size` runs in all."""
    have = PipelineRun.objects.count()
    new = range(have, size)
    PipelineRun.objects.bulk_create(
        [
            PipelineRun(
                pipeline=porg.pipeline,
                kind="full_retrain",
                state=STATES[i % len(STATES)],
                inputs_hash=f"{i:064d}",
                parameters_hash=f"{i:064d}",
                requested_by=porg.user("beta.ops"),
                reason=f"run {i:04d}",
                job_key=f"job-{i:04d}",
            )
            for i in new
        ]
    )
    runs = list(PipelineRun.objects.filter(reason__in=[f"run {i:04d}" for i in new]))
    PipelineRun.inputs.through.objects.bulk_create(
        [
            PipelineRun.inputs.through(pipelinerun_id=run.pk, datasetversion_id=version.pk)
            for run in runs
            for version in (porg.catalog_v, porg.labels_v)
        ]
    )
    ModelVersion.objects.bulk_create(
        [
            ModelVersion(run=run, base_model="tiny", path=f"/m/{run.pk}", checksum="0" * 64)
            for run in runs
        ]
    )
    models = {m.run_id: m for m in ModelVersion.objects.filter(run__in=runs)}
    IndexVersion.objects.bulk_create(
        [
            IndexVersion(
                pipeline=porg.pipeline,
                run=run,
                model_version=models[run.pk],
                catalog_version=porg.catalog_v,
                path=f"/i/{run.pk}",
                checksum="0" * 64,
                kind="flat",
                n_items=160,
                dim=32,
                metrics={"fine_tuned": {"ndcg@10": 0.5}},
            )
            for run in runs
        ]
    )


@pytest.mark.parametrize("viewer", ["beta.ops", "alpha.viewer", "admin"])
@pytest.mark.parametrize(
    "url", ["/api/v1/runs/", "/api/v1/runs/?pipeline=search&state=failed", "/api/v1/indexes/"]
)
def test_run_and_index_lists_use_a_constant_number_of_queries(porg, url, viewer):
    client = api_as(porg.user(viewer))
    grow(porg, N)
    small = count_queries(client, url, expect='"results":[{')
    grow(porg, 3 * N)
    large = count_queries(client, url, expect='"results":[{')
    assert len(client.get(url).json()["results"]) == (
        3 * N // len(STATES) if "state=" in url else 3 * N
    )
    assert_queries_constant(f"GET {url} as {viewer}", small, large, rows=(N, 3 * N))
