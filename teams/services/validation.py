"""Model validation shared by the team services."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError

from core.errors import ValidationError


def full_clean(obj, exclude=None) -> None:
    """Field validation of `obj`; the first invalid field becomes a service ValidationError."""
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ValidationError(f"{field}: {' '.join(messages)}", field=field) from exc
