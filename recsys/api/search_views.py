"""Serving API: search, similar items, recommendations. Thin: parameters in, one call of the
search answers selector (recsys.search.answers), the answer out (it always names the index
version that produced it)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import ErrorSerializer
from recsys.pipelines.engine import SEARCH_MODES
from recsys.search import answers
from teams.api.inputs import MAX_ID

_COMMON = [
    OpenApiParameter(
        "k",
        {"type": "integer", "minimum": 1, "maximum": 100},
        description="How many results, 1–100 (default 10).",
    ),
    OpenApiParameter("pipeline", str, description="Pipeline slug (default: product-search)."),
    OpenApiParameter(
        "index",
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        description="An index version instead of the active one.",
    ),
]
_FILTERS = [
    OpenApiParameter("brand", str, description="Brand (comma-separated alternatives)."),
    OpenApiParameter("price_min", float),
    OpenApiParameter("price_max", float),
]
_HIT = inline_serializer(
    "SearchHit",
    {
        "product_id": serializers.CharField(),
        "rank": serializers.IntegerField(),
        "score": serializers.FloatField(),
        "title": serializers.CharField(),
        "brand": serializers.CharField(allow_null=True),
        "price": serializers.FloatField(allow_null=True),
        "attributes": serializers.DictField(help_text="Categorical attributes of the product."),
    },
)
_ANSWER = inline_serializer(
    "SearchAnswer",
    {
        "pipeline": serializers.CharField(),
        "index_version": serializers.IntegerField(help_text="The index version that answered."),
        "mode": serializers.CharField(),
        "label": serializers.CharField(),
        "count": serializers.IntegerField(),
        "results": serializers.ListField(child=_HIT),
        "timings": serializers.DictField(),
    },
)
# 400/401/403/404 come from the default schema class (teams.api.schema); 503: no index served.
_ERRORS = {503: ErrorSerializer}


class SearchView(APIView):
    """GET /api/v1/search?q=…&k=…&mode=dense|bm25|hybrid, plus filters: brand, price_min,
    price_max and any categorical attribute of the index's catalog (unknown names are 400)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                {"type": "string", "minLength": 1, "maxLength": 512},
                required=True,
                description="Query, 1–512 characters.",
            ),
            OpenApiParameter("mode", str, enum=list(SEARCH_MODES)),
            *_COMMON,
            *_FILTERS,
        ],
        responses={200: _ANSWER, **_ERRORS},
    )
    def get(self, request):
        params = request.query_params
        served = answers.search_answer(
            user=request.user,
            q=params.get("q"),
            k=params.get("k"),
            mode=params.get("mode"),
            filters=answers.filters_from(params),
            pipeline=params.get("pipeline"),
            index=params.get("index"),
        )
        return Response(served.as_dict())


class SimilarProductsView(APIView):
    """GET /api/v1/products/{id}/similar?k=…: the nearest products of one product."""

    @extend_schema(parameters=[*_COMMON, *_FILTERS], responses={200: _ANSWER, **_ERRORS})
    def get(self, request, product_id: str):
        params = request.query_params
        served = answers.similar_answer(
            user=request.user,
            product_id=product_id,
            k=params.get("k"),
            pipeline=params.get("pipeline"),
            index=params.get("index"),
            filters=answers.filters_from(params),
        )
        return Response(served.as_dict())


class RecommendationsView(APIView):
    """GET /api/v1/users/{id}/recommendations?k=…: from the user's recent behaviour events
    (weighted by event type and recency, purchased products excluded); a user whose events name
    no indexed product gets the popular products, labelled "popular (cold start)"."""

    @extend_schema(parameters=_COMMON, responses={200: _ANSWER, **_ERRORS})
    def get(self, request, user_id: str):
        params = request.query_params
        served = answers.recommendations_answer(
            user=request.user,
            user_id=user_id,
            k=params.get("k"),
            pipeline=params.get("pipeline"),
            index=params.get("index"),
        )
        return Response(served.as_dict())
