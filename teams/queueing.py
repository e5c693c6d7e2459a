"""Sending Celery tasks after commit without letting a broker outage break the request.

The row that a task works on is the truth, and a periodic sweep picks up what could not be
sent (pending e-mails, pending profiles, queued runs). So a failed send is logged, never raised
to the user whose change has already been committed.
"""

import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def _send(task, args: tuple) -> None:
    try:
        task.delay(*args)
    except Exception:  # broker unreachable: the sweep sends it later
        logger.warning("could not send %s%s; a sweep will retry", task.name, args, exc_info=True)


def enqueue_on_commit(task, *args) -> None:
    """`task.delay(*args)` once the current transaction commits; failures are logged."""
    transaction.on_commit(partial(_send, task, args))
