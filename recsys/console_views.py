"""The admin search console: query the active or a candidate index, compare two index
versions, see latency and the provenance of every answer, recent queries and saved query sets.

Thin: each view reads through the search selectors (recsys.search, the same code as the API
and the CLI) and writes the query history and saved sets through recsys.services.console.
"""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from core.views import ObjectView, ServiceActionView
from recsys import selectors
from recsys.pipelines.engine import SEARCH_MODES
from recsys.search import answers, console, provenance
from recsys.services import console as console_services

K_CHOICES = (10, 20, 50, 100)
PAGE_SIZE = 20


class ConsoleView(LoginRequiredMixin, View):
    def get(self, request):
        params = request.GET
        pipeline = answers.queryable_pipeline(user=request.user, slug=params.get("pipeline"))
        context = {
            "pipeline": pipeline,
            "indexes": list(selectors.indexes_of(pipeline)[:50]),
            "active": getattr(pipeline, "active", None),
            "k_choices": K_CHOICES,
            "modes": SEARCH_MODES,
            "params": params,
            # read before this query is recorded: "recent" means before this one
            "recent": selectors.console_queries_recent(user=request.user, pipeline=pipeline),
            "query_sets": selectors.query_sets_of(user=request.user, pipeline=pipeline),
        }
        shown = console.console_answer(pipeline=pipeline, params=params)
        if shown.served is not None:
            console_services.console_query_record(
                user=request.user,
                pipeline=pipeline,
                query=shown.query,
                mode=shown.served.answer.mode,
                k=shown.k,
                filters=shown.filters,
                index_id=shown.served.index_id,
            )
            context["page"] = Paginator(shown.served.answer.hits, PAGE_SIZE).get_page(
                params.get("page")
            )
        context.update(
            served=shown.served,
            error=shown.error,
            compared=shown.compared,
            compare_error=shown.compare_error,
            **shown.comparison,
            **vars(shown.facets),
        )
        return render(request, "recsys/console.html", context)


class ProvenanceView(ObjectView, View):
    """The "why" panel (an htmx fragment, or a page): index → model and its run → dataset
    versions and their cleaning runs → who approved each, and when."""

    def get_object(self):
        return answers.index_get_queryable(user=self.request.user, pk=self.kwargs["pk"])

    def get(self, request, pk: int):
        index = self.object
        product_id = request.GET.get("product")
        template = (
            "recsys/_provenance.html"
            if request.headers.get("HX-Request")
            else "recsys/provenance.html"
        )
        context = {
            "pipeline": index.pipeline,
            "index": index,
            "product": provenance.index_product(index, product_id) if product_id else None,
            "chain": provenance.index_provenance(index),
        }
        return render(request, template, context)


class QuerySetCreateView(ServiceActionView):
    """Save the console's recent queries (or any) as a named set of the pipeline."""

    def get_object(self):
        return answers.queryable_pipeline(
            user=self.request.user, slug=self.request.GET.get("pipeline")
        )

    def perform(self, form):
        return console_services.query_set_save(
            actor=self.request.user,
            pipeline=self.object,
            name=self.request.POST.get("name"),
            queries=self.request.POST.get("queries", ""),
        )

    def success_message(self, saved) -> str:
        return f"Saved the query set '{saved.name}' ({len(saved.queries)} queries)."

    def next_url(self, saved) -> str:
        if saved is None:
            return reverse("recsys:console") + f"?pipeline={self.object.slug}"
        return reverse("recsys:query_set", args=[saved.pk])


class QuerySetView(ObjectView, View):
    """Run a saved query set against two index versions: per query, the overlap of the top-k
    and the rank changes."""

    def get_object(self):
        return answers.query_set_get_queryable(user=self.request.user, pk=self.kwargs["pk"])

    def get(self, request, pk: int):
        saved = self.object
        params = request.GET
        compared = console.QuerySetComparison()
        if params.get("index") or params.get("compare") or params.get("run"):
            compared = console.query_set_comparison(
                saved=saved,
                left=params.get("index"),
                right=params.get("compare"),
                k=params.get("k"),
            )
        context = {
            "saved": saved,
            "pipeline": saved.pipeline,
            "indexes": list(selectors.indexes_of(saved.pipeline)[:50]),
            "rows": compared.rows,
            "error": compared.error,
            "params": params,
            "k_choices": K_CHOICES,
        }
        return render(request, "recsys/query_set.html", context)


class QuerySetDeleteView(ServiceActionView):
    def get_object(self):
        return selectors.query_set_get_for_user(user=self.request.user, pk=self.kwargs["pk"])

    def perform(self, form):
        console_services.query_set_delete(actor=self.request.user, query_set=self.object)

    def success_message(self, result) -> str:
        return f"Deleted the query set '{self.object.name}'."

    def next_url(self, result) -> str:
        return reverse("recsys:console") + f"?pipeline={self.object.pipeline.slug}"
