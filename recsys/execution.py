"""The full retrain of one run attempt: clean → pairs → fine-tune → index → evaluate.

Django-aware orchestration only: it reads the approved input files, calls the pure functions of
recsys/pipelines, reports progress through services (which say whether to stop), and records
the results in one compare-and-set at the end. Heavy work runs outside any transaction.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from recsys.choices import RunKind, RunState
from recsys.models import ModelVersion, PipelineRun
from recsys.pipelines.common import CancelledError
from recsys.services import runs as services
from recsys.storage import remove_tree, run_dir

logger = logging.getLogger(__name__)
STEPS = [
    ("clean", 0, 15),
    ("pairs", 15, 20),
    ("fine_tune", 20, 70),
    ("index", 70, 85),
    ("evaluate", 85, 100),
]


class _Progress:
    """Maps a step's own 0..1 progress into the run's 0..100 and polls for cancellation."""

    def __init__(self, run: PipelineRun, attempt: int):
        self.run, self.attempt, self.low, self.high, self.step = run, attempt, 0, 0, ""
        self.last, self.fraction = 0.0, 0.0

    def begin(self, step: str, low: int, high: int) -> None:
        self.step, self.low, self.high = step, low, high
        self.report(0.0, f"{step}: started", force=True)

    def report(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        self.fraction = fraction
        now = time.monotonic()
        if not force and now - self.last < 1.0:
            return
        self.last = now
        value = int(self.low + (self.high - self.low) * max(0.0, min(1.0, fraction)))
        if not services.run_progress(
            run_id=self.run.pk,
            attempt=self.attempt,
            progress=value,
            step=self.step,
            line=message if force else "",
        ):
            raise CancelledError(f"cancelled during {self.step}")

    def should_stop(self) -> bool:
        """Polled before every batch (one cheap query, so a cancel stops within one batch);
        also the throttled heartbeat that tells the sweep the worker lives."""
        fresh = (
            PipelineRun.objects.filter(pk=self.run.pk)
            .values_list("cancel_requested", "state", "attempt")
            .first()
        )
        if fresh is None or fresh[0] or fresh[1] != RunState.RUNNING or fresh[2] != self.attempt:
            return True
        try:
            self.report(self.fraction)
        except CancelledError:
            return True
        return False

    def __call__(self, fraction: float, message: str = "") -> None:  # ProgressFn
        self.report(fraction, message)


def execute(*, run: PipelineRun, attempt: int) -> None:
    """Run the job; every outcome ends in run_finish (succeeded, failed with the reason, or
    cancelled), and a failed or cancelled attempt leaves no temporary files."""
    workdir = run_dir(run.job_key, attempt)
    progress = _Progress(run, attempt)
    timings: dict[str, float] = {}
    try:
        job = _clean_only if run.kind == RunKind.CLEAN else _full_retrain
        outputs = job(run, workdir, progress, timings)
    except CancelledError as exc:
        remove_tree(workdir)
        services.run_finish(
            run_id=run.pk,
            attempt=attempt,
            outcome=RunState.CANCELLED,
            error=str(exc),
            timings=timings,
        )
        return
    except Exception as exc:
        logger.exception("run %s attempt %s failed", run.pk, attempt)
        remove_tree(workdir)
        services.run_finish(
            run_id=run.pk,
            attempt=attempt,
            outcome=RunState.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            timings=timings,
        )
        return
    remove_tree(workdir / "work")
    if not services.run_finish(
        run_id=run.pk, attempt=attempt, outcome=RunState.SUCCEEDED, outputs=outputs, timings=timings
    ):
        remove_tree(workdir)  # cancelled in the meantime: nothing of it is kept


def _timed(timings: dict, name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            timings[name] = round(time.monotonic() - self.start, 3)

    return _Timer()


def _inputs(run: PipelineRun) -> dict:
    return {v.asset.kind: v for v in run.inputs.select_related("asset")}


def _read(version, *, kind: str):
    import pandas as pd

    from governance import profiling

    path = default_storage.path(version.file.name)
    if version.format == "chorus-products":
        return pd.concat(list(profiling.read_chorus_products(path)), ignore_index=True)
    return pd.concat(list(profiling.iter_frames(path, fmt=version.format)), ignore_index=True)


def _clean_only(run: PipelineRun, workdir: Path, progress: _Progress, timings: dict) -> dict:
    """The "clean" kind: clean the catalog and submit it as a new version for its stewards."""
    from recsys.pipelines import retrain as jobs

    source = _inputs(run)["product_catalog"]
    (workdir / "work").mkdir(parents=True, exist_ok=True)
    progress.begin("clean", 0, 100)
    with _timed(timings, "clean"):
        catalog, report = jobs.clean_catalog(
            _read(source, kind="product_catalog"), should_stop=progress.should_stop
        )
        derived = _register_cleaned(run, source, catalog, workdir, report)
    return {"cleaned_version": derived.pk, "clean_report": report}


def _full_retrain(run: PipelineRun, workdir: Path, progress: _Progress, timings: dict) -> dict:
    from recsys.pipelines import retrain as jobs

    inputs = _inputs(run)
    params = run.parameters
    (workdir / "work").mkdir(parents=True, exist_ok=True)
    progress.begin("clean", 0, 15)
    with _timed(timings, "clean"):
        catalog, clean_report = jobs.clean_catalog(
            _read(inputs["product_catalog"], kind="product_catalog"),
            should_stop=progress.should_stop,
        )
        derived = _register_cleaned(run, inputs["product_catalog"], catalog, workdir, clean_report)
    progress.begin("pairs", 15, 20)
    with _timed(timings, "pairs"):
        events = inputs.get("behaviour_events")
        pairs = jobs.training_pairs(
            catalog,
            _read(inputs["relevance_labels"], kind="relevance_labels"),
            _read(events, kind="behaviour_events") if events else None,
            params,
        )
    progress.begin("fine_tune", 20, 70)
    with _timed(timings, "fine_tune"):
        model = jobs.fine_tune(
            pairs.train, params, workdir / "model", progress, progress.should_stop
        )
    progress.begin("index", 70, 85)
    with _timed(timings, "index"):
        index = jobs.build_catalog_index(
            catalog, model.path, params, workdir / "index", progress.should_stop
        )
    progress.begin("evaluate", 85, 100)
    with _timed(timings, "evaluate"):
        metrics = jobs.evaluate_models(
            catalog,
            pairs.heldout_judgments,
            params,
            fine_tuned=model.path,
            index_path=index.path,
            active=_active_artifacts(run),
        )
    return _record_versions(
        run, inputs, model, index, metrics, clean_report, pairs.report, derived, timings
    )


def _register_cleaned(run, source, catalog, workdir: Path, report: dict):
    from governance.services.versions import dataset_version_register_derived

    path = workdir / "work" / "catalog.clean.csv"
    catalog.to_csv(path, index=False)
    with path.open("rb") as handle, transaction.atomic():
        version = dataset_version_register_derived(
            asset=source.asset,
            file=File(handle, name=path.name),
            name=path.name,
            fmt="csv",
            uploader=run.requested_by,
            note=f"Cleaned from {source} ({report['rows_in']} → {report['rows_out']} rows)",
            run_key=run.job_key,
        )
    return version


def _active_artifacts(run: PipelineRun) -> dict | None:
    active = getattr(run.pipeline, "active", None)
    if active is None:
        return None
    index = active.index
    return {"index_path": index.path, "model_path": index.model_version.path, "index_id": index.pk}


@transaction.atomic
def _record_versions(
    run, inputs, model, index, metrics, clean_report, pairs_report, derived, timings
) -> dict:
    from recsys.models import IndexVersion

    model_version = ModelVersion.objects.create(
        run=run,
        base_model=model.base_model,
        path=str(model.path),
        checksum=model.checksum,
        config=model.config,
        training_curve=model.curve,
        metrics=metrics.get("fine_tuned", {}),
    )
    index_version = IndexVersion.objects.create(
        pipeline=run.pipeline,
        run=run,
        model_version=model_version,
        catalog_version=inputs["product_catalog"],
        path=str(index.path),
        checksum=index.checksum,
        kind=index.kind,
        n_items=index.n,
        dim=index.dim,
        build_params=index.params,
        metrics=metrics,
    )
    return {
        "model_version": model_version.pk,
        "index_version": index_version.pk,
        "cleaned_version": derived.pk,
        "clean_report": clean_report,
        "pairs_report": pairs_report,
        "metrics": metrics,
    }
