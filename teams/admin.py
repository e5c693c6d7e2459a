"""Django admin: browse and search every model. Changes go through the UI/API (services), so
that every state change is permission-checked and audited; the admin is read-only here."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from teams.models import (
    Membership,
    Notification,
    Responsibility,
    Team,
    TeamGroupObjectPermission,
    TeamUserObjectPermission,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "parent", "archived", "created_at"]
    list_filter = ["archived"]
    search_fields = ["name", "slug", "description"]
    list_select_related = ["parent"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__name"]
    list_select_related = ["user", "team"]


@admin.register(Responsibility)
class ResponsibilityAdmin(ReadOnlyAdmin):
    list_display = ["kind", "user", "team", "subject_type", "subject_id", "area", "created_at"]
    list_filter = ["kind", "team"]
    search_fields = ["user__username", "area", "team__name"]
    list_select_related = ["user", "team", "subject_type"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["recipient", "subject", "created_at", "read_at", "emailed_at"]
    search_fields = ["recipient__username", "subject"]
    list_select_related = ["recipient"]


@admin.register(TeamGroupObjectPermission)
class TeamGroupObjectPermissionAdmin(ReadOnlyAdmin):
    """The object grants services derive from the org (never edited by hand)."""

    list_display = ["group", "permission", "content_object"]
    list_filter = ["permission"]
    search_fields = ["group__name", "content_object__name"]
    list_select_related = ["group", "permission", "content_object"]


@admin.register(TeamUserObjectPermission)
class TeamUserObjectPermissionAdmin(ReadOnlyAdmin):
    list_display = ["user", "permission", "content_object"]
    list_select_related = ["user", "permission", "content_object"]
