"""What a run may be requested with, checked by run_request and again when it starts: its
inputs (approved versions of the pipeline's input assets, the kinds its run kind needs), its
parameters (known, typed, in range) and the model or index version a single-step run works on.

A version parameter is resolved when the run is requested (``build_index`` without one takes
the newest model version) and stored as an id in the parameters, so the approval pins it
through the parameters hash.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from django.conf import settings

from core.errors import ValidationError
from governance.choices import VersionStatus
from recsys.choices import RunKind, RunState
from recsys.constants import RUN_PARAMETERS, VERSION_PARAMETERS
from recsys.models import IndexVersion, ModelVersion, Pipeline, PipelineRun
from recsys.pipelines.common import stable_hash

if TYPE_CHECKING:
    from governance.models import DatasetVersion

# How a run names an earlier model version of its pipeline as its base model: "model:<id>".
BASE_MODEL_VERSION_PREFIX = "model:"
USABLE_INPUT_STATES = {VersionStatus.APPROVED, VersionStatus.SUPERSEDED}

# Input kinds each run kind needs (others of the pipeline's inputs are optional).
REQUIRED_INPUT_KINDS = {
    RunKind.FULL_RETRAIN: {"product_catalog", "relevance_labels"},
    RunKind.CLEAN: {"product_catalog"},
    RunKind.FINE_TUNE: {"product_catalog", "relevance_labels"},
    RunKind.BUILD_INDEX: {"product_catalog"},  # + relevance_labels to evaluate the index
    RunKind.EVALUATE: {"product_catalog", "relevance_labels"},
}


def validate_parameters(pipeline: Pipeline, given: dict, kind: str | None = None) -> dict:
    """Defaults from the spec and the pipeline, overridden by `given`; each value checked.

    `kind` None checks a pipeline's default parameters, which may not name a version. For a
    run, the version parameter of its kind is resolved (see module docstring) and those of
    other kinds are refused."""
    unknown = set(given) - set(RUN_PARAMETERS)
    if unknown:
        raise ValidationError(
            f"Unknown parameter(s): {', '.join(sorted(unknown))}. Known: "
            f"{', '.join(RUN_PARAMETERS)}.",
            field="parameters",
        )
    for name, takes in VERSION_PARAMETERS.items():
        if given.get(name) in (None, "") or kind == takes:
            continue
        where = f"{takes} runs only" if kind else f"{takes} runs, chosen per run"
        raise ValidationError(f"Parameter {name} applies to {where}.", field="parameters")
    values = {
        name: spec[1] for name, spec in RUN_PARAMETERS.items() if name not in VERSION_PARAMETERS
    }
    values.update({k: v for k, v in (pipeline.default_parameters or {}).items() if k in values})
    values.update({k: v for k, v in given.items() if k in values})
    for name in values:
        kind_of, _default, low, high = RUN_PARAMETERS[name]
        values[name] = _check_parameter(name, values[name], kind_of, low, high)
    resolve_base_model(pipeline, values["base_model"])
    for name, takes in VERSION_PARAMETERS.items():
        if kind == takes:
            kind_of, _default, low, high = RUN_PARAMETERS[name]
            value = _check_parameter(name, given.get(name), kind_of, low, high)
            values[name] = _resolve_version(pipeline, name, value)
    return values


def base_model_name(folder: str) -> str:
    """What a model version records as its base: the name of a configured base model (so that
    another host, where STEWARD_BASE_MODELS puts that model in another folder, resolves it), or
    the folder itself (an earlier model version, which all hosts share under ARTIFACT_ROOT)."""
    real = os.path.realpath(folder)
    for name, path in settings.STEWARD_BASE_MODELS.items():
        if os.path.realpath(path) == real:
            return name
    return folder


def resolve_base_model(pipeline: Pipeline, value: str) -> str:
    """The model folder a run's ``base_model`` names: "" for the first of STEWARD_BASE_MODELS
    (the shipped all-MiniLM-L6-v2 by default), one of them by name or folder, or an earlier
    model version of `pipeline` built by a succeeded run ("model:<id>", or its folder as the
    model versions record it). Anything else is refused with the allowed choices: checked when
    a run is requested and again by the worker, which never loads a model from elsewhere."""
    configured = settings.STEWARD_BASE_MODELS
    value = (value or "").strip()
    if not value:
        return next(iter(configured.values()))
    if value in configured:
        return configured[value]
    usable = (  # a pipeline being created has no model versions yet
        ModelVersion.objects.filter(run__pipeline=pipeline, run__state=RunState.SUCCEEDED)
        if pipeline.pk
        else ModelVersion.objects.none()
    )
    if value.startswith(BASE_MODEL_VERSION_PREFIX):
        number = value[len(BASE_MODEL_VERSION_PREFIX) :]
        path = (
            usable.filter(pk=int(number)).values_list("path", flat=True).first()
            if number.isdigit() and len(number) < 10
            else None
        )
        if path:
            return path
    elif os.path.isabs(value):
        folder = os.path.realpath(value)
        if folder in {os.path.realpath(p) for p in configured.values()}:
            return folder
        if usable.filter(path=value).exists():
            return value
    versions = [
        f"{BASE_MODEL_VERSION_PREFIX}{pk}"
        for pk in usable.order_by("-created_at", "-id").values_list("pk", flat=True)[:10]
    ]
    choices = ", ".join([*configured, *versions])
    raise ValidationError(
        f"Base model {value[:200]!r} is not allowed. Choose one of: {choices} (empty: "
        f"{next(iter(configured))}); an earlier model version of {pipeline.name} is named "
        f"{BASE_MODEL_VERSION_PREFIX}<id>.",
        field="parameters",
    )


def _check_parameter(name, value, kind, low, high):
    if value is None or value == "":
        return None if kind is not str else ""
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"Parameter {name} must be a {kind.__name__}.", field="parameters"
        ) from None
    if low is not None and not low <= value <= high:
        raise ValidationError(
            f"Parameter {name} must be between {low} and {high}.", field="parameters"
        )
    return value


def _resolve_version(pipeline: Pipeline, name: str, value: int | None) -> int:
    """The id of a usable model/index version of `pipeline` (built by one of its succeeded
    runs: a cancelled run's artifacts are deleted); a model version defaults to the newest."""
    model = ModelVersion if name == "model_version" else IndexVersion
    usable = model.objects.filter(run__pipeline=pipeline, run__state=RunState.SUCCEEDED)
    if value is None and name == "index_version":
        raise ValidationError(
            f"An evaluate run needs index_version: the id of an index version of {pipeline.name}.",
            field="parameters",
        )
    if value is None:
        newest = usable.order_by("-created_at", "-id").values_list("pk", flat=True).first()
        if newest is None:
            raise ValidationError(
                f"{pipeline.name} has no model version yet: run a fine-tune or a full retrain "
                "first.",
                field="parameters",
            )
        return newest
    if not usable.filter(pk=value).exists():
        raise ValidationError(
            f"There is no {name.replace('_', ' ')} {value} of {pipeline.name} built by a "
            "succeeded run.",
            field="parameters",
        )
    return value


def model_version_of(run: PipelineRun) -> ModelVersion | None:
    """The model version a build_index run embeds the catalog with (None for other kinds, or
    when it no longer qualifies: then the run must not start)."""
    return _pinned_version(run, "model_version")


def index_version_of(run: PipelineRun) -> IndexVersion | None:
    """The index version an evaluate run measures (None for other kinds, or when it no longer
    qualifies: then the run must not start)."""
    return _pinned_version(run, "index_version")


def _pinned_version(run: PipelineRun, name: str):
    """The version the run's parameter `name` pins (VERSION_PARAMETERS), when the run is of
    the kind that takes it and the version was built by a succeeded run of its pipeline."""
    if run.kind != VERSION_PARAMETERS[name]:
        return None
    model = ModelVersion if name == "model_version" else IndexVersion
    return (
        model.objects.filter(
            pk=run.parameters.get(name),
            run__pipeline_id=run.pipeline_id,
            run__state=RunState.SUCCEEDED,
        )
        .select_related("run")
        .first()
    )


def version_refusal(run: PipelineRun) -> str:
    """Why the version a single-step run names no longer qualifies ("" when it does)."""
    for name, takes in VERSION_PARAMETERS.items():
        if run.kind == takes and _pinned_version(run, name) is None:
            return (
                f"its {name.replace('_', ' ')} {run.parameters.get(name)} is no longer a "
                "version of this pipeline built by a succeeded run"
            )
    return ""


def visible_inputs(actor, inputs) -> list[DatasetVersion]:
    """The input versions asked for (objects or ids), read through what `actor` may see. One
    absent or not visible is refused with the same message, naming only the id that was sent:
    nothing of another organization's assets is told."""
    from governance.selectors import versions_visible_to

    ids = list(dict.fromkeys(getattr(v, "pk", v) for v in inputs))
    found = versions_visible_to(user=actor).filter(pk__in=ids).in_bulk()
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise ValidationError(
            f"Dataset version {', '.join(missing)} not found.",
            field="inputs",
        )
    return [found[pk] for pk in ids]


def inputs_fingerprint(versions) -> str:
    return stable_hash(sorted([v.pk, v.asset_id, v.sha256] for v in versions))


def check_inputs(pipeline: Pipeline, kind: str, versions: list[DatasetVersion]) -> None:
    """One approved version per input asset of the pipeline, with the kinds `kind` needs."""
    allowed = set(pipeline.input_assets.values_list("pk", flat=True))
    seen: set[int] = set()
    for version in versions:
        if version.asset_id not in allowed:
            raise ValidationError(f"{version} is not an input of {pipeline.name}.", field="inputs")
        if version.asset_id in seen:
            raise ValidationError(f"Choose one version of {version.asset.name}.", field="inputs")
        seen.add(version.asset_id)
        if version.status not in USABLE_INPUT_STATES:
            raise ValidationError(
                f"{version} is {version.status}: only approved versions can be inputs.",
                field="inputs",
            )
    kinds = {v.asset.kind for v in versions}
    missing = REQUIRED_INPUT_KINDS[kind] - kinds
    if missing:
        raise ValidationError(
            f"A run of kind {kind} needs an approved {' and '.join(sorted(missing))} version.",
            field="inputs",
        )


def check_inputs_match_version(kind: str, versions: list[DatasetVersion], values: dict) -> None:
    """An evaluate run scores an index over the catalog version it was built from (the
    products it holds): any other catalog would count its missing products as misses."""
    if kind != RunKind.EVALUATE:
        return
    index = IndexVersion.objects.select_related("catalog_version").get(pk=values["index_version"])
    catalogs = [v for v in versions if v.asset.kind == "product_catalog"]
    if catalogs and catalogs[0].pk != index.catalog_version_id:
        raise ValidationError(
            f"Index v{index.pk} was built from {index.catalog_version}: evaluate it with "
            f"that catalog version, not {catalogs[0]}.",
            field="inputs",
        )
