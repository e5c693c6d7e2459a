"""What goes wrong in a demo load, said for the operator."""

from __future__ import annotations

from collections.abc import Callable

from core.errors import ApplicationError

Say = Callable[[str], None]


class DemoLoadError(Exception):
    """The demo cannot be loaded; the message says why and what to do."""


def call_service(service, **kwargs):
    """Call a service; a rule it enforces becomes a DemoLoadError with its message."""
    try:
        return service(**kwargs)
    except ApplicationError as exc:
        raise DemoLoadError(exc.message) from None
