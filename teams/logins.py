"""Logins in the audit trail: every successful and failed login and every lockout is an audit
event (verbs `login.succeeded`, `login.failed`, `login.locked_out`). Attempts refused while a
username and address are locked out are not audited one by one (axes counts them): a flood of
them cannot grow the audit trail, whose writes are serialized by its chain.

Logins are performed by django.contrib.auth (the login page, the admin), not by a Steward
service, so its signals (and django-axes' lockout signal) are the hook: the receivers below are
connected in TeamsConfig.ready() and only record."""

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

from core.audit import audit_record

_MAX_USERNAME = 150


def client_address(request) -> str:
    """The client's address, for the lockout and the audit: REMOTE_ADDR, or behind
    STEWARD_NUM_PROXIES proxies that append to X-Forwarded-For, the address the nearest of them
    saw (the same rule as the API throttles' NUM_PROXIES; what a client sends itself is
    ignored)."""
    from django.conf import settings

    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.STEWARD_NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
    return addresses[-min(proxies, len(addresses))] if addresses else remote


def _address(request) -> str:
    return (client_address(request) if request is not None else "")[:64]


def _attempted_user(username: str):
    """The account a login names, or (an unknown name) the user model's content type, so that
    the event still has a target; the name tried is in the event's `after`."""
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    return user if user is not None else ContentType.objects.get_for_model(User)


def login_succeeded(*, request, user) -> None:
    audit_record(
        actor=user,
        verb="login.succeeded",
        target=user,
        after={"address": _address(request)},
    )


def login_failed(*, request, username: str) -> None:
    username = (username or "")[:_MAX_USERNAME]
    audit_record(
        actor=None,
        verb="login.failed",
        target=_attempted_user(username),
        after={"username": username, "address": _address(request)},
    )


def login_locked_out(*, request, username: str) -> None:
    from django.conf import settings

    username = (username or "")[:_MAX_USERNAME]
    audit_record(
        actor=None,
        verb="login.locked_out",
        target=_attempted_user(username),
        after={
            "username": username,
            "address": _address(request),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
        },
    )


# --- signal receivers -----------------------------------------------------------------------------


def on_user_logged_in(sender, request, user, **kwargs):
    # Only sign-ins over HTTP (the login page, the admin): the test client's login() and
    # force_login() call django.contrib.auth.login() with a bare, method-less request.
    if request is None or not request.method:
        return
    login_succeeded(request=request, user=user)


def _refused_while_locked_out(request) -> bool:
    """Whether this attempt came after its username and address were already locked out: axes
    counted it (its receiver runs first: it is installed before teams), and the lockout was
    audited once already. False without axes."""
    from django.conf import settings

    failures = getattr(request, "axes_failures_since_start", None)
    return failures is not None and failures > settings.AXES_FAILURE_LIMIT


def on_user_login_failed(sender, credentials, request=None, **kwargs):
    if _refused_while_locked_out(request):
        return
    User = get_user_model()
    login_failed(request=request, username=credentials.get(User.USERNAME_FIELD, ""))


def on_user_locked_out(sender, request, username, ip_address, **kwargs):
    if _refused_while_locked_out(request):  # axes says so again on each attempt
        return
    login_locked_out(request=request, username=username)


def connect() -> None:
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_logged_in, user_login_failed

    user_logged_in.connect(on_user_logged_in, dispatch_uid="steward-audit-login")
    user_login_failed.connect(on_user_login_failed, dispatch_uid="steward-audit-login-failed")
    user_locked_out.connect(on_user_locked_out, dispatch_uid="steward-audit-locked-out")
