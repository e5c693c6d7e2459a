"""Production security settings: `check --deploy` is clean with the defaults of DEBUG off, the
API throttles clients, passwords go through Django's full set of validators, and every page
is served with a Content Security Policy that its templates satisfy (no inline scripts,
inline event handlers or inline styles)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_CHECK = """
import json, django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
try:
    call_command("check", deploy=True, fail_level="WARNING")
    problems = ""
except SystemCheckError as error:
    problems = str(error)
names = ("DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER", "AXES_ENABLED")
values = {name: getattr(settings, name, None) for name in names}
print(json.dumps({"problems": problems, "settings": values}))
"""


def production_check(**env) -> tuple[str, dict]:
    """`manage.py check --deploy` (fail level WARNING) in a production web process's
    environment: DEBUG off, a real secret key and nothing else set (the suite's HTTP overrides
    removed), so the settings' own defaults are what is checked. (problems, settings)"""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "ALLOWED_HOSTS", "STEWARD_LOGIN", "DJANGO_"))
    }
    clean.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="config.settings",
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_CHECK],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["problems"], report["settings"]


def test_check_deploy_is_clean_with_the_production_defaults():
    problems, values = production_check()
    assert problems == ""
    assert values == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],  # no "testserver" outside the tests
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_PROXY_SSL_HEADER": None,
        "AXES_ENABLED": True,
    }


def test_the_https_settings_are_configurable_for_a_tls_terminating_proxy():
    problems, values = production_check(
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="steward.example.com",
    )
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["ALLOWED_HOSTS"] == ["steward.example.com"]
    # Turning the redirect off is a deliberate choice (e.g. the proxy redirects): check says so.
    assert "security.W008" in problems and "W004" not in problems


# --- API throttling -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_token_client_over_its_rate_gets_429_with_a_message(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/minute", "anon": "2/minute"},
    }
    cache.clear()
    user = UserFactory(username="script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    statuses = [client.get("/api/v1/teams/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/teams/")
    assert response.status_code == 429
    assert "Request was throttled" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0

    # Another client has its own budget.
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory()).key}")
    assert other.get("/api/v1/teams/").status_code == 200
    cache.clear()


@pytest.mark.django_db
def test_anonymous_clients_are_throttled_per_address_whatever_x_forwarded_for_says(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": None, "anon": "2/minute"},
    }
    cache.clear()
    client = APIClient()
    statuses = [
        client.get(
            "/api/schema/", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}", REMOTE_ADDR="10.0.0.7"
        ).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert client.get("/api/schema/", REMOTE_ADDR="10.0.0.8").status_code == 200
    cache.clear()


def test_the_suite_itself_is_not_throttled():
    """tests/conftest.py turns the throttles off (the suite makes many API calls a minute)."""
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_THROTTLE_RATES == {"user": None, "anon": None}


# --- passwords ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Xk3!pq", "too short"),
        ("password123", "too common"),
        ("84736251904", "entirely numeric"),
        ("margaret.hamilton", "too similar"),
    ],
)
def test_weak_passwords_are_refused(password, why):
    user = UserFactory.build(username="margaret.hamilton", email="mh@example.test")
    with pytest.raises(ValidationError) as info:
        validate_password(password, user=user)
    assert any(why in message for message in info.value.messages), info.value.messages


@pytest.mark.django_db
def test_a_strong_password_is_accepted():
    user = UserFactory.build(username="margaret.hamilton")
    validate_password("orbit-Lunar-module-1969", user=user)


# --- Content Security Policy ----------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_without_inline_allowances(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    directives = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, _, value = part.partition(" ")
        directives[name] = value
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


INLINE = [
    (re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.S), "an inline event handler (on...=)"),
    (re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.S), "an inline <script> block"),
    (re.compile(r"<style\b", re.S), "an inline <style> block"),
    (re.compile(r"<[a-zA-Z][^>]*\sstyle\s*=", re.S), "an inline style attribute"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_templates_have_no_inline_scripts_handlers_or_styles():
    """The CSP blocks these in the browser; this finds them before a browser does."""
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        for pattern, what in INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, "\n".join(found)


def test_the_inline_template_scan_finds_what_it_looks_for():
    samples = [
        '<form method="post" onsubmit="return confirm(\'x\')">',
        "<button\n  onclick='go()'>",
        "<script>alert(1)</script>",
        "<style>body{}</style>",
        '<h2 style="margin:0">',
        '<a href="javascript:history.back()">',
    ]
    for sample in samples:
        assert any(p.search(sample) for p, _ in INLINE), sample
    clean = '<script src="/static/js/steward.js" defer></script><form data-confirm="Sure?">'
    assert not any(p.search(clean) for p, _ in INLINE)
