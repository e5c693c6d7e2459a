"""The jobs of one run attempt, one function per run kind, built from shared steps:

- ``full_retrain``: clean → pairs → fine-tune → index → evaluate (model + index versions);
- ``clean``: clean the catalog and submit the result as a new version for its stewards;
- ``fine_tune``: clean → pairs → fine-tune → evaluate zero-shot vs fine-tuned (a model version,
  no index kept);
- ``build_index``: clean → embed + index with a chosen model version → evaluate (with labels)
  against zero-shot and the served index (a candidate index version);
- ``evaluate``: re-measure an index version on held-out queries and store the metrics on it.

Django-aware orchestration only: it reads the approved input files, calls the pure functions of
recsys/pipelines, reports progress through services (which say whether to stop), and hands
what it produced (RunResults) to run_finish, which records it if the attempt succeeds. Heavy
work runs outside any transaction.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from recsys.choices import RunKind, RunState
from recsys.constants import SPLIT_PARAMETERS
from recsys.models import ModelVersion, PipelineRun
from recsys.pipelines.common import CancelledError
from recsys.pipelines.encoding import compute_device, resolve_device
from recsys.services.indexes import serving_mode
from recsys.services.run_results import (
    BuiltIndex,
    RunResults,
    TrainedModel,
    run_results_discard_unrecorded,
)
from recsys.services.run_validation import (
    index_version_of,
    model_version_of,
    resolve_base_model,
)
from recsys.services.runs import run_finish, run_progress, run_record_index_metrics
from recsys.storage import STORED_FILES, note_stored_file, remove_tree, run_dir

logger = logging.getLogger(__name__)
# Each kind's steps and the part of the run's 0..100 progress each one covers.
STEP_PROGRESS = {
    RunKind.FULL_RETRAIN: {
        "clean": (0, 15),
        "pairs": (15, 20),
        "fine_tune": (20, 70),
        "index": (70, 85),
        "evaluate": (85, 100),
    },
    RunKind.CLEAN: {"clean": (0, 100)},
    RunKind.FINE_TUNE: {"clean": (0, 15), "pairs": (15, 20), "fine_tune": (20, 80)}
    | {"evaluate": (80, 100)},
    RunKind.BUILD_INDEX: {"clean": (0, 20), "index": (20, 75), "pairs": (75, 80)}
    | {"evaluate": (80, 100)},
    RunKind.EVALUATE: {"clean": (0, 30), "pairs": (30, 40), "evaluate": (40, 100)},
}


class _Progress:
    """Maps a step's own 0..1 progress into the run's 0..100 and polls for cancellation."""

    def __init__(self, run: PipelineRun, attempt: int):
        self.run, self.attempt, self.low, self.high, self.step = run, attempt, 0, 0, "starting"
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
        if not run_progress(
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
    cancelled), and a failed or cancelled attempt leaves no files and registers no version."""
    results = RunResults()
    try:
        _execute(run=run, attempt=attempt, results=results)
    finally:  # a file stored for a version that no succeeded attempt recorded goes too
        run_results_discard_unrecorded(results)


def _execute(*, run: PipelineRun, attempt: int, results: RunResults) -> None:
    workdir = run_dir(run.job_key, attempt)
    progress = _Progress(run, attempt)
    timings: dict[str, float] = {}
    try:
        job = JOB_BY_KIND.get(run.kind)
        if job is None:
            raise ValueError(f"unknown run kind {run.kind!r}")
        if run.kind == RunKind.CLEAN:  # pandas only: any host can clean
            outputs = job(run, workdir, progress, timings, results)
        else:
            # The base model again, against this worker's STEWARD_BASE_MODELS: a folder or a fail.
            base = resolve_base_model(run.pipeline, run.parameters.get("base_model", ""))
            run.parameters = {**run.parameters, "base_model": base}
            device = _device(progress)
            with compute_device(device):
                outputs = job(run, workdir, progress, timings, results)
            outputs["device"] = device
    except CancelledError as exc:
        remove_tree(workdir)
        run_finish(
            run_id=run.pk,
            attempt=attempt,
            outcome=RunState.CANCELLED,
            error=str(exc),
            timings=timings,
        )
        return
    except SoftTimeLimitExceeded:
        limit = settings.STEWARD_RUN_SOFT_TIME_LIMIT
        _fail(run, attempt, workdir, f"stopped at its time limit of {limit}s", timings)
        return
    except Exception as exc:
        _fail(run, attempt, workdir, f"{type(exc).__name__}: {exc}", timings)
        return
    try:
        run_finish(
            run_id=run.pk,
            attempt=attempt,
            outcome=RunState.SUCCEEDED,
            outputs=outputs,
            timings=timings,
            results=results,
        )
    except Exception as exc:  # recording its versions failed: nothing of them was kept
        _fail(run, attempt, workdir, f"recording its results failed: {exc}", timings)
        return
    if PipelineRun.objects.filter(pk=run.pk, state=RunState.SUCCEEDED, attempt=attempt).exists():
        remove_tree(workdir / "work")
        (workdir / STORED_FILES).unlink(missing_ok=True)  # recorded: nothing for a sweep
    else:  # cancelled or lost in the meantime: nothing of it is kept
        remove_tree(workdir)


def _fail(run: PipelineRun, attempt: int, workdir: Path, reason: str, timings: dict) -> None:
    logger.exception("run %s attempt %s failed", run.pk, attempt)
    remove_tree(workdir)
    run_finish(
        run_id=run.pk, attempt=attempt, outcome=RunState.FAILED, error=reason, timings=timings
    )


def _device(progress: _Progress) -> str:
    """The torch device of this worker's jobs (STEWARD_PIPELINE_DEVICE: auto, cpu, cuda[:N]),
    said in the run's log; a setting this host cannot honour fails the run with the reason."""
    try:
        device = resolve_device(settings.STEWARD_PIPELINE_DEVICE)
    except ValueError as exc:
        raise ValueError(f"STEWARD_PIPELINE_DEVICE: {exc}") from None
    progress.report(0.0, f"device: {device}", force=True)
    return device


@contextmanager
def _step(run: PipelineRun, name: str, progress: _Progress, timings: dict):
    """One step of the run's kind: its progress range begins, its wall time is recorded."""
    low, high = STEP_PROGRESS[run.kind][name]
    progress.begin(name, low, high)
    start = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - start, 3)


def _inputs(run: PipelineRun) -> dict:
    return {v.asset.kind: v for v in run.inputs.select_related("asset")}


def _read(version, *, kind: str):
    import pandas as pd

    import datafiles
    from core.hashing import sha256_file
    from governance.selectors import dataset_read_limits

    path = default_storage.path(version.file.name)
    actual = sha256_file(path)  # the approved file, not one changed since: else fail the run
    if actual != version.sha256:
        raise ValueError(
            f"the stored file of {version} has sha256 {actual}, not the {version.sha256} "
            "recorded at upload: it was altered after approval"
        )
    limits = dataset_read_limits(timed=False)  # the same bounds as profiling, but for the time
    if version.format == "chorus-products":
        frames = datafiles.read_chorus_products(path, limits=limits)
    else:
        frames = datafiles.iter_frames(path, fmt=version.format, limits=limits)
    return pd.concat(list(frames), ignore_index=True)


# --- the shared steps -------------------------------------------------------------------------


def _clean(run, inputs, workdir: Path, progress, timings, results: RunResults | None):
    """Clean the catalog input; (frame, report). With `results`, the cleaned catalog is
    written to the work folder and becomes a version submitted to the catalog's stewards once
    the attempt succeeds (None: an evaluation re-derives the same frame, and keeps nothing)."""
    from recsys.pipelines import steps

    source = inputs["product_catalog"]
    (workdir / "work").mkdir(parents=True, exist_ok=True)
    with _step(run, "clean", progress, timings):
        catalog, report = steps.clean_catalog(
            _read(source, kind="product_catalog"), should_stop=progress.should_stop
        )
        if results is not None:
            path = workdir / "work" / "catalog.clean.csv"
            catalog.to_csv(path, index=False)
            stored = _store_cleaned(run, source, path, report)  # slow I/O: before run_finish
            note_stored_file(workdir, stored.file.name)  # for the sweep, should this worker die
            results.cleaned_catalog = stored
    return catalog, report


def _events(inputs: dict):
    """The behaviour events input read once (pairs and the index artifact use it), or None."""
    events = inputs.get("behaviour_events")
    return _read(events, kind="behaviour_events") if events else None


def _pairs(run, inputs, catalog, events, params: dict, progress, timings):
    """Training pairs and the held-out judgments (split by query, seeded by `params`)."""
    from recsys.pipelines import steps

    with _step(run, "pairs", progress, timings):
        labels = _read(inputs["relevance_labels"], kind="relevance_labels")
        return steps.training_pairs(catalog, labels, events, params)


def _fine_tune(run, pairs, workdir: Path, progress, timings):
    from recsys.pipelines import steps

    with _step(run, "fine_tune", progress, timings):
        return steps.fine_tune(
            pairs.train, run.parameters, workdir / "model", progress, progress.should_stop
        )


def _index(run, catalog, events, model_path, params: dict, out_dir: Path, progress, timings):
    """Embed the catalog with the model and write the index artifact (dense index: flat below
    200k products, else a graph tuned to recall@10 ≥ 0.95 against exact search, or exact when
    it cannot reach that; with its BM25 index, product table and events)."""
    from recsys.pipelines import steps

    with _step(run, "index", progress, timings):
        return steps.build_catalog_index(
            catalog, str(model_path), params, out_dir, progress.should_stop, events=events
        )


def _evaluate(
    run, catalog, pairs, params: dict, *, model_path, index_path, active, progress, timings
) -> dict:
    """nDCG@10, Recall@100, MRR@10 on the held-out queries: zero-shot base model (exact
    search), the model through the index, and the served index when `active` is given."""
    from recsys.pipelines import steps

    with _step(run, "evaluate", progress, timings):
        return steps.evaluate_models(
            catalog,
            pairs.heldout_judgments,
            params,
            fine_tuned=str(model_path),
            index_path=str(index_path),
            active=active,
        )


def _params_of(run: PipelineRun, model_version: ModelVersion) -> dict:
    """This run's parameters, with the held-out split and the zero-shot base of the run that
    trained `model_version`, so that it is scored on queries it did not train on."""
    trained = model_version.run.parameters or {}
    split = {name: trained[name] for name in SPLIT_PARAMETERS if name in trained}
    base = resolve_base_model(run.pipeline, model_version.base_model)
    return {**run.parameters, **split, "base_model": base}


def _split_note(inputs: dict, model_version: ModelVersion, progress: _Progress) -> dict:
    """Whether the held-out queries are the ones the model did not train on: the same split
    parameters always; the same labels and events versions too, or some may have been seen
    (said in the run's log)."""
    kinds = ["relevance_labels", "behaviour_events"]
    used = {v.pk for kind, v in inputs.items() if kind in kinds}
    trained_on = set(
        model_version.run.inputs.filter(asset__kind__in=kinds).values_list("pk", flat=True)
    )
    if used != trained_on:
        progress.report(
            progress.fraction,
            f"note: labels/events differ from those model v{model_version.pk} trained on; "
            "some held-out queries may have been seen in its training",
            force=True,
        )
    return {"model_version": model_version.pk, "same_labels_as_training": used == trained_on}


def _active_artifacts(run: PipelineRun, *, exclude: int | None = None) -> dict | None:
    active = getattr(run.pipeline, "active", None)
    if active is None or active.index_id == exclude:
        return None
    index = active.index
    return {
        "index_path": index.path,
        "model_path": index.model_version.path,
        "index_id": index.pk,
        "mode": serving_mode(index),
    }


# --- one function per kind --------------------------------------------------------------------


def _clean_only(run: PipelineRun, workdir: Path, progress: _Progress, timings, results) -> dict:
    """The "clean" kind: clean the catalog and submit it as a new version for its stewards."""
    _catalog, report = _clean(run, _inputs(run), workdir, progress, timings, results)
    return {"clean_report": report}


def _full_retrain(run: PipelineRun, workdir: Path, progress: _Progress, timings, results) -> dict:
    """clean → pairs → fine-tune → index → evaluate (zero-shot, fine-tuned index, served
    index): a model version and a candidate index version."""
    inputs, params = _inputs(run), run.parameters
    catalog, clean_report = _clean(run, inputs, workdir, progress, timings, results)
    events = _events(inputs)
    pairs = _pairs(run, inputs, catalog, events, params, progress, timings)
    model = _fine_tune(run, pairs, workdir, progress, timings)
    index = _index(run, catalog, events, model.path, params, workdir / "index", progress, timings)
    metrics = _evaluate(
        run,
        catalog,
        pairs,
        params,
        model_path=model.path,
        index_path=index.path,
        active=_active_artifacts(run),
        progress=progress,
        timings=timings,
    )
    results.model = TrainedModel(artifact=model, metrics=metrics.get("fine_tuned", {}))
    results.index = BuiltIndex(
        artifact=index,
        catalog_version=inputs["product_catalog"],
        model_version=None,  # the model this attempt trained
        metrics=metrics,
    )
    return {
        "clean_report": clean_report,
        "pairs_report": pairs.report,
        "metrics": metrics,
    }


def _fine_tune_only(run: PipelineRun, workdir: Path, progress: _Progress, timings, results) -> dict:
    """The "fine_tune" kind: clean → pairs → fine-tune → evaluate zero-shot vs fine-tuned on
    the held-out queries. The evaluation searches a scratch index of the catalog built like a
    build would (exact flat below 200k products) and deleted with the run's work folder: the
    run records a model version and no index version (a build_index run makes one)."""
    from recsys.pipelines import steps

    inputs, params = _inputs(run), run.parameters
    catalog, clean_report = _clean(run, inputs, workdir, progress, timings, results)
    pairs = _pairs(run, inputs, catalog, _events(inputs), params, progress, timings)
    model = _fine_tune(run, pairs, workdir, progress, timings)
    with _step(run, "evaluate", progress, timings):
        scratch = steps.build_catalog_index(
            catalog, str(model.path), params, workdir / "work" / "eval-index", progress.should_stop
        )
        metrics = steps.evaluate_models(
            catalog,
            pairs.heldout_judgments,
            params,
            fine_tuned=str(model.path),
            index_path=str(scratch.path),
            active=None,
        )
    results.model = TrainedModel(artifact=model, metrics=metrics.get("fine_tuned", {}))
    return {
        "clean_report": clean_report,
        "pairs_report": pairs.report,
        "metrics": metrics,
    }


def _build_index(run: PipelineRun, workdir: Path, progress: _Progress, timings, results) -> dict:
    """The "build_index" kind: clean → embed + index the catalog with the model version named
    by the run's parameters → evaluate when labels are an input (zero-shot, this index, the
    served index; the quality gate of activation needs it) → a candidate index version.
    Without labels the index has no metrics yet: an evaluate run adds them."""
    inputs = _inputs(run)
    model_version = model_version_of(run)
    if model_version is None:
        raise ValueError(f"model version {run.parameters.get('model_version')} is gone")
    params = _params_of(run, model_version)
    catalog, clean_report = _clean(run, inputs, workdir, progress, timings, results)
    events = _events(inputs)
    index = _index(
        run, catalog, events, model_version.path, params, workdir / "index", progress, timings
    )
    outputs = {"model_version": model_version.pk}
    metrics: dict = {}
    if "relevance_labels" in inputs:
        pairs = _pairs(run, inputs, catalog, events, params, progress, timings)
        outputs["heldout_split"] = _split_note(inputs, model_version, progress)
        metrics = _evaluate(
            run,
            catalog,
            pairs,
            params,
            model_path=model_version.path,
            index_path=index.path,
            active=_active_artifacts(run),
            progress=progress,
            timings=timings,
        )
        outputs |= {"pairs_report": pairs.report, "metrics": metrics}
    results.index = BuiltIndex(
        artifact=index,
        catalog_version=inputs["product_catalog"],
        model_version=model_version,
        metrics=metrics,
    )
    return {**outputs, "clean_report": clean_report}


def _evaluate_only(run: PipelineRun, workdir: Path, progress: _Progress, timings, results) -> dict:
    """The "evaluate" kind: nDCG@10, Recall@100, MRR@10 of the index version named by the run's
    parameters (its model through its own index, checksums verified) against zero-shot and the
    served index, on the held-out queries of its model's split, queries encoded as the index
    was built (its build run's max_length); stored on the index version (audited) and in the
    run's outputs. Produces no dataset, model or index version."""
    inputs = _inputs(run)
    index = index_version_of(run)
    if index is None:
        raise ValueError(f"index version {run.parameters.get('index_version')} is gone")
    model_version = index.model_version
    built_with = (index.run.parameters or {}).get("max_length")
    params = _params_of(run, model_version) | ({"max_length": built_with} if built_with else {})
    catalog, clean_report = _clean(run, inputs, workdir, progress, timings, None)
    pairs = _pairs(run, inputs, catalog, _events(inputs), params, progress, timings)
    split = _split_note(inputs, model_version, progress)
    metrics = _evaluate(
        run,
        catalog,
        pairs,
        params,
        model_path=model_version.path,
        index_path=index.path,
        active=_active_artifacts(run, exclude=index.pk),
        progress=progress,
        timings=timings,
    )
    if not run_record_index_metrics(
        run_id=run.pk, attempt=run.attempt, index_id=index.pk, metrics=metrics
    ):
        raise CancelledError("cancelled before the evaluation was stored")
    return {
        "index_version": index.pk,
        "metrics": metrics,
        "previous_metrics": index.metrics,
        "heldout_split": split,
        "pairs_report": pairs.report,
        "clean_report": clean_report,
    }


JOB_BY_KIND = {
    RunKind.FULL_RETRAIN: _full_retrain,
    RunKind.CLEAN: _clean_only,
    RunKind.FINE_TUNE: _fine_tune_only,
    RunKind.BUILD_INDEX: _build_index,
    RunKind.EVALUATE: _evaluate_only,
}


# --- storing ----------------------------------------------------------------------------------


def _store_cleaned(run, source, path: Path, report: dict):
    """Hash and store the cleaned catalog as a version not recorded yet (outside any
    transaction: the lock run_finish takes is held for the short recording only)."""
    from governance.services.versions import dataset_version_store_derived

    with path.open("rb") as handle:
        return dataset_version_store_derived(
            asset=source.asset,
            file=File(handle, name=path.name),
            name=path.name,
            fmt="csv",
            uploader=run.requested_by,
            note=f"Cleaned from {source} ({report['rows_in']} → {report['rows_out']} rows)",
            run_key=run.job_key,
        )
