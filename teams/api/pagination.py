"""Page-number pagination that rejects what the schema does not allow: `page` is an integer
from 1 (not empty, not "last", not "x"): 400 with the error shape; a page past the end is 404."""

from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from rest_framework.pagination import PageNumberPagination

from core.errors import ValidationError

MAX_PAGE = 2**31 - 1


class StrictPageNumberPagination(PageNumberPagination):
    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
            raise ValidationError(
                f"The page is a whole number from 1 to {MAX_PAGE}.", field=self.page_query_param
            )
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {
                    **build_basic_type(OpenApiTypes.INT),
                    "minimum": 1,
                    "maximum": MAX_PAGE,
                }
        return parameters
