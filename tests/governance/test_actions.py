"""version_actions and incident_actions: the table of states, without a database (the service
tests cover the same refusals end to end)."""

from types import SimpleNamespace

import pytest

from core.errors import (
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from governance.actions import incident_actions, version_actions
from governance.models import DataAsset, DatasetVersion, Incident
from teams.models import Team


def _user(*perms: str, pk: int = 1):
    return SimpleNamespace(
        pk=pk, is_authenticated=True, is_active=True, has_perm=lambda perm, obj=None: perm in perms
    )


STEWARD = _user("teams.view_team", "teams.upload_data_team", "teams.steward_data_team")
ENGINEER = _user("teams.view_team", "teams.upload_data_team")
VIEWER = _user("teams.view_team")


def _asset():
    return DataAsset(name="Catalog", slug="catalog", owning_team=Team(name="Beta", slug="beta"))


@pytest.mark.parametrize(
    ("status", "profile_status", "submit", "deprecate"),
    [
        ("draft", "succeeded", True, False),
        ("draft", "running", False, False),
        ("submitted", "succeeded", False, False),
        ("approved", "succeeded", False, True),
        ("superseded", "succeeded", False, True),
        ("deprecated", "succeeded", False, False),
        ("rejected", "succeeded", False, False),
    ],
)
def test_version_actions_follow_its_status_and_profile(status, profile_status, submit, deprecate):
    version = DatasetVersion(number=2, status=status, profile_status=profile_status, asset=_asset())
    actions = version_actions(STEWARD, version)
    assert (bool(actions["submit"]), bool(actions["deprecate"])) == (submit, deprecate)


def test_version_refusals_carry_the_services_messages_and_errors():
    draft = DatasetVersion(number=2, status="draft", profile_status="failed", asset=_asset())
    draft.profile_error = "not a CSV"
    submit = version_actions(ENGINEER, draft)["submit"]
    assert submit.error is ValidationError
    assert (
        submit.reason == "Only a profiled version can be submitted: profiling failed (not a CSV)."
    )
    approved = DatasetVersion(number=1, status="approved", asset=_asset())
    deprecate = version_actions(ENGINEER, approved)["deprecate"]
    assert deprecate.error is PermissionDeniedError
    assert "deprecate versions of this asset" in deprecate.reason
    assert version_actions(VIEWER, draft)["submit"].error is PermissionDeniedError
    assert version_actions(_user(), draft)["submit"].error is NotFoundError
    submitted = DatasetVersion(number=3, status="submitted", asset=_asset())
    assert version_actions(STEWARD, submitted)["deprecate"].error is InvalidTransitionError


@pytest.mark.parametrize(
    ("user", "status", "allowed"),
    [
        (STEWARD, "open", True),
        (STEWARD, "acknowledged", False),
        (STEWARD, "resolved", False),
        (_user("teams.view_team", pk=9), "open", True),  # the accountable person
        (VIEWER, "open", False),
    ],
)
def test_incident_acknowledge(user, status, allowed):
    incident = Incident(status=status, asset=_asset(), assigned_to_id=9)
    assert bool(incident_actions(user, incident)["acknowledge"]) == allowed
