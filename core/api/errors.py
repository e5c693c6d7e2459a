"""One JSON error shape for the whole API: {"detail": message, "code": ..., "field": ...}."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": type(exc).__name__}
        if exc.field:
            body["field"] = exc.field
        body.update(exc.extra)
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {
            "detail": "The input is not valid.",
            "code": "ValidationError",
            "errors": response.data,
        }
    elif response is None:
        return None
    if response.status_code == status.HTTP_400_BAD_REQUEST and isinstance(response.data, list):
        response.data = {"detail": " ".join(map(str, response.data)), "code": "ValidationError"}
    return response


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx answer (documented on every operation by StewardAutoSchema)."""

    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    code = serializers.CharField(
        required=False, help_text='The kind of error, e.g. "ValidationError", "NotFoundError".'
    )
    field = serializers.CharField(required=False, help_text="The input field at fault, if one.")
    errors = serializers.DictField(
        required=False, help_text="Per input field, its messages (invalid input)."
    )


def page_not_found(request, exception):
    """handler404: under /api/ a URL that matches no route answers with the error shape too."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "NotFound"}, status=404)
    return defaults.page_not_found(request, exception)
