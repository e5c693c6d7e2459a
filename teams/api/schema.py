"""The OpenAPI schema tells the whole truth: every operation documents the error answers it can
give, with the one error shape (core.api.errors.ErrorSerializer). Set as DEFAULT_SCHEMA_CLASS,
so an endpoint added later is covered without a decorator."""

from django.core.exceptions import FieldDoesNotExist
from django.db.backends.base.operations import BaseDatabaseOperations
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from core.api.errors import ErrorSerializer

INTEGER_RANGES = BaseDatabaseOperations.integer_field_ranges

# status -> (description, methods it applies to; None: every method). The one place to document
# an error answer every operation can give (e.g. 413 for a too large body, 429 when throttled).
ERROR_RESPONSES = {
    "400": ("The input (body, query or path parameter) is not valid, or a rule refuses it.", None),
    "401": ("No valid credentials were given.", None),
    "403": ("The caller may not do this.", None),
    "404": ("No such object visible to the caller (or no such page).", None),
    "409": ("The object's state does not allow this now.", {"POST", "PUT", "PATCH", "DELETE"}),
    "413": (
        "The body is larger than STEWARD_MAX_UPLOAD_BYTES; nothing was stored.",
        {"POST", "PUT", "PATCH"},
    ),
    "429": ("Too many requests from this client (STEWARD_API_RATE_*); see Retry-After.", None),
}


class StewardAutoSchema(AutoSchema):
    def _insert_min_max(self, field, content):
        """Integer columns documented with the standard SQL ranges (PostgreSQL's), whichever
        database generates the schema: SQLite reports 64 bits for every integer column, and the
        committed schema must not depend on the backend that wrote it."""
        super()._insert_min_max(field, content)
        model = getattr(getattr(getattr(field, "parent", None), "Meta", None), "model", None)
        if model is None or content.get("type") != "integer":
            return
        try:
            column = model._meta.get_field(field.source)
        except FieldDoesNotExist:
            return
        low, high = INTEGER_RANGES.get(column.get_internal_type(), (None, None))
        if "maximum" in content and high is not None:
            content["maximum"] = min(content["maximum"], high)
        if "minimum" in content and low is not None:
            content["minimum"] = max(content["minimum"], low)

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A list that may not be empty says so (drf-spectacular leaves allow_empty out).
        if isinstance(field, serializers.ListField) and not field.allow_empty:
            schema["minItems"] = max(1, schema.get("minItems", 0))
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        public = all(isinstance(p, AllowAny) for p in self.view.get_permissions())
        for status, (description, methods) in ERROR_RESPONSES.items():
            if status in responses or (methods is not None and self.method not in methods):
                continue
            if status == "401" and public:
                continue
            response = self._get_response_for_code(ErrorSerializer, status, direction=direction)
            response["description"] = description
            responses[status] = response
        return responses
