"""Reads that answer queries: search, similar items, recommendations and the provenance of an
index. Shared by the console, the API and `manage.py search`, so all three answer the same.

Who may query: admins and the ops and leads of the pipeline's owning team (and leads above it),
the people who run the pipeline. Anyone else in the organization is refused with a reason;
someone outside it gets 404, as everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from core.errors import NotFoundError, PermissionDeniedError, ValidationError
from governance.selectors import approvals_latest_for, dataset_versions
from recsys import permissions, serving
from recsys.models import IndexVersion, Pipeline, PipelineRun
from recsys.pipelines.engine import SEARCH_MODES, Answer, SearchEngine, UnknownProductError
from recsys.pipelines.engine import UnknownUserError as _UnknownUser
from recsys.pipelines.products import FilterError

MAX_QUERY_CHARS = 512
MAX_K = 100
CONTROL_PARAMETERS = {"q", "k", "mode", "pipeline", "index", "format", "page"}


@dataclass
class Served:
    """An answer and where it came from."""

    pipeline: Pipeline
    index_id: int
    answer: Answer
    engine: SearchEngine

    def as_dict(self, **extra) -> dict:
        return {
            **extra,
            "pipeline": self.pipeline.slug,
            "index_version": self.index_id,
            "mode": self.answer.mode,
            "label": self.answer.label,
            "count": len(self.answer.hits),
            "results": [hit.as_dict() for hit in self.answer.hits],
            "timings": self.answer.timings,
        }


def can_query(user, pipeline: Pipeline) -> bool:
    return permissions.can_run(user, pipeline)


def require_query(user, pipeline: Pipeline) -> None:
    permissions.require_view_pipeline(user, pipeline)
    if not can_query(user, pipeline):
        raise PermissionDeniedError(
            "Only admins and the ops and leads of "
            f"{pipeline.owning_team.name} can query the {pipeline.name} index."
        )


def queryable_pipeline(*, user, slug: str | None = None) -> Pipeline:
    """The pipeline a query is for: the one named, else the configured default
    (STEWARD_SEARCH_PIPELINE), else the first one the user may see that serves an index."""
    from recsys.selectors import pipeline_get_queryable, pipelines_visible_to

    default = getattr(settings, "STEWARD_SEARCH_PIPELINE", "product-search")
    pipeline = pipeline_get_queryable(user=user, slug=slug or default)
    if pipeline is not None:  # the common case, in two small queries
        return pipeline
    visible = pipelines_visible_to(user=user).prefetch_related(None)  # inputs are not needed
    if slug:
        pipeline = visible.filter(slug=slug).first()
    else:
        pipeline = (
            visible.filter(slug=default).first()
            or visible.filter(active__isnull=False).first()
            or visible.first()
        )
    if pipeline is None:
        raise NotFoundError("Pipeline not found." if slug else "You can see no pipeline.")
    require_query(user, pipeline)
    return pipeline


def parse_k(raw, default: int = 10) -> int:
    if raw in (None, ""):
        return default
    try:
        k = int(str(raw).strip())
    except ValueError:
        raise ValidationError(f"k must be a whole number from 1 to {MAX_K}.", field="k") from None
    if not 1 <= k <= MAX_K:
        raise ValidationError(f"k must be between 1 and {MAX_K}, got {k}.", field="k")
    return k


def parse_query(raw) -> str:
    query = " ".join(str(raw or "").split())
    if not query:
        raise ValidationError("Enter a query: q is empty.", field="q")
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationError(
            f"The query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}.",
            field="q",
        )
    return query


def parse_mode(raw, engine: SearchEngine) -> str:
    if raw in (None, ""):
        return engine.default_mode
    if raw not in SEARCH_MODES:
        raise ValidationError(
            f"Unknown mode '{raw}': choose one of {', '.join(SEARCH_MODES)}.", field="mode"
        )
    if raw not in engine.modes:
        raise ValidationError(
            f"This index was built without a lexical index, so only {', '.join(engine.modes)} "
            "is available.",
            field="mode",
        )
    return raw


def filters_from(params: Mapping[str, str]) -> dict[str, str]:
    """The filter parameters of a request: everything that is not a control parameter."""
    return {k: v for k, v in params.items() if k not in CONTROL_PARAMETERS}


def _engine(*, pipeline: Pipeline, index_id) -> tuple[int, SearchEngine]:
    if index_id in (None, ""):
        return serving.active_engine(pipeline)
    try:
        pk = int(index_id)
    except (TypeError, ValueError):
        raise ValidationError(f"index must be an index version number, got {index_id!r}.") from None
    index = (
        IndexVersion.objects.select_related("model_version")
        .filter(pipeline=pipeline, pk=pk)
        .first()
    )
    if index is None:
        raise NotFoundError(f"Index version {pk} not found in {pipeline.name}.")
    return index.pk, serving.engine_for_index(index)


@dataclass
class Target:
    """The pipeline and the loaded index a batch of queries runs against: resolved (and the
    permission checked) once, so that every query of a batch uses the same index version."""

    pipeline: Pipeline
    index_id: int
    engine: SearchEngine


def target(*, user, pipeline: str | None = None, index=None) -> Target:
    return target_in(queryable_pipeline(user=user, slug=pipeline), index)


def target_in(pipeline: Pipeline, index=None) -> Target:
    """The target in a pipeline the caller has already resolved and checked (require_query)."""
    index_id, engine = _engine(pipeline=pipeline, index_id=index)
    return Target(pipeline, index_id, engine)


def search_in(
    where: Target, *, q, k=None, mode=None, filters: Mapping[str, str] | None = None
) -> Served:
    """Search one resolved target (no database access)."""
    query, k = parse_query(q), parse_k(k)
    mode = parse_mode(mode, where.engine)
    try:
        answer = where.engine.search(query, k, mode=mode, filters=dict(filters or {}))
    except FilterError as exc:
        raise ValidationError(str(exc), field="filters") from None
    return Served(where.pipeline, where.index_id, answer, where.engine)


def search(
    *,
    user,
    q,
    k=None,
    mode=None,
    filters: Mapping[str, str] | None = None,
    pipeline: str | None = None,
    index=None,
) -> Served:
    """Search the active index of a pipeline (or one of its index versions)."""
    parse_query(q), parse_k(k)  # a bad request is refused before anything is loaded
    return search_in(
        target(user=user, pipeline=pipeline, index=index), q=q, k=k, mode=mode, filters=filters
    )


def similar(*, user, product_id: str, k=None, pipeline=None, index=None, filters=None) -> Served:
    k = parse_k(k)
    where = target(user=user, pipeline=pipeline, index=index)
    try:
        answer = where.engine.similar(str(product_id), k, filters=filters)
    except UnknownProductError:
        raise NotFoundError(f"Product {product_id} is not in index v{where.index_id}.") from None
    except FilterError as exc:
        raise ValidationError(str(exc), field="filters") from None
    return Served(where.pipeline, where.index_id, answer, where.engine)


def recommendations(*, user, user_id: str, k=None, pipeline=None, index=None) -> Served:
    k = parse_k(k)
    where = target(user=user, pipeline=pipeline, index=index)
    try:
        answer = where.engine.recommend(str(user_id), k)
    except _UnknownUser:
        raise NotFoundError(
            f"User {user_id} has no behaviour event in the data of index v{where.index_id}."
        ) from None
    return Served(where.pipeline, where.index_id, answer, where.engine)


# -- provenance ---------------------------------------------------------------------------


def _decisions_by_subject(subjects) -> dict[int, list[dict]]:
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


def index_provenance(index: IndexVersion) -> dict:
    """Index version → model version and its training run → the dataset versions it read and
    the runs that cleaned them → who approved each step, and when. In a fixed number of queries
    whatever the number of inputs."""
    from django.urls import reverse

    model = index.model_version
    run = model.run  # the run that trained the model (a build_index run only indexed it)
    index_run = index.run
    runs = {
        r.pk: r
        for r in PipelineRun.objects.filter(pk__in={run.pk, index_run.pk}).select_related(
            "requested_by"
        )
    }
    run, index_run = runs[run.pk], runs[index_run.pk]
    inputs = list(
        dataset_versions(
            ids=PipelineRun.objects.filter(pk__in=list(runs)).values("inputs")
        ).order_by("asset__kind", "pk")
    )
    cleaned_id = (index_run.outputs or {}).get("cleaned_version") or (run.outputs or {}).get(
        "cleaned_version"
    )
    cleaned = dataset_versions(ids=[cleaned_id]).first() if cleaned_id else None
    producers = {
        (r.outputs or {}).get("cleaned_version"): r
        for r in PipelineRun.objects.filter(
            outputs__cleaned_version__in=[v.pk for v in inputs]
        ).select_related("requested_by")
    }
    run_approvals = _decisions_by_subject([*runs.values(), *producers.values()])
    version_approvals = _decisions_by_subject(inputs)
    activation = _decisions_by_subject([index]).get(index.pk, [])

    def run_entry(r: PipelineRun) -> dict:
        return {
            "id": r.pk,
            "kind": r.get_kind_display(),
            "state": r.state,
            "requested_by": r.requested_by.get_username(),
            "finished_at": r.finished_at,
            "url": reverse("recsys:run_detail", args=[r.pk]),
            "approvals": run_approvals.get(r.pk, []),
        }

    datasets = []
    for version in inputs:
        producer = producers.get(version.pk)
        datasets.append(
            {
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
                "approvals": version_approvals.get(version.pk, []),
                "cleaned_by": run_entry(producer) if producer else None,
            }
        )
    return {
        "index": {
            "id": index.pk,
            "kind": index.kind,
            "items": index.n_items,
            "status": index.status,
            "created_at": index.created_at,
            "activated_at": index.activated_at,
            "checksum": index.checksum,
            "url": reverse("recsys:pipeline_detail", args=[index.pipeline.slug])
            + f"#index-{index.pk}",
            "activation_approvals": activation,
        },
        "model": {
            "id": model.pk,
            "base_model": model.base_model,
            "checksum": model.checksum,
            "metrics": model.metrics,
        },
        "training_run": run_entry(run),
        "index_run": run_entry(index_run) if index_run.pk != run.pk else None,
        "cleaned_catalog": (
            {
                "id": cleaned_id,
                "label": str(cleaned) if cleaned else f"version #{cleaned_id} (deleted)",
                "url": reverse("governance:version_detail", args=[cleaned_id]) if cleaned else "",
            }
            if cleaned_id
            else None
        ),
        "datasets": datasets,
    }
