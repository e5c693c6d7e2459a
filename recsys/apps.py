from django.apps import AppConfig


class RecsysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recsys"
    verbose_name = "Search pipeline"

    def ready(self) -> None:
        from core import subjects
        from governance.services.approvals import register_subject_handler
        from recsys.models import Pipeline
        from recsys.services import INDEX_HANDLER, RUN_HANDLER

        subjects.register(Pipeline)
        register_subject_handler(RUN_HANDLER)
        register_subject_handler(INDEX_HANDLER)
