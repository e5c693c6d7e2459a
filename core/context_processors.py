"""Site-wide template context: what the base layout shows on every page of a signed-in user
(e.g. the unread notification count). Apps above core add their part in AppConfig.ready() with
`register()`, so core imports none of them; each part costs at most one query."""

from collections.abc import Callable

_parts: dict[str, Callable[[object], dict]] = {}


def register(name: str, part: Callable[[object], dict]) -> None:
    """Add `part(user) -> context` to every page of a signed-in user (once per `name`)."""
    _parts[name] = part


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    context = {}
    for part in _parts.values():
        context.update(part(user))
    return context
