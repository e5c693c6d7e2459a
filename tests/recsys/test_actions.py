"""run_actions and index_actions: one verdict per action, the same the services raise (their
service tests cover the refusals end to end); here the table of states, without a database."""

from types import SimpleNamespace

import pytest

from core.actions import Allowed, Refused
from core.errors import NotFoundError, PermissionDeniedError, ValidationError
from governance.models import ApprovalRequest
from recsys.actions import index_actions, pipeline_actions, run_actions
from recsys.models import IndexVersion, Pipeline, PipelineRun
from teams.models import Team


def _user(*perms: str):
    return SimpleNamespace(
        pk=1, is_authenticated=True, is_active=True, has_perm=lambda perm, obj=None: perm in perms
    )


OPS = _user("teams.view_team", "teams.run_pipeline_team")
VIEWER = _user("teams.view_team")
STRANGER = _user()


def _pipeline():
    return Pipeline(name="Search", slug="search", owning_team=Team(name="Beta", slug="beta"))


@pytest.mark.parametrize(
    ("state", "cancel_requested", "cancel", "retry"),
    [
        ("awaiting_approval", False, True, False),
        ("queued", False, True, False),
        ("running", False, True, False),
        ("running", True, False, False),
        ("succeeded", False, False, False),
        ("failed", False, False, True),
        ("cancelled", False, False, False),
    ],
)
def test_run_actions_follow_the_run_state(state, cancel_requested, cancel, retry):
    run = PipelineRun(pk=7, state=state, cancel_requested=cancel_requested, pipeline=_pipeline())
    actions = run_actions(OPS, run)
    assert (bool(actions["cancel"]), bool(actions["retry"])) == (cancel, retry)
    for verdict in actions.values():
        if not verdict:
            assert verdict.error is ValidationError and "#7" in verdict.reason


def test_run_actions_refuse_viewers_with_the_reason_and_strangers_as_not_found():
    run = PipelineRun(pk=7, state="failed", pipeline=_pipeline())
    refused = run_actions(VIEWER, run)["retry"]
    assert refused == Refused(
        "You cannot retry runs of this pipeline: only ops and leads of Beta can.",
        PermissionDeniedError,
    )
    assert run_actions(STRANGER, run)["cancel"].error is NotFoundError
    with pytest.raises(PermissionDeniedError, match="only ops and leads of Beta"):
        refused.require()


@pytest.mark.parametrize(
    ("status", "activation", "request_activation", "activate"),
    [
        ("candidate", None, True, False),
        ("candidate", "pending", False, False),
        ("candidate", "approved", False, True),
        ("candidate", "rejected", True, False),
        ("active", "approved", False, False),
        ("retired", None, False, False),
    ],
)
def test_index_actions_follow_its_status_and_activation(
    status, activation, request_activation, activate
):
    index = IndexVersion(pk=3, status=status, pipeline=_pipeline())
    request = ApprovalRequest(state=activation) if activation else None
    actions = index_actions(OPS, index, activation=request)
    assert bool(actions["request_activation"]) == request_activation
    assert bool(actions["activate"]) == activate
    assert actions["activate"] == Allowed() or actions["activate"].reason


def test_pipeline_actions():
    pipeline, lead = (
        _pipeline(),
        _user("teams.view_team", "teams.run_pipeline_team", "teams.manage_team"),
    )
    served_twice = SimpleNamespace(previous_id=4)
    assert pipeline_actions(OPS, pipeline, active=None)["request_run"]
    assert not pipeline_actions(VIEWER, pipeline, active=None)["request_run"]
    assert pipeline_actions(OPS, pipeline, active=served_twice)["rollback"]
    assert pipeline_actions(OPS, pipeline, active=SimpleNamespace(previous_id=None))[
        "rollback"
    ] == Refused("Search has no previous index to roll back to.", ValidationError)
    assert not pipeline_actions(OPS, pipeline, active=None)["schedule"]
    assert pipeline_actions(lead, pipeline, active=None)["schedule"]


def test_a_verdict_reads_as_a_boolean_in_templates():
    from django.template import Context, Template

    template = Template("{% if a %}yes{% endif %}{% if r %}no{% endif %}")
    assert template.render(Context({"a": Allowed(), "r": Refused("x", ValidationError)})) == "yes"
