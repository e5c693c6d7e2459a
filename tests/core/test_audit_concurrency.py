"""Two transactions that lock rows and audit in opposite orders (PostgreSQL).

CI caught it twice: a worker recording a run's results (audit, then rows) and another recording
its own (rows, then audit) deadlocked on the audit chain's lock, and one run failed with "deadlock
detected"; an upload and the profiling of an earlier upload of the same asset did the same. An
audit write never waits for the chain: it is sealed into the chain at once when nobody else is
sealing, else just after its transaction commits."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection, transaction

from core.audit import audit_record, verify_chain
from core.models import AuditEvent
from governance.models import DataAsset
from tests.conftest import build_org

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so they cannot deadlock")


def _in_thread(work) -> threading.Thread:
    def run():
        try:
            work()
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_transactions_that_lock_rows_and_audit_in_opposite_orders_both_commit():
    org = build_org()
    asset_pk = org.asset.pk
    before = AuditEvent.objects.count()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def rows_then_audit():  # like an upload: lock the asset, record the version, audit it
        try:
            with transaction.atomic():
                asset = DataAsset.objects.select_for_update().get(pk=asset_pk)
                barrier.wait(timeout=10)
                barrier.wait(timeout=10)  # the other has audited: the chain is in use
                audit_record(actor=None, verb="test.rows_then_audit", target=asset)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    def audit_then_rows():  # like recording a profile: audit, then touch the same asset
        try:
            with transaction.atomic():
                asset = DataAsset.objects.get(pk=asset_pk)
                barrier.wait(timeout=10)
                audit_record(actor=None, verb="test.audit_then_rows", target=asset)
                barrier.wait(timeout=10)
                DataAsset.objects.select_for_update().get(pk=asset_pk)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [_in_thread(rows_then_audit), _in_thread(audit_then_rows)]
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"test.rows_then_audit", "test.audit_then_rows"} <= verbs
    assert AuditEvent.objects.count() == before + 2
    assert not AuditEvent.objects.filter(hash__isnull=True).exists()  # both sealed
    report = verify_chain()
    assert report.ok and report.checked == before + 2 and report.pending == 0
