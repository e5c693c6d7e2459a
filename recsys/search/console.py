"""The selector of the search console's reads: an answer and its comparison with another index
version, the filter choices of the index queried, and a saved query set run on two versions.
Each is a plain dataclass (or dict rows) that the console's views render; the query history and
saved sets are written by recsys.services.console.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.errors import ApplicationError
from recsys.models import Pipeline, SavedQuerySet
from recsys.pipelines.engine import SearchEngine
from recsys.search.answers import Served, filters_from, parse_k, parse_query, search_in, target_in

CONSOLE_ONLY_PARAMETERS = ("compare", "pipeline")


def compare_rankings(left: list[str], right: list[str]) -> tuple[dict[str, str], list[str]]:
    """For each product of ``right``: "new", "same", "up N" or "down N" relative to ``left``;
    plus the products of ``left`` that ``right`` dropped."""
    before = {pid: rank for rank, pid in enumerate(left, 1)}
    changes = {}
    for rank, pid in enumerate(right, 1):
        if pid not in before:
            changes[pid] = "new"
        elif before[pid] == rank:
            changes[pid] = "same"
        elif before[pid] > rank:
            changes[pid] = f"up {before[pid] - rank}"
        else:
            changes[pid] = f"down {rank - before[pid]}"
    kept = set(right)
    return changes, [pid for pid in left if pid not in kept]


def compare_answers(left: Served, right: Served) -> dict:
    """How ``right`` ranks against ``left``: the change of each of its results (in its order),
    the products of ``left`` it dropped, how many they share, how many moved or are new."""
    left_ids = [h.product_id for h in left.answer.hits]
    right_ids = [h.product_id for h in right.answer.hits]
    changes, dropped = compare_rankings(left_ids, right_ids)
    return {
        "changes": [changes[pid] for pid in right_ids],
        "dropped": dropped,
        "overlap": len(set(left_ids) & set(right_ids)),
        "moved": sum(1 for change in changes.values() if change != "same"),
    }


@dataclass
class Facets:
    """The filter choices and modes of the index being queried, or why it cannot be loaded."""

    facets: list[tuple[str, list[str]]] = field(default_factory=list)
    engine_modes: tuple[str, ...] = ()
    default_mode: str = ""
    unavailable: str = ""


def index_facets(pipeline: Pipeline, index_id=None, engine: SearchEngine | None = None) -> Facets:
    """Filter choices of an index version (the active one by default), or of an engine already
    loaded; an index that cannot be loaded gives the reason instead."""
    try:
        if engine is None:
            engine = target_in(pipeline, index_id).engine
    except ApplicationError as exc:
        return Facets(unavailable=exc.message)
    names = ["brand", *engine.attribute_names]
    return Facets(
        facets=[(name, engine.facets(name)) for name in names],
        engine_modes=engine.modes,
        default_mode=engine.default_mode,
    )


@dataclass
class ConsoleAnswer:
    """What the console shows for one request: the answer (and its comparison with another
    index version), or the error that refused the query, and the filter choices of the index.
    Without a query (no `q`) only the filter choices are set."""

    facets: Facets
    query: str = ""
    k: int = 10
    filters: dict = field(default_factory=dict)
    served: Served | None = None
    error: str = ""
    compared: Served | None = None
    comparison: dict = field(default_factory=dict)  # compare_answers(served, compared)
    compare_error: str = ""


def console_answer(*, pipeline: Pipeline, params: Mapping[str, str]) -> ConsoleAnswer:
    """The console's answer to its form (q, k, mode, index, compare and the filters) in a
    pipeline the caller has resolved with queryable_pipeline. A refused query is an error to
    show, not an exception: the console stays usable."""
    if "q" not in params:
        return ConsoleAnswer(index_facets(pipeline, params.get("index")))
    filters = {
        key: value
        for key, value in filters_from(params).items()
        if key not in CONSOLE_ONLY_PARAMETERS and value
    }
    try:
        query, k = parse_query(params.get("q")), parse_k(params.get("k") or 10)
        asked = {"q": query, "k": k, "mode": params.get("mode"), "filters": filters}
        served = search_in(target_in(pipeline, params.get("index")), **asked)
    except ApplicationError as exc:  # the permission was checked with the pipeline
        return ConsoleAnswer(
            index_facets(pipeline, params.get("index")), filters=filters, error=exc.message
        )
    shown = ConsoleAnswer(
        index_facets(pipeline, engine=served.engine),
        query=query,
        k=k,
        filters=filters,
        served=served,
    )
    if params.get("compare"):
        try:
            shown.compared = search_in(target_in(pipeline, params["compare"]), **asked)
        except ApplicationError as exc:
            shown.compare_error = exc.message
        else:
            shown.comparison = compare_answers(served, shown.compared)
    return shown


@dataclass
class QuerySetComparison:
    """A saved query set run on two index versions: per query, both answers and how the right
    one ranks against the left (compare_answers); or the error that stopped the run."""

    rows: list[dict] = field(default_factory=list)
    error: str | None = None


def query_set_comparison(
    *, saved: SavedQuerySet, left=None, right=None, k=None
) -> QuerySetComparison:
    """Run every query of a saved set on two index versions (None: the active one). Each side
    is resolved once, so every query of the set runs on the same two indexes."""
    rows = []
    try:
        left_target = target_in(saved.pipeline, left)
        right_target = target_in(saved.pipeline, right)
        for query in saved.queries:
            a = search_in(left_target, q=query, k=k or 10)
            b = search_in(right_target, q=query, k=k or 10)
            rows.append({"query": query, "left": a, "right": b, **compare_answers(a, b)})
    except ApplicationError as exc:
        return QuerySetComparison(error=exc.message)
    return QuerySetComparison(rows)
