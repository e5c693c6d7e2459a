"""The serving API, the CLI and the console over real index artifacts (tiny model): answers,
every bad request, the permission matrix, index hot swap under 20 concurrent clients."""

from __future__ import annotations

import gc
import io
import json
import threading
import time
import weakref

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from recsys import services, serving
from recsys.models import ConsoleQuery, SavedQuerySet
from tests.conftest import api_as, login
from tests.recsys.pipeline_setup import approved_version
from tests.recsys.search_setup import build_artifact, demo_frames, make_active, register_index

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_model_path):
    """Two index artifacts over the same catalog built with different tiny models."""
    from recsys.pipelines.encoding import tiny_encoder

    catalog, events = demo_frames()
    other_model = tiny_encoder(str(tmp_path_factory.mktemp("tiny-other")), seed=1)
    root = tmp_path_factory.mktemp("served")
    first = build_artifact(root / "v1", tiny_model_path, catalog, events)
    second = build_artifact(root / "v2", other_model, catalog, events)
    return (first, tiny_model_path), (second, other_model), events


@pytest.fixture
def served(request, org, settings, tmp_path, artifacts):
    """Pipeline "search" owned by alpha, serving the first artifact; the second is a candidate.
    A transactional test keeps the real MEDIA_ROOT: its uploads are committed, so the session's
    worker may profile them too, and it reads files from there."""
    marker = request.node.get_closest_marker("django_db")
    if not (marker and marker.kwargs.get("transaction")):
        settings.MEDIA_ROOT = tmp_path / "media"
    settings.STEWARD_ACTIVE_CHECK_SECONDS = 0
    serving.reset()
    approved_version(org, org.asset, "alpha.steward", "id,title\n1,x\n")
    org.pipeline = services.pipeline_create(
        actor=org.admin, name="Search", owning_team=org.alpha, input_assets=[org.asset]
    )
    org.pipeline.slug = "product-search"
    org.pipeline.save(update_fields=["slug"])
    (first, first_model), (second, second_model), org.events = artifacts
    org.index_v1 = register_index(org.pipeline, first, first_model, actor=org.admin)
    org.index_v2 = register_index(org.pipeline, second, second_model, actor=org.admin)
    make_active(org.index_v1, org.admin)
    yield org
    serving.reset()


def _get(user, url, **params):
    return api_as(user).get(url, params)


# --- answers ------------------------------------------------------------------------------


def test_search_answers_with_the_index_version_and_products(served):
    response = _get(served.admin, "/api/v1/search", q="wireless headphones", k=7, mode="dense")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["index_version"] == served.index_v1.pk and body["mode"] == "dense"
    assert body["count"] == 7 and [r["rank"] for r in body["results"]] == list(range(1, 8))
    first = body["results"][0]
    assert {"product_id", "score", "title", "brand", "price", "attributes"} <= set(first)
    assert set(body["timings"]) == {"encode_ms", "search_ms", "total_ms"}


def test_a_candidate_index_can_be_queried_by_version(served):
    body = _get(served.admin, "/api/v1/search", q="cable", index=served.index_v2.pk).json()
    assert body["index_version"] == served.index_v2.pk


def test_filters_apply_through_the_api(served):
    body = _get(served.admin, "/api/v1/search", q="cable", k=50, brand="Helix").json()
    assert body["results"] and {r["brand"] for r in body["results"]} == {"Helix"}


def test_similar_and_recommendations(served):
    product_id = served.events["product_id"].iloc[0]
    body = _get(served.admin, f"/api/v1/products/{product_id}/similar", k=4).json()
    assert body["count"] == 4 and product_id not in [r["product_id"] for r in body["results"]]
    user_id = served.events["user_id"].iloc[0]
    body = _get(served.admin, f"/api/v1/users/{user_id}/recommendations", k=5).json()
    assert body["label"] == "personalised" and body["count"] == 5


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({"q": ""}, 400, "q is empty"),
        ({"q": "   "}, 400, "q is empty"),
        ({}, 400, "q is empty"),
        ({"q": "x" * 513}, 400, "limit is 512"),
        ({"q": "cable", "k": 0}, 400, "between 1 and 100"),
        ({"q": "cable", "k": 101}, 400, "between 1 and 100"),
        ({"q": "cable", "k": "ten"}, 400, "whole number"),
        ({"q": "cable", "mode": "magic"}, 400, "Unknown mode 'magic'"),
        ({"q": "cable", "colourway": "red"}, 400, "Unknown filter(s): colourway"),
        ({"q": "cable", "price_min": "cheap"}, 400, "must be a number"),
        ({"q": "cable", "index": 99999}, 404, "Index version 99999 not found"),
        ({"q": "cable", "index": "latest"}, 400, "index must be an index version number"),
        ({"q": "cable", "pipeline": "nope"}, 404, "Pipeline not found"),
    ],
)
def test_bad_search_requests_get_a_clear_error(served, params, status, message):
    response = _get(served.admin, "/api/v1/search", **params)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_unknown_product_and_user_are_404(served):
    response = _get(served.admin, "/api/v1/products/NOPE/similar")
    assert response.status_code == 404 and "NOPE is not in index" in response.json()["detail"]
    response = _get(served.admin, "/api/v1/users/NOBODY/recommendations")
    assert response.status_code == 404 and "no behaviour event" in response.json()["detail"]


def test_no_active_index_is_a_503_with_a_message(served):
    served.pipeline.active.delete()
    response = _get(served.admin, "/api/v1/search", q="cable")
    assert response.status_code == 503
    assert "No index is active for Search" in response.json()["detail"]


# --- permissions --------------------------------------------------------------------------

ALLOWED = {"admin", "alpha.lead", "alpha.ops", "acme.lead"}
REFUSED = {"alpha.steward", "alpha.engineer", "alpha.viewer", "beta.lead", "sub.lead"}
ACTORS = sorted(ALLOWED | REFUSED | {"outsider", None}, key=str)


def _urls(org):
    product = org.events["product_id"].iloc[0]
    user = org.events["user_id"].iloc[0]
    return {
        "search": "/api/v1/search?q=cable",
        "similar": f"/api/v1/products/{product}/similar",
        "recommendations": f"/api/v1/users/{user}/recommendations",
    }


@pytest.mark.parametrize("endpoint", ["search", "similar", "recommendations"])
@pytest.mark.parametrize("actor", ACTORS, ids=str)
def test_api_permission_matrix(served, endpoint, actor):
    user = served.user(actor) if actor else None
    response = api_as(user).get(_urls(served)[endpoint])
    if actor is None:
        expected = (401, 403)
    elif actor in ALLOWED:
        expected = (200,)
    elif actor == "outsider":
        expected = (404,)
    else:
        expected = (403,)
    assert response.status_code in expected, (actor, response.status_code, response.content)
    if response.status_code == 403 and actor:
        assert "Only admins and the ops and leads of Alpha" in response.json()["detail"]


@pytest.mark.parametrize("actor", ACTORS, ids=str)
def test_console_permission_matrix(served, client, actor):
    if actor:
        login(client, served.user(actor))
    pages = [
        "/recsys/console/?q=cable",
        f"/recsys/console/indexes/{served.index_v1.pk}/why/",
    ]
    for page in pages:
        response = client.get(page)
        if actor is None:
            assert response.status_code == 302 and "/login" in response["Location"]
        elif actor in ALLOWED:
            assert response.status_code == 200
        elif actor == "outsider":
            assert response.status_code == 404
        else:
            assert response.status_code == 403
            assert b"Only admins and the ops and leads of Alpha" in response.content


# --- console ------------------------------------------------------------------------------


def test_console_shows_results_latency_and_records_recent_queries(served, client):
    login(client, served.user("alpha.ops"))
    response = client.get("/recsys/console/", {"q": "wireless headphones", "k": 10})
    page = response.content.decode()
    assert f"Index <strong>v{served.index_v1.pk}</strong>" in page
    assert "encode" in page and "total" in page and "why?" in page
    assert page.count("<tr><td>") >= 10
    recent = ConsoleQuery.objects.get(user=served.user("alpha.ops"))
    assert recent.query == "wireless headphones" and recent.index_version == served.index_v1
    assert "wireless headphones" in client.get("/recsys/console/").content.decode()


def test_console_compares_two_index_versions_with_rank_changes(served, client):
    login(client, served.admin)
    response = client.get(
        "/recsys/console/",
        {"q": "wireless headphones", "index": served.index_v1.pk, "compare": served.index_v2.pk},
    )
    page = response.content.decode()
    assert f"Comparing v{served.index_v1.pk} (left) with v{served.index_v2.pk} (right)" in page
    changes = response.context["changes"]
    assert len(changes) == 10 and any(c != "same" for c in changes)
    assert all(c == "new" or c == "same" or c.split()[0] in ("up", "down") for c in changes)
    assert len(response.context["dropped"]) == changes.count("new")


def test_console_error_is_shown_not_raised(served, client):
    login(client, served.admin)
    response = client.get("/recsys/console/", {"q": "cable", "colourway": "red"})
    assert response.status_code == 200
    assert "Unknown filter(s): colourway" in response.content.decode()


def test_query_sets_save_compare_delete(served, client):
    from core.models import AuditEvent

    login(client, served.admin)
    response = client.post(
        "/recsys/console/query-sets/?pipeline=product-search",
        {"name": "Headphones", "queries": "wireless headphones\n\nusb cable\nusb cable"},
    )
    saved = SavedQuerySet.objects.get(owner=served.admin)
    assert response.status_code == 302 and saved.queries == ["wireless headphones", "usb cable"]
    assert AuditEvent.objects.filter(verb="query_set.saved").count() == 1
    response = client.post(
        "/recsys/console/query-sets/?pipeline=product-search",
        {"name": "Headphones", "queries": "x"},
    )
    assert SavedQuerySet.objects.count() == 1  # same name refused
    page = client.get(response["Location"], follow=True).content.decode()
    assert "already have a query set named" in page
    page = client.get(
        f"/recsys/console/query-sets/{saved.pk}/",
        {"index": served.index_v1.pk, "compare": served.index_v2.pk, "k": 10},
    )
    rows = page.context["rows"]
    assert [r["query"] for r in rows] == saved.queries
    assert all(0 <= r["overlap"] <= 10 for r in rows)
    other = api_as(served.user("alpha.ops"))
    assert other.get(f"/recsys/console/query-sets/{saved.pk}/").status_code in (302, 403, 404)
    client.post(f"/recsys/console/query-sets/{saved.pk}/delete/")
    assert not SavedQuerySet.objects.exists()
    assert AuditEvent.objects.filter(verb="query_set.deleted").count() == 1


def test_console_query_count_does_not_grow_with_results(
    served, client, django_assert_max_num_queries
):
    login(client, served.admin)
    client.get("/recsys/console/", {"q": "cable", "k": 10})  # warm the engine
    with django_assert_max_num_queries(30) as small:
        client.get("/recsys/console/", {"q": "cable", "k": 10})
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get("/recsys/console/", {"q": "cable", "k": 100})


# --- CLI ----------------------------------------------------------------------------------


def test_cli_and_api_return_the_same_results(served, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text("wireless headphones\nusb cable\n\n")
    out = io.StringIO()
    call_command("search", queries=str(queries), k=5, json=True, stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["query"] for line in lines] == ["wireless headphones", "usb cable"]
    for line in lines:
        api = _get(served.admin, "/api/v1/search", q=line["query"], k=5).json()
        assert line["index_version"] == api["index_version"] == served.index_v1.pk
        assert [r["product_id"] for r in line["results"]] == [
            r["product_id"] for r in api["results"]
        ]
    out = io.StringIO()
    call_command("search", "usb cable", k=3, index=served.index_v2.pk, stdout=out)
    assert f"index v{served.index_v2.pk}" in out.getvalue()


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ([], {}, "Give one query, or --queries FILE"),
        (["x" * 600], {}, "limit is 512"),
        (["cable"], {"k": 0}, "between 1 and 100"),
        (["cable"], {"index": 99999}, "Index version 99999 not found"),
        ([], {"queries": "/no/such/file"}, "Cannot read /no/such/file"),
        (["cable"], {"username": "alpha.viewer"}, "Only admins and the ops and leads"),
    ],
)
def test_cli_errors(served, args, kwargs, message):
    with pytest.raises(CommandError, match=message):
        call_command("search", *args, stdout=io.StringIO(), **kwargs)


# --- hot swap -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_activation_while_20_threads_query_swaps_without_errors(served):
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("threads need a database file")
    old, new = served.index_v1.pk, served.index_v2.pk
    _get(served.admin, "/api/v1/search", q="warm up")  # the first load is synchronous
    stop, swapped_at = threading.Event(), []
    answers: list[tuple[float, int, int | None]] = []
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        api = api_as(served.admin)
        try:
            while not stop.is_set():
                response = api.get("/api/v1/search", {"q": f"cable {n % 4}", "k": 5})
                version = response.json().get("index_version")
                with lock:
                    answers.append((time.monotonic(), response.status_code, version))
        finally:
            connection.close()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    make_active(served.index_v2, served.admin)
    swapped_at.append(time.monotonic())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            recent = [a for a in answers if a[0] > swapped_at[0]][-20:]
        if len(recent) == 20 and all(v == new for _t, _s, v in recent):
            break
        time.sleep(0.1)
    settled = time.monotonic()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert answers and all(status == 200 for _t, status, _v in answers)
    assert {v for _t, _s, v in answers} == {old, new}
    after = [v for t, _s, v in answers if t > settled]
    assert after and set(after) == {new}
    before = [v for t, _s, v in answers if t < swapped_at[0]]
    assert before and set(before) == {old}


def test_a_missing_artifact_is_a_503_naming_the_index(served, tmp_path):
    from recsys.models import IndexVersion

    IndexVersion.objects.filter(pk=served.index_v1.pk).update(path=str(tmp_path / "gone"))
    response = _get(served.admin, "/api/v1/search", q="cable")
    assert response.status_code == 503
    assert f"Index v{served.index_v1.pk} cannot be loaded" in response.json()["detail"]


def test_a_failed_swap_keeps_serving_the_old_index_and_is_not_retried_at_once(
    served, tmp_path, monkeypatch
):
    from recsys.models import IndexVersion

    _get(served.admin, "/api/v1/search", q="cable")  # v1 loaded and serving
    IndexVersion.objects.filter(pk=served.index_v2.pk).update(path=str(tmp_path / "gone"))
    loads = []
    real_load = serving._load
    monkeypatch.setattr(serving, "_load", lambda spec: loads.append(spec) or real_load(spec))
    make_active(served.index_v2, served.admin)
    for _ in range(5):
        body = _get(served.admin, "/api/v1/search", q="cable").json()
        assert body["index_version"] == served.index_v1.pk
        time.sleep(0.2)
    assert len(loads) == 1  # one background attempt, then a pause before the next


def test_cold_start_recommendations_through_the_api(served, artifacts, tmp_path):
    import pandas as pd

    from recsys.models import IndexVersion

    (_first, model), _second, events = artifacts
    catalog, _ = demo_frames()
    newbie = pd.DataFrame(
        [{"user_id": "NEWBIE", "product_id": "GONE", "event": "view", "ts": 1_760_000_000}]
    )
    info = build_artifact(tmp_path / "v3", model, catalog, pd.concat([events, newbie]))
    index = register_index(served.pipeline, info, model, actor=served.admin)
    body = _get(served.admin, "/api/v1/users/NEWBIE/recommendations", k=3, index=index.pk).json()
    assert body["label"] == "popular (cold start)" and body["count"] == 3
    assert IndexVersion.objects.count() == 3


@pytest.mark.parametrize("actor", ["admin", "alpha.ops", "acme.lead"])
def test_a_search_request_reads_the_pipeline_permissions_and_pointer_in_four_queries(
    served, actor, django_assert_max_num_queries
):
    """The request path of every search: the pipeline with its team, then one read of the
    user's and one of the groups' object permissions (none for an admin); the active pointer
    is re-read at most every STEWARD_ACTIVE_CHECK_SECONDS (0 here: every request)."""
    user = served.user(actor)
    client = api_as(user)
    client.get("/api/v1/search", {"q": "cable", "k": 1})  # engine loaded, pointer known
    for k in (1, 100):
        with django_assert_max_num_queries(4) as captured:
            response = client.get("/api/v1/search", {"q": "cable", "k": k})
        assert response.status_code == 200, response.content
        assert len(captured.captured_queries) == (2 if actor == "admin" else 4)


def test_loaded_engines_are_frozen_out_of_the_collector_and_an_evicted_one_is_freed(served):
    """Full collections must not walk an engine's objects on every request (0.3 s stalls), yet
    an engine that is no longer used must still be freed."""
    first = serving.engine_for_index(served.index_v1)
    assert gc.get_freeze_count() > 0
    first.cycle = first  # only the collector frees objects in a reference cycle
    first_ref = weakref.ref(first)
    del first
    serving.reset()

    serving.engine_for_index(served.index_v2)  # loading re-freezes: unfreeze, collect, freeze

    assert first_ref() is None
    assert gc.get_freeze_count() > 0
