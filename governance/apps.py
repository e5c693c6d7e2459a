from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from core import subjects
        from governance.models import DataAsset
        from governance.services.approvals import register_subject_handler
        from governance.services.versions import DATASET_VERSION_HANDLER

        subjects.register(DataAsset)
        register_subject_handler(DATASET_VERSION_HANDLER)
