"""The selector of an index's provenance (the console's "why" panel): index version → model
version and the run that trained it → the dataset versions it read and the runs that cleaned
them → who approved each step, and when. In a fixed number of queries whatever the number of
inputs or approvals.
"""

from __future__ import annotations

from django.urls import reverse

from governance.selectors import approvals_latest_for, dataset_versions
from recsys.models import IndexVersion, ModelVersion, PipelineRun


def index_provenance(index: IndexVersion) -> dict:
    """The provenance chain of an index version, as the "why" panel shows it."""
    runs = _runs_of(index)
    training_run = runs[index.model_version.run_id]  # a build_index run only indexed the model
    index_run = runs[index.run_id]
    inputs = _inputs_of(runs)
    cleaners = _cleaning_runs_of(inputs)
    run_approvals = _approvals_by_subject([*runs.values(), *cleaners.values()])
    version_approvals = _approvals_by_subject(inputs)

    def run_entry(run: PipelineRun) -> dict:
        return _run_entry(run, run_approvals.get(run.pk, []))

    return {
        "index": _index_entry(index),
        "model": _model_entry(index.model_version),
        "training_run": run_entry(training_run),
        "index_run": run_entry(index_run) if index_run.pk != training_run.pk else None,
        "cleaned_catalog": _cleaned_catalog(training_run, index_run),
        "datasets": [
            _dataset_entry(
                version,
                approvals=version_approvals.get(version.pk, []),
                cleaned_by=run_entry(cleaners[version.pk]) if version.pk in cleaners else None,
            )
            for version in inputs
        ],
    }


def _runs_of(index: IndexVersion) -> dict[int, PipelineRun]:
    """The run that trained the index's model and the run that built the index (the same run
    for a full retrain), by pk, with who requested them."""
    ids = {index.model_version.run_id, index.run_id}
    return {r.pk: r for r in PipelineRun.objects.filter(pk__in=ids).select_related("requested_by")}


def _inputs_of(runs: dict[int, PipelineRun]):
    """The dataset versions those runs read, catalog first."""
    return list(
        dataset_versions(
            ids=PipelineRun.objects.filter(pk__in=list(runs)).values("inputs")
        ).order_by("asset__kind", "pk")
    )


def _cleaning_runs_of(versions) -> dict[int, PipelineRun]:
    """The cleaning run that produced each of the versions (those that were cleaned), by the
    version's pk."""
    return {
        (r.outputs or {}).get("cleaned_version"): r
        for r in PipelineRun.objects.filter(
            outputs__cleaned_version__in=[v.pk for v in versions]
        ).select_related("requested_by")
    }


def _approvals_by_subject(subjects) -> dict[int, list[dict]]:
    """Approvals (who, team, when, verdict) of the latest request per subject (instances of one
    model), in a fixed number of queries."""
    out: dict[int, list[dict]] = {}
    for subject_id, request in approvals_latest_for(subjects, requirements=False).items():
        out[subject_id] = [
            {
                "approver": d.approver.get_username(),
                "name": d.approver.get_full_name() or d.approver.get_username(),
                "team": d.team.name,
                "verdict": d.verdict,
                "comment": d.comment,
                "at": d.created_at,
                "request_state": request.state,
            }
            for d in request.decisions.all()
        ]
    return out


def _index_entry(index: IndexVersion) -> dict:
    """The index version, with who approved its activation."""
    return {
        "id": index.pk,
        "kind": index.kind,
        "items": index.n_items,
        "status": index.status,
        "created_at": index.created_at,
        "activated_at": index.activated_at,
        "checksum": index.checksum,
        "url": reverse("recsys:pipeline_detail", args=[index.pipeline.slug]) + f"#index-{index.pk}",
        "activation_approvals": _approvals_by_subject([index]).get(index.pk, []),
    }


def _model_entry(model: ModelVersion) -> dict:
    return {
        "id": model.pk,
        "base_model": model.base_model,
        "checksum": model.checksum,
        "metrics": model.metrics,
    }


def _run_entry(run: PipelineRun, approvals: list[dict]) -> dict:
    return {
        "id": run.pk,
        "kind": run.get_kind_display(),
        "state": run.state,
        "requested_by": run.requested_by.get_username(),
        "finished_at": run.finished_at,
        "url": reverse("recsys:run_detail", args=[run.pk]),
        "approvals": approvals,
    }


def _cleaned_catalog(training_run: PipelineRun, index_run: PipelineRun) -> dict | None:
    """The cleaned catalog version the index was built from (named even once deleted)."""
    cleaned_id = (index_run.outputs or {}).get("cleaned_version") or (
        training_run.outputs or {}
    ).get("cleaned_version")
    if not cleaned_id:
        return None
    cleaned = dataset_versions(ids=[cleaned_id]).first()
    return {
        "id": cleaned_id,
        "label": str(cleaned) if cleaned else f"version #{cleaned_id} (deleted)",
        "url": reverse("governance:version_detail", args=[cleaned_id]) if cleaned else "",
    }


def _dataset_entry(version, *, approvals: list[dict], cleaned_by: dict | None) -> dict:
    return {
        "id": version.pk,
        "label": str(version),
        "asset": version.asset.name,
        "kind": version.asset.get_kind_display(),
        "team": version.asset.owning_team.name,
        "status": version.status,
        "sha256": version.sha256,
        "rows": version.row_count,
        "uploaded_by": version.uploaded_by.get_username(),
        "url": reverse("governance:version_detail", args=[version.pk]),
        "approvals": approvals,
        "cleaned_by": cleaned_by,
    }


def index_product(index: IndexVersion, product_id: str) -> dict:
    """One product of an index's product table (the result a "why" question is about), read
    with a row filter rather than by loading the engine; `missing` when it is not there."""
    import pandas as pd

    from recsys.pipelines.products import PRODUCTS_FILE

    try:
        rows = pd.read_parquet(
            f"{index.path}/{PRODUCTS_FILE}",
            columns=["id", "title"],
            filters=[("id", "==", product_id)],
        )
    except (OSError, ValueError):
        rows = None
    if rows is None or rows.empty:
        return {"id": product_id, "missing": True}
    return rows.iloc[0].to_dict()
