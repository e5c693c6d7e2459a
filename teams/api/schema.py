"""The OpenAPI schema tells the whole truth: every operation documents the error answers it can
give, with the one error shape (teams.api.errors.ErrorSerializer). Set as DEFAULT_SCHEMA_CLASS,
so an endpoint added later is covered without a decorator."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from teams.api.errors import ErrorSerializer

# status -> (description, methods it applies to; None: every method)
ERROR_RESPONSES = {
    "400": ("The input (body, query or path parameter) is not valid.", None),
    "401": ("No valid credentials were given.", None),
    "403": ("The caller may not do this.", None),
    "404": ("No such object visible to the caller (or no such page).", None),
    "409": ("The object's state does not allow this now.", {"POST", "PUT", "PATCH", "DELETE"}),
}


class StewardAutoSchema(AutoSchema):
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
