"""Logins: wrong passwords lock a username out from an address (django-axes), the lockout page
says so, and every successful login, failed login and lockout is a hash-chained audit event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from core.audit import verify_chain
from core.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def lockout_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def post_login(client, username, password, address="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def audit(verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb).order_by("id"))


def test_twelve_wrong_passwords_lock_the_username_out_even_for_the_right_one(client):
    UserFactory(username="victim")
    statuses = [post_login(client, "victim", f"guess-{i}").status_code for i in range(12)]
    # Four plain refusals (the form again), then the lockout page from the fifth on.
    assert statuses == [200] * 4 + [429] * 8

    response = post_login(client, "victim", PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "Login locked" in page and "Too many failed logins" in page
    assert "victim" in page and "0:15:00" in page  # who, and for how long


def test_the_lockout_is_per_username_and_address_and_ends_after_the_cool_off(client):
    UserFactory(username="victim")
    UserFactory(username="bystander")
    for i in range(5):
        post_login(client, "victim", f"guess-{i}")
    assert post_login(client, "victim", PASSWORD).status_code == 429

    # Another user from the same address, and the same user from another address, log in.
    assert post_login(client, "bystander", PASSWORD).status_code == 302
    client.logout()
    assert post_login(client, "victim", PASSWORD, address="10.0.0.2").status_code == 302
    client.logout()

    # After the cool-off the account logs in again from the locked address.
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert post_login(client, "victim", PASSWORD).status_code == 302
    assert logged_in(client)


def test_fewer_failures_than_the_limit_and_then_the_right_password_log_in(client):
    UserFactory(username="typo")
    for i in range(4):
        assert post_login(client, "typo", f"guess-{i}").status_code == 200
    assert post_login(client, "typo", PASSWORD).status_code == 302
    client.logout()
    # A success resets the count: four more failures still do not lock.
    for i in range(4):
        assert post_login(client, "typo", f"again-{i}").status_code == 200
    assert post_login(client, "typo", PASSWORD).status_code == 302


def test_every_login_failure_success_and_lockout_is_audited(client):
    user = UserFactory(username="alice")
    assert post_login(client, "alice", PASSWORD).status_code == 302
    client.logout()
    post_login(client, "alice", "wrong")
    post_login(client, "nobody-by-this-name", "wrong", address="10.0.0.9")
    for i in range(4):
        post_login(client, "alice", f"guess-{i}")

    (success,) = audit("login.succeeded")
    assert (success.actor, success.target_id) == (user, str(user.pk))
    assert success.after == {"address": "10.0.0.1"}

    failed = audit("login.failed")
    assert len(failed) == 6
    assert all(e.actor is None and e.actor_repr == "system" for e in failed)
    assert failed[0].target_id == str(user.pk)
    assert failed[0].after == {"username": "alice", "address": "10.0.0.1"}
    unknown = failed[1]
    assert unknown.after == {"username": "nobody-by-this-name", "address": "10.0.0.9"}
    user_type = ContentType.objects.get_for_model(get_user_model())
    assert unknown.target_type == ContentType.objects.get_for_model(ContentType)
    assert unknown.target_id == str(user_type.pk)

    (locked,) = audit("login.locked_out")
    assert locked.target_id == str(user.pk)
    assert locked.after == {"username": "alice", "address": "10.0.0.1", "failure_limit": 5}
    assert verify_chain().ok


def test_the_admin_login_is_locked_out_too(client):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    for i in range(5):
        client.post(
            "/admin/login/?next=/admin/",
            {"username": "root", "password": f"guess-{i}"},
            REMOTE_ADDR="10.0.0.1",
        )
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
    )
    assert response.status_code == 429 and not logged_in(client)


def test_attempts_while_locked_out_are_not_audited_one_by_one(client):
    """The lockout is audited once; the attempts refused during it (which axes counts) are not,
    so a flood of them cannot grow the hash-chained audit trail."""
    UserFactory(username="alice")
    for i in range(5):
        post_login(client, "alice", f"guess-{i}")
    assert (len(audit("login.failed")), len(audit("login.locked_out"))) == (5, 1)
    for i in range(10):
        assert post_login(client, "alice", f"more-{i}").status_code == 429
    assert (len(audit("login.failed")), len(audit("login.locked_out"))) == (5, 1)
    assert verify_chain().ok


def test_behind_a_proxy_the_lockout_is_per_client_address(client):
    """With one proxy in front (STEWARD_API_NUM_PROXIES=1: these are the settings it makes),
    every request comes from the proxy's address: the lockout follows the address the proxy
    appended to X-Forwarded-For, so one client's wrong passwords lock nobody else out, and a
    client cannot pick its address by sending the header itself."""
    from django.test import override_settings

    UserFactory(username="alice")
    proxy = "10.9.9.9"

    def through_proxy(password, client_address, sent_header=""):
        forwarded = f"{sent_header}, {client_address}" if sent_header else client_address
        return client.post(
            LOGIN,
            {"username": "alice", "password": password},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    with override_settings(STEWARD_NUM_PROXIES=1):
        for i in range(5):  # the attacker, varying the header it sends: still one address
            through_proxy(f"guess-{i}", "203.0.113.7", sent_header=f"198.51.100.{i}")
        assert through_proxy(PASSWORD, "203.0.113.7").status_code == 429
        assert through_proxy(PASSWORD, "192.0.2.44").status_code == 302  # another client
    (locked,) = audit("login.locked_out")
    assert locked.after["address"] == "203.0.113.7"
