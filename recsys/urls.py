from django.urls import path

from recsys import console_views, views

app_name = "recsys"

urlpatterns = [
    path("", views.PipelineListView.as_view(), name="pipeline_list"),
    path("pipelines/<slug:slug>/", views.PipelineDetailView.as_view(), name="pipeline_detail"),
    path("pipelines/<slug:slug>/runs/new/", views.RunRequestView.as_view(), name="run_request"),
    path("pipelines/<slug:slug>/rollback/", views.RollbackView.as_view(), name="rollback"),
    path("pipelines/<slug:slug>/schedule/", views.ScheduleView.as_view(), name="schedule"),
    path("runs/<int:pk>/", views.RunDetailView.as_view(), name="run_detail"),
    path("runs/<int:pk>/cancel/", views.RunCancelView.as_view(), name="run_cancel"),
    path("runs/<int:pk>/retry/", views.RunRetryView.as_view(), name="run_retry"),
    path(
        "indexes/<int:pk>/request-activation/",
        views.IndexRequestActivationView.as_view(),
        name="index_request_activation",
    ),
    path("indexes/<int:pk>/activate/", views.IndexActivateView.as_view(), name="index_activate"),
    path("console/", console_views.ConsoleView.as_view(), name="console"),
    path(
        "console/indexes/<int:pk>/why/", console_views.ProvenanceView.as_view(), name="provenance"
    ),
    path("console/query-sets/", console_views.QuerySetCreateView.as_view(), name="query_set_new"),
    path("console/query-sets/<int:pk>/", console_views.QuerySetView.as_view(), name="query_set"),
    path(
        "console/query-sets/<int:pk>/delete/",
        console_views.QuerySetDeleteView.as_view(),
        name="query_set_delete",
    ),
]
