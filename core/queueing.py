"""Sending Celery tasks after commit without letting a broker outage break the request.

The row that a task works on is the truth, and a periodic sweep picks up what could not be
sent (pending e-mails, pending profiles, queued runs). So a failed send is logged, never raised
to the user whose change has already been committed, nor into the sweep that retries it.
"""

import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def send(task, *args, **options) -> bool:
    """Send `task(*args)` now; `options` (e.g. `queue=`) go to Celery's `apply_async`. Returns
    whether the broker took it: an unreachable broker is logged, and a sweep sends it later."""
    try:
        if options:
            task.apply_async(args=list(args), **options)
        else:
            task.delay(*args)
    except Exception:  # broker unreachable: the sweep sends it later
        logger.warning("could not enqueue %s%s; a sweep will retry", task.name, args, exc_info=True)
        return False
    return True


def enqueue_on_commit(task, *args, **options) -> None:
    """`send(task, *args, **options)` once the current transaction commits."""
    transaction.on_commit(partial(send, task, *args, **options))
