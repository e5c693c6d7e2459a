"""The pipeline page loads the activation approval of all its index versions at once: the same
number of queries for 2 and for 6 indexes (governance.selectors.approvals_latest_for)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recsys.models import ModelVersion
from tests.approval_setup import activation_asked, pipeline, run_of
from tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def add_indexes(org, line, run, model, n: int) -> None:
    for _ in range(n):
        activation_asked(org, line, run=run, model=model)


def page_queries(client, url: str, *, expect: int) -> int:
    client.get(url)  # warm what is cached across requests (content types, sessions)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("Activation approval:") == expect
    assert body.count("Alpha 0/1 (lead)") == expect
    return len(ctx.captured_queries)


def test_pipeline_page_queries_do_not_grow_with_indexes(org, client):
    line = pipeline(org)
    run = run_of(org, line, "alpha.ops")
    model = ModelVersion.objects.create(run=run, base_model="tiny", path="/x", checksum="0")
    login(client, org.user("alpha.lead"))
    url = f"/recsys/pipelines/{line.slug}/"
    add_indexes(org, line, run, model, 2)
    small = page_queries(client, url, expect=2)
    add_indexes(org, line, run, model, 4)
    large = page_queries(client, url, expect=6)
    assert large == small, f"{small} queries for 2 indexes, {large} for 6"
