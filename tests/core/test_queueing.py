"""Enqueue after commit: a send the broker refuses is logged, never raised (a sweep resends)."""

from unittest import mock

import pytest

from core.queueing import enqueue_on_commit, send

pytestmark = pytest.mark.django_db


def _task():
    task = mock.Mock()
    task.name = "tests.some_task"
    return task


def test_send_uses_delay_without_options_and_apply_async_with_them():
    task = _task()
    assert send(task, 1, 2)
    task.delay.assert_called_once_with(1, 2)
    assert send(task, 3, queue="index", retry=False)
    task.apply_async.assert_called_once_with(args=[3], queue="index", retry=False)


def test_an_unreachable_broker_is_logged_not_raised(caplog):
    task = _task()
    task.delay.side_effect = ConnectionError("broker down")
    assert send(task, 7) is False
    assert "could not enqueue tests.some_task(7,)" in caplog.text


def test_enqueue_on_commit_sends_only_after_commit(django_capture_on_commit_callbacks):
    task = _task()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue_on_commit(task, 5, queue="clean")
        task.apply_async.assert_not_called()
    assert len(callbacks) == 1
    task.apply_async.assert_called_once_with(args=[5], queue="clean")
