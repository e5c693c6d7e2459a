"""Django admin for governance models (read-only: changes go through services)."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from core.models import AuditEvent
from governance.models import DataAsset


@admin.register(DataAsset)
class DataAssetAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "kind", "owning_team", "classification", "created_at"]
    list_filter = ["kind", "classification", "owning_team"]
    search_fields = ["name", "slug", "description"]
    list_select_related = ["owning_team"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "actor_repr", "verb", "target_repr", "correlation_id"]
    list_filter = ["verb"]
    search_fields = ["actor_repr", "verb", "target_repr", "correlation_id"]
    date_hierarchy = "created_at"
