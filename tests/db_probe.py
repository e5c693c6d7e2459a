"""Whether another connection could write to the database right now: on SQLite, whether the
database's one write lock is free. A service that does slow I/O (hashing an upload, verifying
an index, talking to an SMTP server) inside a write transaction holds that lock all along, and
every other writer (a worker recording a run's progress) waits, then fails "database is
locked" once SQLite's busy timeout has passed."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection

PROBE_TIMEOUT_S = 0.2  # stands in for the busy timeout: a free lock is taken at once


def database_is_sqlite() -> bool:
    return connection.vendor == "sqlite"


def require_sqlite() -> None:
    if not database_is_sqlite():
        pytest.skip("SQLite's database-wide write lock (PostgreSQL locks rows)")


def database_writable_now() -> bool:
    """Take and release the write lock from a separate connection, waiting at most 0.2 s
    (SQLite only: see `database_is_sqlite`)."""
    assert database_is_sqlite(), "the probe opens the database file with sqlite3"
    probe = sqlite3.connect(
        connection.settings_dict["NAME"], timeout=PROBE_TIMEOUT_S, isolation_level=None
    )
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    finally:
        probe.close()
