"""Shared fixtures: a small organization built through the services, API clients, and a real
Celery worker process for integration tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from config.celery import worker_argv
from tests.factories import PASSWORD, UserFactory

ROLES = ["lead", "steward", "engineer", "ops", "viewer"]

# The suite serves plain HTTP (test client, live servers, the servers tests start as
# subprocesses): the production HTTPS defaults are turned off here, for those processes too.
TEST_HTTP_ENV = {"SECURE_SSL_REDIRECT": "0", "SECURE_COOKIES": "0", "SECURE_HSTS_SECONDS": "0"}
for _name, _value in TEST_HTTP_ENV.items():
    os.environ.setdefault(_name, _value)


def pytest_configure(config):
    from django.conf import settings

    # Tests log in many users; the production hasher's cost is not what they test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_HSTS_SECONDS = 0
    # Login lockout needs a request, which the test client's login() does not pass: it is on in
    # the tests of the lockout and in the browser journeys (tests/browser/conftest.py).
    settings.AXES_ENABLED = False
    # The suite makes many API calls; the throttles have their own tests.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": None, "anon": None},
    }
    from rest_framework.settings import api_settings

    api_settings.reload()  # importing DRF's test client has read the settings already
    register_test_base_models(settings)


def tiny_models_dir() -> Path:
    """Where the tests build their tiny models (``tiny_encoder(dir, seed)``): under the real
    ARTIFACT_ROOT (as configured, before any test overrides it), which the workers the tests
    start read too."""
    from config import settings

    return settings.ARTIFACT_ROOT / "test-models"


def register_test_base_models(settings) -> None:
    """Allow the tiny test models as base models, through the same setting production uses:
    in this process and, through the environment, in every worker the tests start."""
    from config.settings import parse_base_models

    tiny = [f"tiny-bert-{seed}={tiny_models_dir() / f'tiny-bert-{seed}'}" for seed in range(6)]
    value = ",".join([*(f"{k}={v}" for k, v in parse_base_models("").items()), *tiny])
    os.environ["STEWARD_BASE_MODELS"] = value
    settings.STEWARD_BASE_MODELS = parse_base_models(value)


@dataclass
class Org:
    """acme (root, lead: acme.lead)
    ├── alpha (one member per role: alpha.<role>)   <- "own team" of the alpha.* users
    │   └── alpha-sub (lead: sub.lead, viewer: sub.viewer)   <- "sub-team"
    └── beta (lead: beta.lead, steward: beta.steward)       <- "other team"
    plus `admin` (superuser), `outsider` (no membership) and an asset owned by alpha."""

    admin: object
    root: object
    alpha: object
    sub: object
    beta: object
    users: dict = field(default_factory=dict)
    asset: object = None

    def user(self, name):
        return self.users[name]


def build_org() -> Org:
    from governance.services import dataasset_create
    from teams import services

    admin = UserFactory(username="admin", is_superuser=True, is_staff=True)
    root = services.team_create(actor=admin, name="Acme", slug="acme", parent=None)
    alpha = services.team_create(actor=admin, name="Alpha", slug="alpha", parent=root)
    sub = services.team_create(actor=admin, name="Alpha Sub", slug="alpha-sub", parent=alpha)
    beta = services.team_create(actor=admin, name="Beta", slug="beta", parent=root)
    org = Org(admin=admin, root=root, alpha=alpha, sub=sub, beta=beta)
    org.users["admin"] = admin
    placements = [("acme.lead", root, "lead")]
    placements += [(f"alpha.{role}", alpha, role) for role in ROLES]
    placements += [("sub.lead", sub, "lead"), ("sub.viewer", sub, "viewer")]
    placements += [("beta.lead", beta, "lead"), ("beta.steward", beta, "steward")]
    for username, team, role in placements:
        user = UserFactory(username=username)
        services.membership_grant(actor=admin, team=team, user=user, role=role)
        org.users[username] = user
    org.users["outsider"] = UserFactory(username="outsider")
    org.users["newcomer"] = UserFactory(username="newcomer")
    org.asset = dataasset_create(
        actor=admin, name="Catalog", slug="catalog", kind="product_catalog", owning_team=alpha
    )
    return org


@pytest.fixture
def org(db) -> Org:
    return build_org()


@pytest.fixture
def api():
    return APIClient()


def api_as(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- a real Celery worker ------------------------------------------------------------------------


def _worker_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


_session_worker = {"started": False}


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A separate `celery worker` process on the configured broker and the test database."""
    from django.conf import settings

    _session_worker["started"] = True

    log_dir = tmp_path_factory.mktemp("worker")
    mail_dir = log_dir / "mail"
    with django_db_blocker.unblock():
        database_url = _worker_database_url()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        PYTHONUNBUFFERED="1",
    )
    log_path = log_dir / "worker.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    proc = subprocess.Popen(
        worker_argv(name),
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Celery worker did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    yield WorkerHandle(
        proc=proc,
        log_path=log_path,
        mail_dir=mail_dir,
        broker=settings.CELERY_BROKER_URL,
        database_url=database_url,
    )
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@dataclass
class WorkerHandle:
    proc: subprocess.Popen
    log_path: Path
    mail_dir: Path
    broker: str
    database_url: str

    def log(self) -> str:
        return self.log_path.read_text()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


def worker_backlog() -> int:
    """Jobs the session's worker still has in hand: versions waiting to be (or being) profiled
    and pipeline runs queued or running."""
    from governance.models import DatasetVersion
    from recsys.models import PipelineRun

    profiling = DatasetVersion.objects.filter(profile_status__in=["pending", "running"]).count()
    return profiling + PipelineRun.objects.filter(state__in=["queued", "running"]).count()


def wait_for_worker_idle(timeout: float = 60.0) -> bool:
    """Wait until the worker has finished what the test left it (e.g. profiling the cleaned
    catalog a run registered): the database flush after a transactional test would otherwise
    deadlock with the worker's open transaction. False when it is still busy after `timeout`
    (a test that leaves work on purpose)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker_backlog():
            time.sleep(0.5)  # the last job's transaction may still be closing
            return True
        time.sleep(0.3)
    return False


def _is_transactional(item) -> bool:
    """Tests whose rows the worker sees (committed) and whose teardown flushes the database."""
    marker = item.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        return True
    return bool({"transactional_db", "live_server"} & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Once the session's worker runs, let it finish the jobs a database test caused before the
    test is torn down (its database flushed or rolled back)."""
    if _session_worker["started"] and _is_transactional(item):
        from django.db import DatabaseError

        # RuntimeError: pytest-django blocks database access (the test never reached it).
        with contextlib.suppress(RuntimeError, DatabaseError):
            wait_for_worker_idle(timeout=15.0)
