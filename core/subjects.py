"""The registry of governed subject types: models that can carry RACI responsibilities.

A governed subject has an `owning_team` foreign key to Team. The apps that define them
(governance, recsys) register their models in AppConfig.ready(), so neither core nor teams,
which reads the registry, imports them.
"""

from django.contrib.contenttypes.models import ContentType
from django.db import models

_registry: dict[str, type[models.Model]] = {}


def register(model: type[models.Model]) -> None:
    """Make `model` a governed subject type (it must have an `owning_team` foreign key)."""
    model._meta.get_field("owning_team")  # raises FieldDoesNotExist early
    _registry[model._meta.label_lower] = model


def subject_models() -> list[type[models.Model]]:
    return list(_registry.values())


def is_governed(model: type[models.Model]) -> bool:
    return model._meta.label_lower in _registry


def subject_content_types() -> dict[int, type[models.Model]]:
    """Content-type id -> model for every registered subject type (cached by Django)."""
    return {ContentType.objects.get_for_model(m).id: m for m in subject_models()}


def subject_key(obj: models.Model) -> str:
    """A stable "<content type id>:<pk>" key used by forms and the API."""
    return f"{ContentType.objects.get_for_model(obj).id}:{obj.pk}"
