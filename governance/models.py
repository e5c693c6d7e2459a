"""Governed objects: data assets and their versions, SLAs, incidents, approvals."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from core.models import GovernedSubject
from governance.choices import (
    ApprovalKind,
    ApprovalState,
    AssetKind,
    Classification,
    IncidentStatus,
    ProfileStatus,
    SlaRule,
    Verdict,
    VersionStatus,
)
from teams.choices import Role


class DataAsset(GovernedSubject):
    """A data set the search pipeline consumes, owned by exactly one team.

    Its accountable person is the RACI "A" held in teams.Responsibility, never a field here,
    so there is one source of truth and a missing A shows up as a gap.
    """

    kind = models.CharField(max_length=32, choices=AssetKind.choices)
    owning_team = models.ForeignKey(
        "teams.Team", on_delete=models.PROTECT, related_name="data_assets"
    )
    classification = models.CharField(
        max_length=16, choices=Classification.choices, default=Classification.INTERNAL
    )
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    schema_contract = models.JSONField(default=dict, blank=True)


class AssetSLA(models.Model):
    """What "good and fresh" means for an asset. Empty thresholds are not checked."""

    asset = models.OneToOneField(DataAsset, on_delete=models.CASCADE, related_name="sla")
    freshness_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Max hours since the newest approved version."
    )
    min_rows = models.PositiveBigIntegerField(null=True, blank=True)
    max_null_rate = models.FloatField(
        null=True, blank=True, help_text="Max share of nulls in any column (0-1)."
    )
    column_max_null_rates = models.JSONField(
        default=dict, blank=True, help_text="Per-column overrides: {column: rate}."
    )
    max_duplicate_rate = models.FloatField(null=True, blank=True, help_text="On the key column.")
    enforce_schema = models.BooleanField(default=True)
    approval_latency_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Approval requests must be decided within this time."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"SLA of {self.asset}"


def dataset_upload_path(instance, filename: str) -> str:
    return f"datasets/{instance.asset.slug}/{instance.storage_key}/{filename}"


class DatasetVersion(models.Model):
    """One uploaded file of an asset, stored before any processing; immutable once submitted."""

    asset = models.ForeignKey(DataAsset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    storage_key = models.CharField(max_length=32, unique=True)
    file = models.FileField(upload_to=dataset_upload_path, max_length=500)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=24)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    submit_when_profiled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    profile_status = models.CharField(
        max_length=16, choices=ProfileStatus.choices, default=ProfileStatus.PENDING
    )
    profile_started_at = models.DateTimeField(null=True, blank=True)
    profile = models.JSONField(null=True, blank=True)
    profile_error = models.TextField(blank=True)
    profiled_at = models.DateTimeField(null=True, blank=True)
    row_count = models.PositiveBigIntegerField(null=True, blank=True)
    sla_results = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "number"], name="datasetversion_unique_number"
            ),
        ]
        indexes = [models.Index(fields=["asset", "status"])]

    def __str__(self) -> str:
        return f"{self.asset} v{self.number}"

    @property
    def is_profiled(self) -> bool:
        return self.profile_status == ProfileStatus.SUCCEEDED and bool(self.profile)

    @property
    def profiling_failed(self) -> bool:
        return self.profile_status == ProfileStatus.FAILED


class ApprovalPolicy(models.Model):
    """Who approves what for a team: approver roles, quorum, expiry."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="policies")
    kind = models.CharField(max_length=24, choices=ApprovalKind.choices)
    quorum = models.PositiveSmallIntegerField(default=1)
    expiry_hours = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "kind"], name="approvalpolicy_unique_team_kind"
            ),
            models.CheckConstraint(condition=Q(quorum__gte=1), name="approvalpolicy_quorum_min_1"),
        ]

    def __str__(self) -> str:
        return f"{self.team}: {self.get_kind_display()} (quorum {self.quorum})"

    @property
    def roles(self) -> list[str]:
        """The approver roles, in the order they were set (prefetch `approver_roles`)."""
        return [row.role for row in self.approver_roles.all()]


class ApprovalPolicyRole(models.Model):
    """One role whose holders approve under a policy: a row per role, so "may this role
    decide" is a join on every database (a JSON `contains` lookup is not, on SQLite)."""

    policy = models.ForeignKey(
        ApprovalPolicy, on_delete=models.CASCADE, related_name="approver_roles"
    )
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "role"], name="policyrole_unique_role"),
        ]

    def __str__(self) -> str:
        return f"{self.policy}: {self.role}"


class ApprovalRequest(models.Model):
    """A request for the owning teams to approve a subject, pinned to its content hash."""

    kind = models.CharField(max_length=24, choices=ApprovalKind.choices)
    subject_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    subject_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("subject_type", "subject_id")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests"
    )
    reason = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=ApprovalState.choices, default=ApprovalState.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="Approval-latency SLA.")
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome_note = models.CharField(max_length=300, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["state", "created_at"]),
            models.Index(fields=["subject_type", "subject_id"]),
        ]

    def __str__(self) -> str:
        return f"Approval #{self.pk} of {self.get_kind_display().lower()} {self.subject_id}"

    @property
    def is_pending(self) -> bool:
        return self.state == ApprovalState.PENDING


class ApprovalRequirement(models.Model):
    """One team whose approval a request needs, with the policy snapshot taken at request time."""

    request = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="requirements"
    )
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="+")
    quorum = models.PositiveSmallIntegerField(default=1)
    approvals = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "team"], name="requirement_unique_team"),
        ]

    def __str__(self) -> str:
        return f"{self.team} for request #{self.request_id}: {self.approvals}/{self.quorum}"

    @property
    def satisfied(self) -> bool:
        return self.approvals >= self.quorum

    @property
    def roles(self) -> list[str]:
        """The approver roles of the policy snapshot, in its order (prefetch `approver_roles`)."""
        return [row.role for row in self.approver_roles.all()]


class ApprovalRequirementRole(models.Model):
    """One approver role of a requirement's policy snapshot (see ApprovalPolicyRole)."""

    requirement = models.ForeignKey(
        ApprovalRequirement, on_delete=models.CASCADE, related_name="approver_roles"
    )
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["requirement", "role"], name="requirementrole_unique_role"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.requirement}: {self.role}"


class Decision(models.Model):
    """One approver's approve/reject on a request, counted toward one required team."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="decision_one_per_approver"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver}: {self.verdict} request #{self.request_id}"


class Incident(models.Model):
    """An SLA breach: one per asset and breached condition while it is not resolved."""

    asset = models.ForeignKey(DataAsset, on_delete=models.CASCADE, related_name="incidents")
    rule = models.CharField(max_length=24, choices=SlaRule.choices)
    dedup_key = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN
    )
    summary = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    approval_request = models.ForeignKey(
        ApprovalRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "dedup_key"],
                condition=~Q(status="resolved"),
                name="incident_one_unresolved_per_condition",
            ),
        ]
        indexes = [models.Index(fields=["status", "asset"])]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} breach on {self.asset}"


class IncidentEvent(models.Model):
    """The timeline of an incident."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=24)
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"
