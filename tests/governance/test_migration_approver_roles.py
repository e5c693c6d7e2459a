"""Migration 0006 turns the approver roles of policies (a JSON list) and of requirements (a
",steward,lead," string) into a row per role, in their order, and back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("governance", "0005_auditevent_moves_to_core")]
AFTER = [("governance", "0006_approver_roles_relational")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_roles_become_rows_and_back(org):
    apps = migrate(BEFORE)
    Policy = apps.get_model("governance", "ApprovalPolicy")
    Request = apps.get_model("governance", "ApprovalRequest")
    Requirement = apps.get_model("governance", "ApprovalRequirement")
    ContentType = apps.get_model("contenttypes", "ContentType")
    policy = Policy.objects.create(
        team_id=org.alpha.pk, kind="dataset_version", approver_roles=["steward", "lead"]
    )
    request = Request.objects.create(
        kind="dataset_version",
        subject_type=ContentType.objects.get(app_label="governance", model="datasetversion"),
        subject_id=1,
        requester_id=org.user("alpha.engineer").pk,
        content_hash="0" * 64,
    )
    both = Requirement.objects.create(
        request=request, team_id=org.alpha.pk, approver_roles=",lead,steward,"
    )
    one = Requirement.objects.create(request=request, team_id=org.beta.pk, approver_roles=",ops,")

    apps = migrate(AFTER)
    Policy = apps.get_model("governance", "ApprovalPolicy")
    Requirement = apps.get_model("governance", "ApprovalRequirement")

    def roles(obj):
        return list(obj.approver_roles.order_by("id").values_list("role", flat=True))

    assert roles(Policy.objects.get(pk=policy.pk)) == ["steward", "lead"]
    assert roles(Requirement.objects.get(pk=both.pk)) == ["lead", "steward"]
    assert roles(Requirement.objects.get(pk=one.pk)) == ["ops"]

    apps = migrate(BEFORE)
    Policy = apps.get_model("governance", "ApprovalPolicy")
    Requirement = apps.get_model("governance", "ApprovalRequirement")
    assert Policy.objects.get(pk=policy.pk).approver_roles == ["steward", "lead"]
    assert Requirement.objects.get(pk=both.pk).approver_roles == ",lead,steward,"
    assert Requirement.objects.get(pk=one.pk).approver_roles == ",ops,"

    migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()
