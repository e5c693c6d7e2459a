"""In-process API clients for the contract tests: Django's WSGI app on the test's own database
connection and transaction."""

from __future__ import annotations

import pytest


@pytest.fixture
def wsgi_app():
    """Django's WSGI app, keeping the test's connection (and its transaction) open across
    requests, as Django's test client does."""
    from django.core import signals
    from django.db import close_old_connections

    from config.wsgi import application

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield application
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
