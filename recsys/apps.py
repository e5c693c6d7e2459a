from django.apps import AppConfig


class RecsysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recsys"
    verbose_name = "Search pipeline"
