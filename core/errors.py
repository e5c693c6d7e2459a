"""Errors that services raise and every interface (UI, API, tasks) renders the same way.

core is the bottom of the import chain (core <- teams <- governance <- recsys), so the shared
error types live here.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404


class ApplicationError(Exception):
    """A rule of the product refused the operation; `message` is shown to the user."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class ValidationError(ApplicationError):
    """The input breaks a rule (bad value, duplicate, cycle...)."""

    status_code = 400


class InvalidTransitionError(ValidationError):
    """The object is not in a state from which this change is allowed (a state machine's
    table, e.g. governance/transitions.py or recsys/transitions.py, has no such edge)."""

    status_code = 409


class PermissionDeniedError(ApplicationError, PermissionDenied):
    """The actor may see the object but not do this to it.

    Also a Django PermissionDenied, so a view that lets it propagate answers with the 403 page
    (showing the message)."""

    status_code = 403


class NotFoundError(ApplicationError, Http404):
    """The object does not exist or is not visible to the actor (same answer for both).

    Also an Http404, so a view that lets it propagate answers with Django's 404 page."""

    status_code = 404


class PayloadTooLargeError(ApplicationError):
    """The request body is over a size limit (e.g. an upload over STEWARD_MAX_UPLOAD_BYTES)."""

    status_code = 413


class ConflictError(ApplicationError):
    """The operation needs a decision first (e.g. successors for accountable subjects)."""

    status_code = 409
