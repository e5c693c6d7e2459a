"""The transition tables of runs and index versions: every allowed move is allowed, every
other pair of states (the whole matrix) is refused; the services that change a state go
through them. No database except where a service is called."""

from __future__ import annotations

from itertools import product

import pytest

from core.errors import InvalidTransitionError
from recsys.choices import IndexStatus, RunState
from recsys.transitions import (
    INDEX_TRANSITIONS,
    RUN_TRANSITIONS,
    assert_index_transition,
    assert_run_transition,
    index_can_transition,
    run_can_transition,
)

ALLOWED_RUN_MOVES = {
    ("requested", "awaiting_approval"),
    ("requested", "cancelled"),
    ("awaiting_approval", "queued"),
    ("awaiting_approval", "cancelled"),
    ("queued", "running"),
    ("queued", "failed"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("failed", "queued"),
}
ALLOWED_INDEX_MOVES = {
    ("candidate", "active"),
    ("active", "retired"),
    ("retired", "active"),
}


def test_every_state_has_a_row():
    assert set(RUN_TRANSITIONS) == set(RunState.values)
    assert set(INDEX_TRANSITIONS) == set(IndexStatus.values)


@pytest.mark.parametrize(("current", "target"), list(product(RunState.values, repeat=2)))
def test_run_transition_matrix(current, target):
    allowed = (current, target) in ALLOWED_RUN_MOVES
    assert run_can_transition(current, target) is allowed
    if allowed:
        assert_run_transition(current, target)
    else:
        with pytest.raises(InvalidTransitionError, match=f"is {current}: it cannot become"):
            assert_run_transition(current, target, what="Run #7")


@pytest.mark.parametrize(("current", "target"), list(product(IndexStatus.values, repeat=2)))
def test_index_transition_matrix(current, target):
    allowed = (current, target) in ALLOWED_INDEX_MOVES
    assert index_can_transition(current, target) is allowed
    if allowed:
        assert_index_transition(current, target)
    else:
        with pytest.raises(InvalidTransitionError, match=f"is {current}: it cannot become"):
            assert_index_transition(current, target, what="Index v3")


def test_from_a_terminal_run_state_the_only_move_is_a_failed_runs_retry():
    from recsys.choices import TERMINAL_RUN_STATES

    moves = {(s, t) for s in TERMINAL_RUN_STATES for t in RUN_TRANSITIONS[s]}
    assert moves == {(RunState.FAILED, RunState.QUEUED)}


def test_an_unknown_state_is_refused():
    assert not run_can_transition("paused", "running")
    assert not index_can_transition("building", "active")


@pytest.mark.django_db
def test_a_run_service_refuses_a_move_the_table_does_not_allow(porg):
    """The one place a run's state changes checks the table: a succeeded run cannot be
    queued again, even by a service path that forgot its own check."""
    from recsys.models import PipelineRun
    from recsys.services.runs import _set_state
    from tests.recsys.pipeline_setup import request_run

    run = request_run(porg)
    PipelineRun.objects.filter(pk=run.pk).update(state="succeeded")
    run.refresh_from_db()
    with pytest.raises(InvalidTransitionError, match=f"Run #{run.pk} is succeeded"):
        _set_state(actor=None, run=run, state=RunState.QUEUED, verb="pipelinerun.queued")
    assert PipelineRun.objects.get(pk=run.pk).state == "succeeded"


@pytest.mark.django_db
def test_switching_the_served_index_refuses_a_status_move_the_table_does_not_allow(porg):
    """The pointer's previous index is (wrongly) still marked active: rolling back to it
    would make an active index active again, which the table refuses; nothing changes."""
    from recsys import services
    from recsys.models import ActiveIndex, IndexVersion
    from tests.recsys.search_setup import make_active

    first, second = _index(porg), _index(porg)
    make_active(first, porg.admin)
    make_active(second, porg.admin)  # sets the pointer only: `first` is left marked active
    ActiveIndex.objects.filter(pipeline=porg.pipeline).update(previous=first)
    with pytest.raises(InvalidTransitionError, match=f"Index v{first.pk} is active"):
        services.index_rollback(actor=porg.admin, pipeline=porg.pipeline)
    assert IndexVersion.objects.get(pk=second.pk).status == "active"
    assert ActiveIndex.objects.get(pipeline=porg.pipeline).index_id == second.pk


def _index(org):
    from recsys.models import IndexVersion, ModelVersion, PipelineRun

    run = PipelineRun.objects.create(
        pipeline=org.pipeline,
        kind="full_retrain",
        state="succeeded",
        requested_by=org.admin,
        reason="x",
        job_key=f"k{PipelineRun.objects.count()}",
    )
    model = ModelVersion.objects.create(run=run, base_model="m", path="/m", checksum="c")
    return IndexVersion.objects.create(
        pipeline=org.pipeline,
        run=run,
        model_version=model,
        catalog_version=org.catalog_v,
        path="/i",
        checksum="c",
        kind="flat",
        n_items=1,
        dim=1,
    )
