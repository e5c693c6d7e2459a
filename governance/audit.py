"""The append-only, hash-chained audit trail.

Services call `audit_record(...)` inside their transaction. Each event's hash covers its own
fields and the previous event's hash; `verify_chain()` walks the chain and reports the first
broken link. A per-request correlation id ties together the events of one request or job.
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
# Key of the PostgreSQL advisory lock that serialises appends to the chain.
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


def _lock_chain() -> None:
    # SQLite runs write transactions one at a time (IMMEDIATE mode); PostgreSQL needs a lock
    # so two concurrent appends cannot both chain onto the same previous event.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def audit_record(*, actor, verb: str, target, before=None, after=None):
    """Append one audit event for `actor` doing `verb` to `target` (a model instance)."""
    from governance.models import AuditEvent

    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
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
            prev_hash=last or GENESIS_HASH,
        )
        event.hash = _event_digest(event)
        event.save()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_event_id: int | None = None
    reason: str = ""


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the chain oldest first; report the first event whose link or hash is wrong."""
    from governance.models import AuditEvent

    expected_prev = GENESIS_HASH
    checked = 0
    events = AuditEvent.objects.order_by("id").iterator(chunk_size=batch_size)
    for event in events:
        if event.prev_hash != expected_prev:
            return ChainReport(False, checked, event.id, "previous-hash link does not match")
        if _event_digest(event) != event.hash:
            return ChainReport(False, checked, event.id, "content does not match its hash")
        expected_prev = event.hash
        checked += 1
    return ChainReport(True, checked)
