from django.apps import AppConfig


def _navigation(user) -> dict:
    """The base layout's part from teams: the user's unread notification count (one query)."""
    from teams.selectors import notifications_unread_count

    return {"unread_notifications": notifications_unread_count(user=user)}


class TeamsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "teams"
    verbose_name = "Organization"

    def ready(self) -> None:
        from core import context_processors
        from teams import logins

        logins.connect()  # logins, failed logins and lockouts are audited
        context_processors.register("teams", _navigation)
