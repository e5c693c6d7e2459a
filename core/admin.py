"""The admin's base class. Changes go through the UI/API (services), so that every state change
is permission-checked and audited; the admin only browses and searches."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
