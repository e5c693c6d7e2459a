"""The shared error types: a refusal a view lets propagate answers like Django's own."""

import pytest
from django.core.exceptions import PermissionDenied
from django.core.handlers.exception import response_for_exception
from django.test import RequestFactory

from core.errors import ApplicationError, NotFoundError, PermissionDeniedError

pytestmark = pytest.mark.django_db


def test_a_permission_refusal_is_a_django_permission_denied():
    assert issubclass(PermissionDeniedError, PermissionDenied)
    assert issubclass(PermissionDeniedError, ApplicationError)


def test_a_view_that_lets_a_refusal_propagate_answers_403_with_its_message():
    request = RequestFactory().get("/anything/")
    refusal = PermissionDeniedError("Only the owning team's ops may retry this run.")
    response = response_for_exception(request, refusal)
    assert response.status_code == 403
    assert b"Only the owning team&#x27;s ops may retry this run." in response.content


def test_a_not_found_answers_404():
    request = RequestFactory().get("/anything/")
    assert response_for_exception(request, NotFoundError("No such run.")).status_code == 404
