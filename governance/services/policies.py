"""Approval policies: which roles of a team approve what, how many, and for how long."""

from django.db import transaction

from core.audit import audit_record
from core.errors import ValidationError
from governance.choices import ApprovalKind
from governance.models import ApprovalPolicy, ApprovalPolicyRole
from teams import permissions
from teams.choices import Role
from teams.models import Team

APPROVER_ROLE_CHOICES = (Role.LEAD, Role.STEWARD, Role.ENGINEER, Role.OPS)


def _policy_state(policy: ApprovalPolicy, roles: list[str]) -> dict:
    return {
        "team": policy.team.slug,
        "kind": policy.kind,
        "approver_roles": roles,
        "quorum": policy.quorum,
        "expiry_hours": policy.expiry_hours,
    }


@transaction.atomic
def approvalpolicy_set(
    *,
    actor,
    team: Team,
    kind: str,
    approver_roles: list[str],
    quorum: int,
    expiry_hours: int | None = None,
) -> ApprovalPolicy:
    """Set the team's policy for one kind of request (leads of the team or above). Requests
    already open keep the policy they were opened with."""
    permissions.require_manage_team(actor, team, "change the approval policies of this team")
    if kind not in ApprovalKind.values:
        raise ValidationError(f"Unknown request kind '{kind}'.", field="kind")
    roles = sorted(set(approver_roles))
    if not roles:
        raise ValidationError("Choose at least one approver role.", field="approver_roles")
    unknown = [r for r in roles if r not in APPROVER_ROLE_CHOICES]
    if unknown:
        raise ValidationError(
            f"Role(s) {', '.join(unknown)} cannot approve; choose from "
            f"{', '.join(APPROVER_ROLE_CHOICES)}.",
            field="approver_roles",
        )
    if quorum < 1:
        raise ValidationError("The quorum is at least 1.", field="quorum")
    if expiry_hours is not None and expiry_hours < 1:
        raise ValidationError("The expiry is at least 1 hour (or none).", field="expiry_hours")
    policy = ApprovalPolicy.objects.select_for_update().filter(team=team, kind=kind).first()
    before = _policy_state(policy, policy.roles) if policy else None
    policy = policy or ApprovalPolicy(team=team, kind=kind)
    policy.quorum, policy.expiry_hours = quorum, expiry_hours
    after = _policy_state(policy, roles)
    if before is not None and after == before:
        raise ValidationError("Nothing to change.")
    policy.save()
    if before is None or before["approver_roles"] != roles:
        policy.approver_roles.all().delete()
        ApprovalPolicyRole.objects.bulk_create(
            ApprovalPolicyRole(policy=policy, role=role) for role in roles
        )
    audit_record(
        actor=actor,
        verb="approvalpolicy.set",
        target=policy,
        before=before,
        after=after,
    )
    return policy
