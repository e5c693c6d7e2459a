"""Input no API view can handle: a NUL character in the path or a query parameter (PostgreSQL
text cannot hold one) answers 400 with the error shape before any view or query runs."""

from django.http import JsonResponse


class ApiInputGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and _has_nul(request):
            return JsonResponse(
                {"detail": "The path or a query parameter contains a NUL character.",
                 "code": "ValidationError"},
                status=400,
            )  # fmt: skip
        return self.get_response(request)


def _has_nul(request) -> bool:
    if "\x00" in request.path:
        return True
    return any("\x00" in key or "\x00" in "".join(values) for key, values in request.GET.lists())
