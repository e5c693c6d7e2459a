"""What a run's attempt produced, and its recording: the job (recsys/execution.py) fills a
RunResults with plain results; run_finish records them in the transaction that marks the
attempt succeeded, each version with its audit event, so that a failed, cancelled or lost
attempt registers none of them.

- the cleaned catalog: stored by the job (slow I/O, outside any transaction), recorded here
  as a derived dataset version submitted to the catalog's stewards;
- the model it fine-tuned: a ModelVersion;
- the index it built: an IndexVersion, a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.audit import audit_record
from recsys.models import IndexVersion, ModelVersion, PipelineRun
from recsys.services.run_validation import base_model_name

if TYPE_CHECKING:
    from governance.models import DatasetVersion
    from recsys.pipelines.indexing import IndexInfo
    from recsys.pipelines.steps import FineTuned


@dataclass(frozen=True)
class TrainedModel:
    """A model an attempt fine-tuned, with its held-out metrics."""

    artifact: FineTuned
    metrics: dict


@dataclass(frozen=True)
class BuiltIndex:
    """An index an attempt built over `catalog_version`, with its held-out metrics; it embeds
    with `model_version`, or (None) with the model the same attempt trained."""

    artifact: IndexInfo
    catalog_version: DatasetVersion
    model_version: ModelVersion | None
    metrics: dict


@dataclass
class RunResults:
    """The results of one attempt, recorded only if it succeeds."""

    cleaned_catalog: DatasetVersion | None = None  # stored, not recorded yet
    model: TrainedModel | None = None
    index: BuiltIndex | None = None


def run_results_record(*, run: PipelineRun, results: RunResults) -> dict:
    """Record the versions of a succeeding attempt (inside run_finish's transaction); their ids
    by name, for the run's outputs."""
    from governance.services.versions import dataset_version_record_derived

    ids: dict = {}
    if results.cleaned_catalog is not None:
        ids["cleaned_version"] = dataset_version_record_derived(results.cleaned_catalog).pk
    trained = None
    if results.model is not None:
        trained = model_version_record(run=run, model=results.model)
        ids["model_version"] = trained.pk
    if results.index is not None:
        model_version = results.index.model_version or trained
        if model_version is None:
            raise ValueError("an index version needs the model version it embeds with")
        index = index_version_record(run=run, index=results.index, model_version=model_version)
        ids["index_version"] = index.pk
    return ids


def run_results_discard_unrecorded(results: RunResults) -> None:
    """Remove what an attempt stored for versions it did not record (it failed, was cancelled
    or lost): nothing of it is left behind."""
    from governance.services.versions import dataset_version_discard_stored

    if results.cleaned_catalog is not None:
        dataset_version_discard_stored(results.cleaned_catalog)


def model_version_record(*, run: PipelineRun, model: TrainedModel) -> ModelVersion:
    """The model version a succeeding attempt fine-tuned, audited."""
    artifact = model.artifact
    version = ModelVersion.objects.create(
        run=run,
        base_model=base_model_name(artifact.base_model),
        path=str(artifact.path),
        checksum=artifact.checksum,
        config=artifact.config,
        training_curve=artifact.curve,
        metrics=model.metrics,
    )
    audit_record(
        actor=None,
        verb="modelversion.created",
        target=version,
        after={
            "run": run.pk,
            "base_model": version.base_model,
            "path": version.path,
            "checksum": version.checksum,
            "metrics": version.metrics,
        },
    )
    return version


def index_version_record(
    *, run: PipelineRun, index: BuiltIndex, model_version: ModelVersion
) -> IndexVersion:
    """The candidate index version a succeeding attempt built, audited."""
    artifact = index.artifact
    version = IndexVersion.objects.create(
        pipeline=run.pipeline,
        run=run,
        model_version=model_version,
        catalog_version=index.catalog_version,
        path=str(artifact.path),
        checksum=artifact.checksum,
        kind=artifact.kind,
        n_items=artifact.n,
        dim=artifact.dim,
        build_params=artifact.params,
        metrics=index.metrics,
    )
    audit_record(
        actor=None,
        verb="indexversion.created",
        target=version,
        after={
            "run": run.pk,
            "model_version": model_version.pk,
            "catalog_version": index.catalog_version.pk,
            "path": version.path,
            "checksum": version.checksum,
            "kind": version.kind,
            "n_items": version.n_items,
            "status": version.status,
        },
    )
    return version
