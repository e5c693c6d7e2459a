from django.apps import AppConfig


class TeamsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "teams"
    verbose_name = "Organization"

    def ready(self) -> None:
        from teams import logins

        logins.connect()  # logins, failed logins and lockouts are audited
