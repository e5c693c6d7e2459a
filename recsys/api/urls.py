from django.urls import path
from rest_framework.routers import DefaultRouter

from recsys.api.search_views import RecommendationsView, SearchView, SimilarProductsView
from recsys.api.views import IndexVersionViewSet, PipelineRunViewSet, PipelineViewSet

router = DefaultRouter()
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("runs", PipelineRunViewSet, basename="run")
router.register("indexes", IndexVersionViewSet, basename="indexversion")

urlpatterns = [
    path("search", SearchView.as_view(), name="search"),
    path("products/<str:product_id>/similar", SimilarProductsView.as_view(), name="similar"),
    path(
        "users/<str:user_id>/recommendations",
        RecommendationsView.as_view(),
        name="recommendations",
    ),
    *router.urls,
]
