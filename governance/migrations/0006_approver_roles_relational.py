"""Approver roles become rows (one per role) instead of a JSON list on the policy and a
",steward,lead," string on each requirement: "may this role decide" is then a join on every
database. The rows keep the order of the roles they replace; going back writes the list and
the string again from them.

The new foreign keys get their final related name ("approver_roles", the name of the columns
they replace) only once those columns are gone."""

import django.db.models.deletion
from django.db import migrations, models

ROLE_CHOICES = [
    ("lead", "Lead"),
    ("steward", "Data steward"),
    ("engineer", "ML engineer"),
    ("ops", "Ops"),
    ("viewer", "Viewer"),
]


def _unique(roles):
    return list(dict.fromkeys(r for r in roles if r))


def roles_to_rows(apps, schema_editor):
    ApprovalPolicy = apps.get_model("governance", "ApprovalPolicy")
    ApprovalPolicyRole = apps.get_model("governance", "ApprovalPolicyRole")
    ApprovalRequirement = apps.get_model("governance", "ApprovalRequirement")
    ApprovalRequirementRole = apps.get_model("governance", "ApprovalRequirementRole")
    ApprovalPolicyRole.objects.bulk_create(
        ApprovalPolicyRole(policy_id=pk, role=role)
        for pk, roles in ApprovalPolicy.objects.values_list("pk", "approver_roles").iterator()
        for role in _unique(roles or [])
    )
    rows = ApprovalRequirement.objects.values_list("pk", "approver_roles").iterator()
    ApprovalRequirementRole.objects.bulk_create(
        (
            ApprovalRequirementRole(requirement_id=pk, role=role)
            for pk, roles in rows
            for role in _unique(roles.split(","))
        ),
        batch_size=1000,
    )


def rows_to_roles(apps, schema_editor):
    ApprovalPolicy = apps.get_model("governance", "ApprovalPolicy")
    ApprovalPolicyRole = apps.get_model("governance", "ApprovalPolicyRole")
    ApprovalRequirement = apps.get_model("governance", "ApprovalRequirement")
    ApprovalRequirementRole = apps.get_model("governance", "ApprovalRequirementRole")
    policy_roles: dict = {}
    for pk, role in ApprovalPolicyRole.objects.order_by("id").values_list("policy_id", "role"):
        policy_roles.setdefault(pk, []).append(role)
    for pk, roles in policy_roles.items():
        ApprovalPolicy.objects.filter(pk=pk).update(approver_roles=roles)
    requirement_roles: dict = {}
    rows = ApprovalRequirementRole.objects.order_by("id").values_list("requirement_id", "role")
    for pk, role in rows:
        requirement_roles.setdefault(pk, []).append(role)
    for pk, roles in requirement_roles.items():
        ApprovalRequirement.objects.filter(pk=pk).update(approver_roles="," + ",".join(roles) + ",")


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0005_auditevent_moves_to_core"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApprovalPolicyRole",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("role", models.CharField(choices=ROLE_CHOICES, max_length=16)),
                (
                    "policy",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.approvalpolicy",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("policy", "role"), name="policyrole_unique_role"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ApprovalRequirementRole",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("role", models.CharField(choices=ROLE_CHOICES, max_length=16)),
                (
                    "requirement",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.approvalrequirement",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("requirement", "role"), name="requirementrole_unique_role"
                    )
                ],
            },
        ),
        migrations.RunPython(roles_to_rows, rows_to_roles),
        # Going back re-adds the column before rows_to_roles fills it: give it a value for the
        # rows that exist (",", no role) until then.
        migrations.AlterField(
            model_name="approvalrequirement",
            name="approver_roles",
            field=models.CharField(default=",", max_length=120),
        ),
        migrations.RemoveField(
            model_name="approvalpolicy",
            name="approver_roles",
        ),
        migrations.RemoveField(
            model_name="approvalrequirement",
            name="approver_roles",
        ),
        migrations.AlterField(
            model_name="approvalpolicyrole",
            name="policy",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="approver_roles",
                to="governance.approvalpolicy",
            ),
        ),
        migrations.AlterField(
            model_name="approvalrequirementrole",
            name="requirement",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="approver_roles",
                to="governance.approvalrequirement",
            ),
        ),
    ]
