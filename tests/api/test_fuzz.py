"""Schemathesis against the API, in process (Django's WSGI app), as a steward, an ops user, an
admin and anonymously: its default checks (server errors, status codes, content types, response
schema conformance, positive/negative data) over every operation of the live schema, so an
endpoint added later is fuzzed too. Zero failures.

Bounded and seeded: STEWARD_FUZZ_EXAMPLES (default 8) examples per operation and generation mode
(positive and negative), seed 7: every run tries the same cases (about 30 s per identity).
STEWARD_FUZZ_ONLY=<path part> narrows it to some operations while debugging.

It runs in the PostgreSQL pass, on the test database inside the test's transaction (rolled
back afterwards): the services' enqueues on commit never fire, and any message a task would send
to the broker is recorded and fails the test, so no worker ever gets a fuzzed job."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.conftest import build_org

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

SEED = 7
MAX_EXAMPLES = int(os.environ.get("STEWARD_FUZZ_EXAMPLES", "8"))
IDENTITIES = ["alpha.steward", "alpha.ops", "admin", None]
CSV = b"id,title,price\n1,Red shoe,10.5\n2,Blue shoe,12.0\n3,Green hat,7.25\n"


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql" and os.environ.get("STEWARD_FUZZ_ANY_DB") != "1":
        pytest.skip("runs in the PostgreSQL pass (a database of its own, row locks as deployed)")


@pytest.fixture
def no_jobs(monkeypatch, settings, tmp_path):
    """Record every message any task would send instead of sending it."""
    from celery.app.task import Task

    settings.MEDIA_ROOT = tmp_path / "media"
    sent: list = []
    from config.celery import app

    monkeypatch.setattr(Task, "apply_async", lambda self, *a, **k: sent.append(self.name))
    monkeypatch.setattr(app, "send_task", lambda name, *a, **k: sent.append(name))
    return sent


def populate(org):
    """Something behind the ids: an approved version, a pipeline and a run waiting for
    approval. Returns path parameters naming them, so that answers about existing objects (and
    actions on them) are checked too, not only 404s."""
    from django.contrib.contenttypes.models import ContentType

    from core.models import AuditEvent
    from governance import services
    from governance.models import ApprovalRequest, DatasetVersion
    from recsys.services.pipelines import pipeline_create
    from recsys.services.runs import run_request

    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
    )
    services.dataset_version_profile(version_id=version.pk)
    approval = ApprovalRequest.objects.get(
        subject_type=ContentType.objects.get_for_model(DatasetVersion), subject_id=version.pk
    )
    services.approval_decide(
        actor=org.user("alpha.steward"), request=approval, verdict="approve", comment=""
    )
    version.refresh_from_db()
    pipeline = pipeline_create(
        actor=org.admin,
        name="Product search",
        slug="product-search",
        owning_team=org.alpha,
        input_assets=[org.asset],
    )
    run = run_request(
        actor=org.user("alpha.ops"),
        pipeline=pipeline,
        kind="clean",
        inputs=[version],
        reason="fuzz",
    )
    membership = org.alpha.memberships.get(user=org.user("alpha.viewer"))
    return {  # path prefix -> path parameters naming an object that exists
        "/api/v1/teams/": {"slug": org.alpha.slug},
        "/api/v1/assets/": {"slug": org.asset.slug},
        "/api/v1/pipelines/": {"slug": pipeline.slug},
        "/api/v1/versions/": {"id": version.pk},
        "/api/v1/approvals/": {"id": ApprovalRequest.objects.order_by("-pk").first().pk},
        "/api/v1/runs/": {"id": run.pk},
        "/api/v1/memberships/": {"id": membership.pk},
        "/api/v1/audit-events/": {"id": AuditEvent.objects.order_by("pk").first().pk},
    }


def fuzz(schema, headers: dict, known: dict) -> tuple[Counter, Counter, int]:
    """Every operation, positive and negative cases, and positive cases on the known objects:
    failures per check, a sample of each, the number of cases."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    failures: Counter = Counter()
    tolerated: Counter = Counter()
    samples: Counter = Counter()
    cases = 0
    only = os.environ.get("STEWARD_FUZZ_ONLY", "")
    for result in schema.get_all_operations():
        operation = result.ok()
        if only not in operation.path:
            continue
        variants = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        names = {p.name for p in operation.path_parameters}
        for prefix, values in known.items():
            if names and operation.path.startswith(prefix) and names <= set(values):
                variants.append((GenerationMode.POSITIVE, {n: values[n] for n in names}))
        for mode, path_parameters in variants:

            @seed(SEED)
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(
                case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            )
            def run(case):
                nonlocal cases
                cases += 1
                response = case.call(headers=headers)
                try:
                    case.validate_response(response, headers=headers)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        key = type(failure).__name__
                        if expected(key, case, response):
                            tolerated[
                                f"{key}: {case.method} {case.operation.path} {response.text[:90]}"
                            ] += 1
                            continue
                        failures[key] += 1
                        body = (
                            ""
                            if key == "UndefinedStatusCode"
                            else f"{case.query} {response.text[:160]}"
                        )
                        samples[
                            f"{key}: {case.method} {case.operation.path} {response.status_code} "
                            f"{failure.title} {body}"
                        ] += 1

            try:
                run()
            except Unsatisfiable:  # nothing to negate (e.g. no parameter, no body)
                continue
    if tolerated:
        print("tolerated (see expected()):")
        for sample, n in sorted(tolerated.items()):
            print(f"{n:4} x {sample}")
    return failures, samples, cases


def expected(check: str, case, response) -> bool:
    """Answers the checks flag that the contract documents on purpose:
    - a documented 503 from the serving endpoints: this database has no active index;
    - a 400 to a well-formed body that a rule of the product refuses for the data it names (a
      username or version that does not exist, inputs that are no approved version, nothing to
      change): not about the request's shape. Serializer errors ("errors" in the body) and
      refusals of a query or path parameter stay failures: the schema must document those."""
    status = str(response.status_code)
    if check == "ServerError":
        return status == "503" and status in case.operation.definition.raw.get("responses", {})
    if check == "RejectedPositiveData" and status == "400":
        body = response.json()
        parameters = {p["name"] for p in case.operation.definition.raw.get("parameters", [])}
        return "errors" not in body and body.get("field") not in parameters
    return False


@pytest.mark.parametrize("username", IDENTITIES, ids=lambda u: u or "anonymous")
def test_fuzzing_the_api_finds_no_failure(username, no_jobs, wsgi_app):
    import schemathesis
    from rest_framework.authtoken.models import Token

    org = build_org()
    known = populate(org)
    headers = {}
    if username:
        token = Token.objects.create(user=org.user(username))
        headers["Authorization"] = f"Token {token.key}"
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    failures, samples, cases = fuzz(schema, headers, known)
    print(f"{username or 'anonymous'}: {cases} cases, failures per check {dict(failures)}")
    kinds = [f"{n:4} x {sample}" for sample, n in sorted(samples.items())]
    assert cases >= 300, f"only {cases} cases: is every operation in the schema?"
    assert not failures, "\n".join([str(dict(failures)), *kinds])
    assert not no_jobs, f"fuzzed requests sent jobs: {no_jobs}"
