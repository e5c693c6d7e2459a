from rest_framework.routers import DefaultRouter

from recsys.api.views import IndexVersionViewSet, PipelineRunViewSet, PipelineViewSet

router = DefaultRouter()
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("runs", PipelineRunViewSet, basename="run")
router.register("indexes", IndexVersionViewSet, basename="indexversion")

urlpatterns = router.urls
