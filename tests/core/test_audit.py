"""The audit trail: a hash chain that verify_audit checks, that the ORM cannot rewrite, and whose
events carry the correlation id of the request that wrote them."""

from __future__ import annotations

from io import StringIO
from itertools import pairwise

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from core.audit import (
    GENESIS_HASH,
    _event_digest,
    audit_record,
    audit_seal_pending,
    correlation_scope,
    verify_chain,
)
from core.models import AuditEvent
from core.tasks import audit_verify_chain_task
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def events() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("id"))


def verify_audit() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- the chain ---------------------------------------------------------------------------------


def test_events_are_chained_by_hash(org):
    chain = events()
    assert len(chain) >= 10
    assert chain[0].prev_hash == GENESIS_HASH
    for previous, event in pairwise(chain):
        assert event.prev_hash == previous.hash
    for event in chain:
        assert len(event.hash) == 64 and event.hash == _event_digest(event)
    assert len({e.hash for e in chain}) == len(chain)
    report = verify_chain()
    assert report.ok and report.checked == len(chain) and report.broken_event_id is None


def test_verify_chain_walks_in_batches(org):
    report = verify_chain(batch_size=3)
    assert report.ok and report.checked == AuditEvent.objects.count()


def test_an_empty_chain_verifies(db):
    assert verify_audit().strip() == "OK: 0 audit events verified."


def test_verify_audit_prints_ok(org):
    assert verify_audit().strip() == f"OK: {AuditEvent.objects.count()} audit events verified."


def test_the_event_records_who_did_what_to_which_object(org):
    event = audit_record(
        actor=org.user("alpha.lead"),
        verb="test.touched",
        target=org.alpha,
        before={"n": 1},
        after={"n": 2},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == org.user("alpha.lead") and stored.actor_repr == "alpha.lead"
    assert stored.verb == "test.touched"
    assert stored.target_id == str(org.alpha.pk) and stored.target_repr == "Alpha"
    assert (stored.before, stored.after) == ({"n": 1}, {"n": 2})
    assert stored.hash == _event_digest(stored)
    system = audit_record(actor=None, verb="test.system", target=org.alpha)
    assert system.actor is None and system.actor_repr == "system"


@pytest.mark.parametrize(
    "column,value",
    [
        ("verb", "team.deleted"),
        ("actor_repr", "somebody.else"),
        ("target_repr", "Renamed"),
        ("after", '{"role": "lead"}'),
        ("correlation_id", "forged"),
    ],
)
def test_a_row_altered_in_the_database_breaks_the_chain(org, column, value):
    middle = events()[len(events()) // 2]
    sql = f"UPDATE core_auditevent SET {column} = %s WHERE id = %s"  # noqa: S608 - fixed names
    raw(sql, [value, middle.id])
    report = verify_chain()
    assert not report.ok
    assert report.broken_event_id == middle.id
    assert report.reason == "content does not match its hash"
    with pytest.raises(CommandError, match=rf"BROKEN at audit event {middle.id}\b"):
        verify_audit()


def test_verify_audit_names_the_first_broken_event(org):
    chain = events()
    first, later = chain[3], chain[-2]
    for event in (later, first):
        raw("UPDATE core_auditevent SET verb = %s WHERE id = %s", ["forged", event.id])
    with pytest.raises(CommandError) as info:
        verify_audit()
    message = str(info.value)
    assert f"BROKEN at audit event {first.id}:" in message
    assert "content does not match its hash" in message
    assert "(3 events before it verified)" in message


def test_a_rehashed_row_still_breaks_the_link_to_the_next_event(org):
    chain = events()
    target, following = chain[4], chain[5]
    target.verb = "forged"
    forged_hash = _event_digest(target)
    raw(
        "UPDATE core_auditevent SET verb = %s, hash = %s WHERE id = %s",
        ["forged", forged_hash, target.id],
    )
    report = verify_chain()
    assert (report.ok, report.broken_event_id) == (False, following.id)
    assert report.reason == "previous-hash link does not match"


def test_a_row_deleted_in_the_database_is_detected(org):
    chain = events()
    removed, following = chain[len(chain) // 2], chain[len(chain) // 2 + 1]
    raw("DELETE FROM core_auditevent WHERE id = %s", [removed.id])
    report = verify_chain()
    assert not report.ok
    assert report.broken_event_id == following.id
    assert report.reason == "previous-hash link does not match"
    with pytest.raises(CommandError, match=rf"BROKEN at audit event {following.id}: previous-hash"):
        verify_audit()


def test_deleting_the_first_row_is_detected(org):
    chain = events()
    raw("DELETE FROM core_auditevent WHERE id = %s", [chain[0].id])
    assert verify_chain().broken_event_id == chain[1].id


# --- sealing ----------------------------------------------------------------------------------


def _left_unsealed(verb: str) -> None:
    """What a writer killed between its commit and its seal leaves behind: an event with no
    place in the chain yet."""
    last = AuditEvent.objects.order_by("-id").first()
    raw(
        "INSERT INTO core_auditevent (created_at, actor_repr, verb, target_type_id, "
        "target_id, target_repr, correlation_id) VALUES (%s, 'system', %s, %s, %s, %s, '')",
        [timezone.now(), verb, last.target_type_id, last.target_id, last.target_repr],
    )


def test_an_event_written_alone_is_sealed_at_once(org):
    event = audit_record(actor=None, verb="test.sealed", target=org.alpha)
    last = AuditEvent.objects.exclude(pk=event.pk).order_by("-seq").first()
    assert event.seq == last.seq + 1 and event.prev_hash == last.hash
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash == _event_digest(event)


def test_an_unsealed_event_is_reported_then_sealed_after_the_last_one(org):
    before = AuditEvent.objects.count()
    _left_unsealed("test.unsealed")
    report = verify_chain()
    assert (report.ok, report.checked, report.pending) == (True, before, 1)
    assert verify_audit().strip() == (
        f"OK: {before} audit events verified. (1 more waiting to be sealed)"
    )

    assert audit_seal_pending() == 1
    unsealed = AuditEvent.objects.get(verb="test.unsealed")
    last = AuditEvent.objects.exclude(pk=unsealed.pk).order_by("-seq").first()
    assert unsealed.seq == last.seq + 1 and unsealed.prev_hash == last.hash
    report = verify_chain()
    assert (report.ok, report.checked, report.pending) == (True, before + 1, 0)
    assert audit_seal_pending() == 0


def test_the_next_event_seals_what_was_left_unsealed_before_itself(org):
    _left_unsealed("test.unsealed")
    event = audit_record(actor=None, verb="test.next", target=org.alpha)
    unsealed = AuditEvent.objects.get(verb="test.unsealed")
    assert event.seq == unsealed.seq + 1 and event.prev_hash == unsealed.hash
    assert verify_chain().pending == 0


def test_the_hourly_chain_check_seals_what_was_left_unsealed(org, caplog):
    _left_unsealed("test.unsealed")
    with caplog.at_level("INFO", logger="core.tasks"):
        audit_verify_chain_task()
    assert AuditEvent.objects.get(verb="test.unsealed").seq is not None
    assert "sealed 1 audit events their writers left unsealed" in caplog.text
    assert f"audit chain OK ({AuditEvent.objects.count()} events)" in caplog.text


def test_a_sealed_event_cannot_be_sealed_again(org):
    event = AuditEvent.objects.order_by("seq").first()
    assert AuditEvent.objects.seal(event.pk, seq=10**9, prev_hash="0" * 64, hash="f" * 64) == 0
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash
    assert verify_chain().ok


# --- append-only through the ORM ---------------------------------------------------------------


def _unchanged(before: list[tuple]) -> None:
    assert list(AuditEvent.objects.order_by("id").values_list("id", "verb", "hash")) == before


def test_the_orm_refuses_to_update_or_delete_events(org):
    before = list(AuditEvent.objects.order_by("id").values_list("id", "verb", "hash"))
    event = AuditEvent.objects.order_by("id").first()

    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(verb="forged")
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.all().update(verb="forged")
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.all().delete()
    event.verb = "forged"
    with pytest.raises(PermissionError, match="append-only"):
        event.save()
    with pytest.raises(PermissionError, match="append-only"):
        event.save(update_fields=["verb"])
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.bulk_update([event], ["verb"])
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.get(pk=event.pk).delete()

    _unchanged(before)
    assert verify_chain().ok


# --- correlation ids ---------------------------------------------------------------------------


def _add_member(client, headers=None):
    response = client.post(
        "/teams/alpha/members/add/",
        {"username": "newcomer", "role": "viewer"},
        headers=headers or {},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def test_events_of_a_request_carry_its_x_request_id(org, client):
    assert client.login(username="alpha.lead", password=PASSWORD)
    since = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    _add_member(client, {"X-Request-ID": "req-7f3a-0001"})
    written = list(AuditEvent.objects.filter(id__gt=since))
    assert [e.verb for e in written] == ["membership.granted"]
    assert written[0].correlation_id == "req-7f3a-0001"
    assert written[0].actor == org.user("alpha.lead")
    assert written[0].after == {"user": "newcomer", "team": "alpha", "role": "viewer"}
    assert verify_chain().ok


def test_a_request_without_x_request_id_gets_a_fresh_correlation_id(org, client):
    assert client.login(username="alpha.lead", password=PASSWORD)
    since = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    _add_member(client)
    membership_pk = org.alpha.memberships.get(user__username="newcomer").pk
    response = client.post(f"/teams/alpha/members/{membership_pk}/role/", {"role": "ops"})
    assert response.status_code == 302
    first, second = AuditEvent.objects.filter(id__gt=since).order_by("id")
    assert (first.verb, second.verb) == ("membership.granted", "membership.role_changed")
    for event in (first, second):
        assert len(event.correlation_id) == 32
        int(event.correlation_id, 16)
    assert first.correlation_id != second.correlation_id


@pytest.mark.parametrize(
    "sent",
    ["x" * 65, "req 1", "<script>alert(1)</script>", "a\nforged-line", "caf\u00e9", "a/b", ""],
)
def test_a_malformed_x_request_id_is_replaced_by_a_fresh_one(org, client, sent):
    """Only [A-Za-z0-9._-]{1,64} is taken as the correlation id; anything else (too long,
    spaces, markup, control characters, non-ASCII) is not written to the audit trail."""
    assert client.login(username="alpha.lead", password=PASSWORD)
    _add_member(client, {"X-Request-ID": sent})
    written = AuditEvent.objects.order_by("-id").first().correlation_id
    assert written != sent and len(written) == 32
    int(written, 16)
    assert verify_chain().ok


def test_a_well_formed_x_request_id_of_64_characters_is_kept(org, client):
    assert client.login(username="alpha.lead", password=PASSWORD)
    sent = "A-z_0.9" + "x" * 57
    _add_member(client, {"X-Request-ID": sent})
    assert AuditEvent.objects.order_by("-id").first().correlation_id == sent


def test_events_outside_a_request_have_no_correlation_id_unless_scoped(org):
    assert set(AuditEvent.objects.values_list("correlation_id", flat=True)) == {""}
    with correlation_scope("job:42"):
        event = audit_record(actor=org.admin, verb="test.scoped", target=org.alpha)
    after = audit_record(actor=org.admin, verb="test.unscoped", target=org.alpha)
    assert (event.correlation_id, after.correlation_id) == ("job:42", "")


def test_the_hourly_beat_entry_runs_the_chain_check():
    from config.celery import app

    entry = app.conf.beat_schedule["audit-verify-chain-hourly"]
    assert entry["task"] == audit_verify_chain_task.name == "core.audit_verify_chain"
