"""Root URLs: the UI of each app, the REST API under /api/v1/, the schema and its docs."""

from csp.constants import UNSAFE_INLINE as CSP_UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from teams.views import (
    DemoAwareLoginView,
    MyResponsibilitiesView,
    NotificationListView,
    NotificationReadView,
)

handler404 = "core.api.errors.page_not_found"

api_v1 = [
    path("", include("teams.api.urls")),
    path("", include("governance.api.urls")),
    path("", include("recsys.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="teams:org_chart", permanent=False)),
    path("accounts/login/", DemoAwareLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("teams/", include("teams.urls")),
    path("governance/", include("governance.urls")),
    path("recsys/", include("recsys.urls")),
    path("me/responsibilities/", MyResponsibilitiesView.as_view(), name="my_responsibilities"),
    path("me/notifications/", NotificationListView.as_view(), name="notifications"),
    path(
        "me/notifications/<int:pk>/read/", NotificationReadView.as_view(), name="notification_read"
    ),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # ReDoc styles itself with inline <style> elements (styled-components) and parses the schema
    # in a blob: worker: allowed on this page only.
    path(
        "api/redoc/",
        csp_update({"style-src": [CSP_UNSAFE_INLINE], "worker-src": ["'self'", "blob:"]})(
            SpectacularRedocView.as_view(url_name="api-schema")
        ),
        name="api-redoc",
    ),
]

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
