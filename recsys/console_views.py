"""The admin search console: query the active or a candidate index, compare two index
versions, see latency and the provenance of every answer, recent queries and saved query sets.

Reads go through recsys.search (the same code as the API and the CLI); the query history and
saved sets through recsys.services.console.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from core.errors import ApplicationError, PermissionDeniedError
from core.views import ObjectView
from recsys import search, selectors
from recsys.pipelines.engine import SEARCH_MODES
from recsys.services import console as console_services

K_CHOICES = (10, 20, 50, 100)
PAGE_SIZE = 20


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


def compare_answers(left: search.Served, right: search.Served) -> dict:
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


class _ConsoleMixin(LoginRequiredMixin):
    def pipeline(self, request):
        return search.queryable_pipeline(user=request.user, slug=request.GET.get("pipeline"))


class ConsoleView(_ConsoleMixin, View):
    template_name = "recsys/console.html"

    def get(self, request):
        pipeline = self.pipeline(request)
        params = request.GET
        indexes = list(selectors.indexes_of(pipeline)[:50])
        context = {
            "pipeline": pipeline,
            "indexes": indexes,
            "active": getattr(pipeline, "active", None),
            "k_choices": K_CHOICES,
            "modes": SEARCH_MODES,
            "params": params,
            "recent": selectors.console_queries_recent(user=request.user, pipeline=pipeline),
            "query_sets": selectors.query_sets_of(user=request.user, pipeline=pipeline),
        }
        if "q" in params:
            context.update(self._answer(request, pipeline, params))
        else:
            context.update(self._facets(pipeline, params.get("index")))
        return render(request, self.template_name, context)

    def _facets(self, pipeline, index_id, engine=None):
        """Filter choices of the index being queried (empty when nothing can be loaded)."""
        try:
            if engine is None:
                engine = search.target_in(pipeline, index_id).engine
        except ApplicationError as exc:
            return {"unavailable": exc.message}
        names = ["brand", *engine.attribute_names]
        return {
            "facets": [(name, engine.facets(name)) for name in names],
            "engine_modes": engine.modes,
            "default_mode": engine.default_mode,
        }

    def _answer(self, request, pipeline, params):
        filters = {
            key: value
            for key, value in search.filters_from(params.dict()).items()
            if key not in ("compare", "pipeline") and value
        }
        try:
            query, k = search.parse_query(params.get("q")), search.parse_k(params.get("k") or 10)
            asked = {"q": query, "k": k, "mode": params.get("mode"), "filters": filters}
            served = search.search_in(search.target_in(pipeline, params.get("index")), **asked)
        except PermissionDeniedError:
            raise  # the 403 page, not a message on the console
        except ApplicationError as exc:
            return {"error": exc.message, **self._facets(pipeline, params.get("index"))}
        console_services.console_query_record(
            user=request.user,
            pipeline=pipeline,
            query=query,
            mode=served.answer.mode,
            k=k,
            filters=filters,
            index_id=served.index_id,
        )
        out = {
            "served": served,
            "page": Paginator(served.answer.hits, PAGE_SIZE).get_page(params.get("page")),
            **self._facets(pipeline, None, served.engine),
        }
        if params.get("compare"):
            try:
                other = search.search_in(search.target_in(pipeline, params["compare"]), **asked)
            except ApplicationError as exc:
                return {**out, "compare_error": exc.message}
            out.update(compared=other, **compare_answers(served, other))
        return out


def product_row(folder: str, product_id: str) -> dict:
    """One product of an index's product table, read with a row filter (not a whole engine)."""
    import pandas as pd

    from recsys.pipelines.products import PRODUCTS_FILE

    try:
        rows = pd.read_parquet(
            f"{folder}/{PRODUCTS_FILE}", columns=["id", "title"], filters=[("id", "==", product_id)]
        )
    except (OSError, ValueError):
        rows = None
    if rows is None or rows.empty:
        return {"id": product_id, "missing": True}
    return rows.iloc[0].to_dict()


class ProvenanceView(ObjectView, View):
    """The "why" panel (an htmx fragment, or a page): index → model and its run → dataset
    versions and their cleaning runs → who approved each, and when."""

    def get_object(self):
        index = selectors.index_get_for_user(user=self.request.user, pk=self.kwargs["pk"])
        search.require_query(self.request.user, index.pipeline)
        return index

    def get(self, request, pk: int):
        index = self.object
        pipeline = index.pipeline
        product = None
        product_id = request.GET.get("product")
        if product_id:
            product = product_row(index.path, product_id)
        template = (
            "recsys/_provenance.html"
            if request.headers.get("HX-Request")
            else "recsys/provenance.html"
        )
        return render(
            request,
            template,
            {
                "pipeline": pipeline,
                "index": index,
                "product": product,
                "chain": search.index_provenance(index),
            },
        )


class QuerySetCreateView(_ConsoleMixin, View):
    def post(self, request):
        pipeline = self.pipeline(request)
        try:
            saved = console_services.query_set_save(
                actor=request.user,
                pipeline=pipeline,
                name=request.POST.get("name"),
                queries=request.POST.get("queries", ""),
            )
        except PermissionDeniedError:
            raise  # the 403 page, not a message on the console
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect(reverse("recsys:console") + f"?pipeline={pipeline.slug}")
        messages.success(
            request, f"Saved the query set '{saved.name}' ({len(saved.queries)} queries)."
        )
        return redirect("recsys:query_set", pk=saved.pk)


class QuerySetView(ObjectView, View):
    """Run a saved query set against two index versions: per query, the overlap of the top-k
    and the rank changes."""

    def get_object(self):
        saved = selectors.query_set_get_for_user(user=self.request.user, pk=self.kwargs["pk"])
        search.require_query(self.request.user, saved.pipeline)
        return saved

    def get(self, request, pk: int):
        saved = self.object
        pipeline = saved.pipeline
        indexes = list(selectors.indexes_of(pipeline)[:50])
        left_id, right_id = request.GET.get("index"), request.GET.get("compare")
        k = request.GET.get("k") or 10
        rows, error = [], None
        if left_id or right_id or request.GET.get("run"):
            try:
                # Each side resolved once: every query of the set runs on the same two indexes.
                left_target = search.target_in(pipeline, left_id)
                right_target = search.target_in(pipeline, right_id)
                for query in saved.queries:
                    a = search.search_in(left_target, q=query, k=k)
                    b = search.search_in(right_target, q=query, k=k)
                    rows.append({"query": query, "left": a, "right": b, **compare_answers(a, b)})
            except ApplicationError as exc:
                rows, error = [], exc.message
        return render(
            request,
            "recsys/query_set.html",
            {
                "saved": saved,
                "pipeline": pipeline,
                "indexes": indexes,
                "rows": rows,
                "error": error,
                "params": request.GET,
                "k_choices": K_CHOICES,
            },
        )


class QuerySetDeleteView(ObjectView, View):
    def get_object(self):
        return selectors.query_set_get_for_user(user=self.request.user, pk=self.kwargs["pk"])

    def post(self, request, pk: int):
        saved = self.object
        slug = saved.pipeline.slug
        console_services.query_set_delete(actor=request.user, query_set=saved)
        messages.success(request, f"Deleted the query set '{saved.name}'.")
        return redirect(reverse("recsys:console") + f"?pipeline={slug}")
