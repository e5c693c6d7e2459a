"""Helpers every test module shares: state snapshots, refusals, audit deltas and query counts.

* `snapshot(tables, counted=...)`: the rows a refused action must not change (each table a
  `values_list` queryset, read in primary-key order) plus the audit trail; compare two with `==`.
  `count_changes(before, after)` names the row counts a success changed.
* `refused(error_type, *words, unchanged=snapshot_fn)`: the block raises exactly `error_type`,
  its message names every word, and `snapshot_fn()` is the same after as before.
* `audit_delta()`: a block's new audit events; `last_audit_id()` / `audit_since(...)` for the
  same without a block.
* `count_queries(client, url, ...)` and `assert_queries_constant(name, small, large)`: a page or
  an API list answers with the same number of queries for few and for many rows.

The audit model is imported here and nowhere else in these helpers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from core.models import AuditEvent

# --- the audit trail ------------------------------------------------------------------------------


def last_audit_id() -> int:
    """The id of the newest audit event (0 when there is none)."""
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def audit_since(after: int | dict) -> list[tuple[str, str]]:
    """(verb, actor) of the audit events written after `after` (an audit id, or a snapshot),
    oldest first."""
    last = after["last_audit_id"] if isinstance(after, dict) else after
    return list(
        AuditEvent.objects.filter(id__gt=last).order_by("id").values_list("verb", "actor_repr")
    )


@contextmanager
def audit_delta() -> Iterator[list]:
    """The audit events the block writes, oldest first (the list fills when the block ends)."""
    last = last_audit_id()
    events: list = []
    yield events
    events.extend(AuditEvent.objects.filter(id__gt=last).order_by("id"))


# --- snapshots ------------------------------------------------------------------------------------


def snapshot(tables: dict, *, counted=()) -> dict:
    """`tables`: name -> `values_list` queryset of the columns that must not change. Returns
    each table's rows in primary-key order, the audit trail (id and hash of every event, so no
    event is added, removed or rewritten), the last audit id, and under "counts" the number of
    rows of the `counted` tables and of the audit trail ("audit_events")."""
    state = {name: list(rows.order_by("pk")) for name, rows in tables.items()}
    audit = list(AuditEvent.objects.order_by("id").values_list("id", "hash"))
    state["audit"] = audit
    state["last_audit_id"] = audit[-1][0] if audit else 0
    state["counts"] = {name: len(state[name]) for name in counted}
    state["counts"]["audit_events"] = len(audit)
    return state


def count_changes(before: dict, after: dict) -> dict[str, int]:
    """The row counts of two snapshots that differ, as name -> difference."""
    return {
        name: after["counts"][name] - count
        for name, count in before["counts"].items()
        if after["counts"][name] != count
    }


def assert_unchanged(before: dict, after: dict, what: str = "a refused request") -> None:
    """Nothing in `after` differs from `before`: no audit event, no changed row."""
    assert audit_since(before) == [], f"{what} wrote audit events"
    assert after == before, f"{what} changed the database"


# --- refusals -------------------------------------------------------------------------------------


@contextmanager
def refused(error_type, *words: str, unchanged: Callable[[], object] | None = None):
    """The block raises exactly `error_type` (not a subclass) whose message contains every one
    of `words`; with `unchanged`, its value is the same after the block as before."""
    before = unchanged() if unchanged is not None else None
    with pytest.raises(error_type) as info:
        yield info
    error = info.value
    message = getattr(error, "message", str(error))
    assert type(error) is error_type, f"{type(error).__name__}: {message}"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    if unchanged is not None:
        assert unchanged() == before, "a refused operation changed the database"


# --- query counts ---------------------------------------------------------------------------------


def count_queries(client, url: str, *, expect=()) -> list[str]:
    """The queries of GET `url` (after one warm-up GET that fills the caches that are not per
    request: content types, the session), which answers 200 and contains each `expect` text."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:2000]
    body = response.content.decode()
    for text in [expect] if isinstance(expect, str) else expect:
        assert text in body, f"{text!r} not in the response of {url}"
    return [q["sql"] for q in ctx.captured_queries]


def _normalise(sql: str) -> str:
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"\b\d+\b", "?", sql)
    return re.sub(r"\(\?(, \?)*\)", "(...)", sql)


def assert_queries_constant(name: str, small: list[str], large: list[str], *, rows=()) -> None:
    """`large` ran as many queries as `small`; else fail naming the queries that repeat.
    `rows`: how many rows the two had (for the message), e.g. (10, "1000 assets")."""
    few, many = rows or ("few rows", "many")
    counts = f"{len(small)} queries for {few}, {len(large)} for {many}"
    print(f"\n[query count] {name}: {counts}")
    if len(small) == len(large):
        return
    grown = Counter(map(_normalise, large)) - Counter(map(_normalise, small))
    repeated = "\n".join(f"  +{times}x {sql[:600]}" for sql, times in grown.most_common(5))
    pytest.fail(f"{name}: {counts}. Repeated:\n{repeated}")
