"""The append-only, hash-chained audit trail.

Services call `audit_record(...)` inside their transaction. Each event's hash covers its own
fields and the previous event's hash; `verify_chain()` walks the chain and reports the first
broken link. Events are sealed into the chain without ever making a writer wait (see
`audit_record`). A per-request correlation id ties together the events of one request or job.
"""

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

GENESIS_HASH = "0" * 64
# Key of the PostgreSQL advisory lock that serialises sealing events into the chain.
_CHAIN_LOCK_KEY = 0x5717_A0D1
_correlation_id: ContextVar[str] = ContextVar("audit_correlation_id", default="")
# An X-Request-ID taken as the correlation id: printable, no spaces or markup, fits the column.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CorrelationIdMiddleware:
    """Gives every request a correlation id for its audit events: its X-Request-ID when that is
    well-formed ([A-Za-z0-9._-]{1,64}), else a fresh one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        if not _REQUEST_ID.fullmatch(incoming):  # malformed or absent: a fresh one
            incoming = uuid.uuid4().hex
        token = _correlation_id.set(incoming)
        try:
            response = self.get_response(request)
        finally:
            _correlation_id.reset(token)
        return response


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[None]:
    """Use `correlation_id` (e.g. a job key) for the audit events written inside the block."""
    token = _correlation_id.set(correlation_id[:64])
    try:
        yield
    finally:
        _correlation_id.reset(token)


def _normalise(value):
    """What the JSON column will hand back, so the hash is computed over stored values."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _event_digest(event) -> str:
    payload = {
        "prev": event.prev_hash,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "actor_id": event.actor_id,
        "actor": event.actor_repr,
        "verb": event.verb,
        "target_type": event.target_type_id,
        "target_id": str(event.target_id),
        "target": event.target_repr,
        "before": event.before,
        "after": event.after,
        "correlation_id": event.correlation_id,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _chain_lock_taken(*, wait: bool) -> bool:
    """Take the chain's lock for the rest of this transaction: wait for it, or only take it
    when it is free. SQLite runs write transactions one at a time (IMMEDIATE mode), so there
    it is always ours; PostgreSQL needs an advisory lock so two sealers cannot both link onto
    the same previous event."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _seal_unsealed() -> dict[int, tuple[int, str, str]]:
    """Link every unsealed event this transaction can see after the chain's last one, oldest
    first; returns event id -> (seq, prev_hash, hash) of those it sealed. The caller holds the
    chain's lock."""
    from core.models import AuditEvent

    last = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq")
    last = last.values_list("seq", "hash").first()
    seq, prev_hash = last or (0, GENESIS_HASH)
    sealed = {}
    for event in AuditEvent.objects.filter(seq__isnull=True).order_by("id"):
        seq += 1
        event.seq, event.prev_hash = seq, prev_hash
        event.hash = prev_hash = _event_digest(event)
        if AuditEvent.objects.seal(event.pk, seq=seq, prev_hash=event.prev_hash, hash=event.hash):
            sealed[event.pk] = (event.seq, event.prev_hash, event.hash)
    return sealed


def audit_seal_pending() -> int:
    """Seal events whose writers committed them but did not seal them: a writer that found the
    chain busy seals just after its commit, and one that died in between leaves them to the
    next seal (the hourly chain check runs one). Returns how many it sealed."""
    with transaction.atomic():
        _chain_lock_taken(wait=True)
        return len(_seal_unsealed())


def audit_record(*, actor, verb: str, target, before=None, after=None):
    """Append one audit event for `actor` doing `verb` to `target` (a model instance).

    The event is written in the caller's transaction, so it exists exactly when the change it
    records does. It is sealed into the hash chain at once when the chain's lock is free; when
    another transaction holds it, just after this one commits. Writing never waits for the
    lock: a transaction that held row locks and then waited for the chain, while the chain's
    holder waited for those rows, would deadlock."""
    from core.models import AuditEvent

    with transaction.atomic():
        actor_obj = actor if actor is not None and actor.is_authenticated else None
        event = AuditEvent(
            created_at=timezone.now(),
            actor=actor_obj,
            actor_repr=actor_obj.get_username() if actor_obj else "system",
            verb=verb,
            target_type=ContentType.objects.get_for_model(target),
            target_id=str(target.pk),
            target_repr=str(target)[:200],
            before=_normalise(before),
            after=_normalise(after),
            correlation_id=_correlation_id.get(),
        )
        event.save()
        if _chain_lock_taken(wait=False):
            event.seq, event.prev_hash, event.hash = _seal_unsealed()[event.pk]
        else:
            transaction.on_commit(audit_seal_pending, robust=True)  # else the hourly check seals
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_event_id: int | None = None
    reason: str = ""
    pending: int = 0  # written, not yet sealed into the chain


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the chain in its order; report the first event whose link or hash is wrong, and
    how many events wait to be sealed."""
    from core.models import AuditEvent

    expected_prev = GENESIS_HASH
    checked = 0
    events = AuditEvent.objects.filter(seq__isnull=False).order_by("seq")
    for event in events.iterator(chunk_size=batch_size):
        if event.prev_hash != expected_prev:
            return ChainReport(False, checked, event.id, "previous-hash link does not match")
        if _event_digest(event) != event.hash:
            return ChainReport(False, checked, event.id, "content does not match its hash")
        expected_prev = event.hash
        checked += 1
    return ChainReport(True, checked, pending=AuditEvent.objects.filter(seq__isnull=True).count())
