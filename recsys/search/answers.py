"""The selector of search answers: search, similar items and recommendations, each a `Served`
(the answer, what was asked, and the index version that answered). The console, the API and
`manage.py search` all call it, so all three parse, refuse and answer the same way.

Who may query: admins and the ops and leads of the pipeline's owning team (and leads above it),
the people who run the pipeline. Anyone else in the organization is refused with a reason;
someone outside it gets 404, as everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from core.errors import NotFoundError, PermissionDeniedError, ValidationError
from recsys import permissions, selectors, serving
from recsys.models import IndexVersion, Pipeline, SavedQuerySet
from recsys.pipelines.engine import SEARCH_MODES, Answer, SearchEngine, UnknownProductError
from recsys.pipelines.engine import UnknownUserError as _UnknownUser
from recsys.pipelines.products import FilterError

MAX_QUERY_CHARS = 512
MAX_K = 100
CONTROL_PARAMETERS = {"q", "k", "mode", "pipeline", "index", "format", "page"}


@dataclass
class Served:
    """An answer, what was asked (the normalised query, or the product or user it is for) and
    the index version that answered."""

    pipeline: Pipeline
    index_id: int
    answer: Answer
    engine: SearchEngine
    asked: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The API's answer (SearchAnswer in the schema, plus what was asked, first)."""
        return {
            **self.asked,
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
    default = getattr(settings, "STEWARD_SEARCH_PIPELINE", "product-search")
    pipeline = selectors.pipeline_get_queryable(user=user, slug=slug or default)
    if pipeline is not None:  # the common case, in two small queries
        return pipeline
    visible = selectors.pipelines_visible_to(user=user).prefetch_related(None)  # inputs unneeded
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


def index_get_queryable(*, user, pk: int) -> IndexVersion:
    """An index version the user may query (404 when they cannot see it, 403 with the reason
    when they may see but not query it)."""
    index = selectors.index_get_for_user(user=user, pk=pk)
    require_query(user, index.pipeline)
    return index


def query_set_get_queryable(*, user, pk: int) -> SavedQuerySet:
    """One of the user's saved query sets, of a pipeline they may still query."""
    saved = selectors.query_set_get_for_user(user=user, pk=pk)
    require_query(user, saved.pipeline)
    return saved


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
    """The filter parameters of a request (a dict or a QueryDict, whose last value of a name
    counts): everything that is not a control parameter."""
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
    return Served(where.pipeline, where.index_id, answer, where.engine, {"query": query})


def search_answer(
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


def similar_answer(
    *, user, product_id: str, k=None, pipeline=None, index=None, filters=None
) -> Served:
    """The nearest products of one product of the index."""
    k = parse_k(k)
    where = target(user=user, pipeline=pipeline, index=index)
    try:
        answer = where.engine.similar(str(product_id), k, filters=filters)
    except UnknownProductError:
        raise NotFoundError(f"Product {product_id} is not in index v{where.index_id}.") from None
    except FilterError as exc:
        raise ValidationError(str(exc), field="filters") from None
    return Served(where.pipeline, where.index_id, answer, where.engine, {"product_id": product_id})


def recommendations_answer(*, user, user_id: str, k=None, pipeline=None, index=None) -> Served:
    """Products for one user of the index's behaviour data (popular ones for a cold start)."""
    k = parse_k(k)
    where = target(user=user, pipeline=pipeline, index=index)
    try:
        answer = where.engine.recommend(str(user_id), k)
    except _UnknownUser:
        raise NotFoundError(
            f"User {user_id} has no behaviour event in the data of index v{where.index_id}."
        ) from None
    return Served(where.pipeline, where.index_id, answer, where.engine, {"user_id": user_id})
