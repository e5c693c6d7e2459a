from django.urls import path

from teams import views

app_name = "teams"

urlpatterns = [
    path("", views.OrgChartView.as_view(), name="org_chart"),
    path("<slug:slug>/", views.TeamDetailView.as_view(), name="team_detail"),
    path("<slug:slug>/edit/", views.TeamEditView.as_view(), name="team_edit"),
    path("<slug:slug>/sub-teams/new/", views.TeamCreateView.as_view(), name="team_create"),
    path("<slug:slug>/members/add/", views.MemberAddView.as_view(), name="member_add"),
    path("<slug:slug>/members/<int:pk>/role/", views.MemberRoleView.as_view(), name="member_role"),
    path(
        "<slug:slug>/members/<int:pk>/remove/",
        views.MemberRemoveView.as_view(),
        name="member_remove",
    ),
    path(
        "<slug:slug>/responsibilities/assign/",
        views.ResponsibilityAssignView.as_view(),
        name="responsibility_assign",
    ),
    path(
        "<slug:slug>/responsibilities/<int:pk>/remove/",
        views.ResponsibilityRemoveView.as_view(),
        name="responsibility_remove",
    ),
]
