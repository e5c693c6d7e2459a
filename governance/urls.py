from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("assets/", views.AssetListView.as_view(), name="asset_list"),
    path("assets/<slug:slug>/", views.AssetDetailView.as_view(), name="asset_detail"),
    path("assets/<slug:slug>/upload/", views.VersionUploadView.as_view(), name="version_upload"),
    path("assets/<slug:slug>/sla/", views.AssetSlaView.as_view(), name="asset_sla"),
    path("assets/<slug:slug>/edit/", views.AssetEditView.as_view(), name="asset_edit"),
    path("versions/<int:pk>/", views.VersionDetailView.as_view(), name="version_detail"),
    path("versions/<int:pk>/submit/", views.VersionSubmitView.as_view(), name="version_submit"),
    path(
        "versions/<int:pk>/deprecate/",
        views.VersionDeprecateView.as_view(),
        name="version_deprecate",
    ),
    path("approvals/", views.ApprovalInboxView.as_view(), name="inbox"),
    path("approvals/decided/", views.DecidedByMeView.as_view(), name="decided"),
    path("approvals/<int:pk>/decide/", views.ApprovalDecideView.as_view(), name="decide"),
    path("approvals/<int:pk>/cancel/", views.ApprovalCancelView.as_view(), name="cancel"),
    path("sla/", views.SlaDashboardView.as_view(), name="sla_dashboard"),
    path("incidents/<int:pk>/", views.IncidentDetailView.as_view(), name="incident_detail"),
    path(
        "incidents/<int:pk>/acknowledge/",
        views.IncidentAcknowledgeView.as_view(),
        name="incident_ack",
    ),
    path("audit/", views.AuditLogView.as_view(), name="audit"),
    path("teams/<slug:slug>/policies/", views.ApprovalPolicyView.as_view(), name="policies"),
]
