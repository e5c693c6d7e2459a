"""Two leads moving teams of one organization at the same moment (PostgreSQL row locks).

"Alpha under Beta Sub" and "Beta under Alpha Sub" each pass the cycle check alone; together they
would make a cycle (the moved rows do not reference each other, so no row lock of the old code
stops them). Structural changes of one organization are serialised by a lock on its root row,
so exactly one move wins and the other is refused with the cycle error."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from core.errors import ValidationError
from core.models import AuditEvent
from teams import permissions, services
from teams.models import Team
from teams.services import teams as team_writes
from tests.conftest import build_org

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks and serialises writers")


def test_concurrent_opposite_moves_make_no_cycle(monkeypatch):
    org = build_org()
    beta_sub = services.team_create(actor=org.admin, name="Beta Sub", parent=org.beta)
    original = team_writes._check_parent
    arrived = [threading.Event(), threading.Event()]

    def rendezvous_then_check(*, team, parent):
        # Each move waits (briefly) until the other has reached its cycle check too: without a
        # lock on the organization both get here on the old tree and both pass.
        index = 0 if team.pk == org.alpha.pk else 1
        arrived[index].set()
        arrived[1 - index].wait(timeout=1.0)
        return original(team=team, parent=parent)

    monkeypatch.setattr(team_writes, "_check_parent", rendezvous_then_check)
    moves = [(org.alpha, beta_sub), (org.beta, org.sub)]
    results: list = [None, None]

    def work(index, team, parent):
        try:
            results[index] = services.team_update(actor=org.admin, team=team, parent=parent)
        except Exception as exc:  # reported to the test thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, *m)) for i, m in enumerate(moves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a move did not finish (deadlock?)"

    wins = [r for r in results if isinstance(r, Team)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert type(losses[0]) is ValidationError and "cycle" in losses[0].message
    # The tree has a root for every team, and one move was audited.
    parents = dict(Team.objects.values_list("id", "parent_id"))
    for team_id in parents:
        assert permissions.root_id_of(team_id) == org.root.pk
    assert AuditEvent.objects.filter(verb="team.updated").count() == 1
