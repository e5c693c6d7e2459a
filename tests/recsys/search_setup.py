"""Index artifacts for the search tests, built once per session with the tiny model (no
database), and the rows that make one of them the active index of a pipeline."""

from __future__ import annotations

import uuid

import pandas as pd

from data import demo_generator as gen
from recsys.constants import RUN_PARAMETERS
from recsys.models import ActiveIndex, IndexVersion, ModelVersion, PipelineRun
from recsys.pipelines import steps

PARAMS = {name: spec[1] for name, spec in RUN_PARAMETERS.items()} | {"max_length": 32}


def demo_frames(n_products: int = 240, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    catalog = gen.catalog_rows(n_products, seed=seed)
    events = gen.behaviour_events(catalog, users=40, seed=seed)
    return pd.DataFrame(catalog), pd.DataFrame(events)


def build_artifact(out_dir, model_path: str, catalog: pd.DataFrame, events: pd.DataFrame):
    catalog, _report = steps.clean_catalog(catalog)
    return steps.build_catalog_index(
        catalog, model_path, PARAMS, out_dir, lambda: False, events=events
    )


def register_index(pipeline, info, model_path: str, *, actor, metrics=None) -> IndexVersion:
    """Rows for an artifact built outside a run (the search tests need served indexes, not the
    pipeline that builds them; the provenance test uses a real run)."""
    run = PipelineRun.objects.create(
        pipeline=pipeline,
        kind="full_retrain",
        state="succeeded",
        inputs_hash="-",
        parameters=PARAMS,
        parameters_hash="-",
        requested_by=actor,
        reason="search test",
        job_key=uuid.uuid4().hex,
        attempt=1,
    )
    model = ModelVersion.objects.create(
        run=run, base_model=model_path, path=model_path, checksum="-"
    )
    return IndexVersion.objects.create(
        pipeline=pipeline,
        run=run,
        model_version=model,
        catalog_version=pipeline.input_assets.first().versions.first(),
        path=info.path,
        checksum=info.checksum,
        kind=info.kind,
        n_items=info.n,
        dim=info.dim,
        build_params=info.params,
        metrics=metrics or {"default_mode": "dense"},
    )


def make_active(index: IndexVersion, actor) -> None:
    ActiveIndex.objects.update_or_create(
        pipeline=index.pipeline, defaults={"index": index, "changed_by": actor}
    )
    IndexVersion.objects.filter(pk=index.pk).update(status="active")
