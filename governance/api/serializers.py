"""Input serializers shape incoming data; output serializers shape responses. No rules here."""

from rest_framework import serializers

from core.models import AuditEvent
from governance.choices import AssetKind, Classification, Verdict
from governance.forms import FORMAT_CHOICES
from governance.models import (
    ApprovalPolicy,
    ApprovalRequest,
    AssetSLA,
    DataAsset,
    DatasetVersion,
    Decision,
    Incident,
    IncidentEvent,
)
from governance.services.policies import APPROVER_ROLE_CHOICES
from teams.api.inputs import MAX_COUNT, MAX_DAYS, MAX_HOURS, MAX_LIST
from teams.api.serializers import UserBriefSerializer

MAX_QUORUM = 100  # approvals one team's policy may require


class AssetSLASerializer(serializers.ModelSerializer):
    class Meta:
        model = AssetSLA
        fields = [
            "freshness_hours",
            "min_rows",
            "max_null_rate",
            "column_max_null_rates",
            "max_duplicate_rate",
            "enforce_schema",
            "approval_latency_hours",
        ]


class AssetSLAInputSerializer(serializers.Serializer):
    freshness_hours = serializers.IntegerField(
        min_value=1, max_value=MAX_HOURS, required=False, allow_null=True
    )
    min_rows = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, allow_null=True
    )
    max_null_rate = serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True
    )
    column_max_null_rates = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=1), required=False
    )
    max_duplicate_rate = serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True
    )
    enforce_schema = serializers.BooleanField(required=False)
    approval_latency_hours = serializers.IntegerField(
        min_value=1, max_value=MAX_HOURS, required=False, allow_null=True
    )


class DataAssetOutputSerializer(serializers.ModelSerializer):
    owning_team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    accountable = serializers.SerializerMethodField()
    current_version = serializers.SerializerMethodField()
    open_incidents = serializers.IntegerField(read_only=True)
    sla = serializers.SerializerMethodField()

    class Meta:
        model = DataAsset
        fields = [
            "id",
            "name",
            "slug",
            "kind",
            "owning_team",
            "classification",
            "description",
            "retention_days",
            "schema_contract",
            "accountable",
            "current_version",
            "open_incidents",
            "sla",
            "created_at",
        ]

    def get_accountable(self, obj) -> str | None:  # prefetched by the selector
        rows = getattr(obj, "accountable_rows", [])
        return rows[0].user.username if rows else None

    def get_current_version(self, obj) -> int | None:
        versions = getattr(obj, "approved_versions", [])
        return versions[0].number if versions else None

    def get_sla(self, obj) -> dict | None:
        sla = getattr(obj, "sla", None)
        return AssetSLASerializer(sla).data if sla else None


class DataAssetCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=60, required=False, default="")
    kind = serializers.ChoiceField(choices=AssetKind.choices)
    owning_team = serializers.SlugField()
    classification = serializers.ChoiceField(
        choices=Classification.choices, default=Classification.INTERNAL
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    retention_days = serializers.IntegerField(
        min_value=1, max_value=MAX_DAYS, required=False, allow_null=True, default=None
    )
    schema_contract = serializers.DictField(required=False, default=dict)


class DataAssetUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    classification = serializers.ChoiceField(choices=Classification.choices, required=False)
    retention_days = serializers.IntegerField(
        min_value=1, max_value=MAX_DAYS, required=False, allow_null=True
    )
    schema_contract = serializers.DictField(required=False)


class DatasetVersionOutputSerializer(serializers.ModelSerializer):
    asset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "asset",
            "number",
            "status",
            "original_name",
            "format",
            "size_bytes",
            "sha256",
            "uploaded_by",
            "note",
            "created_at",
            "submitted_at",
            "decided_at",
            "profile_status",
            "profile_error",
            "profiled_at",
            "row_count",
            "profile",
            "sla_results",
        ]


class DatasetVersionUploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False)
    format = serializers.ChoiceField(choices=FORMAT_CHOICES, required=False, default="")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    submit = serializers.BooleanField(required=False, default=True)


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RequiredReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why (required).")


class NoteInputSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DecisionOutputSerializer(serializers.ModelSerializer):
    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Decision
        fields = ["approver", "team", "verdict", "comment", "created_at"]


class ApprovalRequestOutputSerializer(serializers.ModelSerializer):
    requester = serializers.SlugRelatedField(slug_field="username", read_only=True)
    requirements = serializers.SerializerMethodField()
    decisions = DecisionOutputSerializer(many=True, read_only=True)
    can_decide = serializers.BooleanField(
        read_only=True, help_text="Whether the caller may decide this request now."
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "kind",
            "subject_id",
            "requester",
            "reason",
            "content_hash",
            "state",
            "created_at",
            "expires_at",
            "due_at",
            "decided_at",
            "outcome_note",
            "escalation_level",
            "requirements",
            "decisions",
            "can_decide",
        ]

    def get_requirements(self, obj) -> list[dict]:  # prefetched by the selector
        return [
            {
                "team": r.team.slug,
                "approvals": r.approvals,
                "quorum": r.quorum,
                "approver_roles": r.roles,
            }
            for r in obj.requirements.all()
        ]


class DecideInputSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class IncidentEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = IncidentEvent
        fields = ["at", "actor", "kind", "message"]


class IncidentOutputSerializer(serializers.ModelSerializer):
    asset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    assigned_to = UserBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Incident
        fields = [
            "id",
            "asset",
            "rule",
            "status",
            "summary",
            "detail",
            "assigned_to",
            "version",
            "approval_request",
            "opened_at",
            "acknowledged_at",
            "resolved_at",
            "resolution_note",
        ]


class AuditEventOutputSerializer(serializers.ModelSerializer):
    target_type = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_repr",
            "verb",
            "target_type",
            "target_id",
            "target_repr",
            "before",
            "after",
            "correlation_id",
            "prev_hash",
            "hash",
        ]
        # Always present; null for the moment between an event's commit and its sealing.
        extra_kwargs = {"prev_hash": {"required": True}, "hash": {"required": True}}

    def get_target_type(self, obj) -> str:  # select_related by the selector
        return f"{obj.target_type.app_label}.{obj.target_type.model}"


class ApprovalPolicyOutputSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # The role rows as the list they replace (prefetched by the view); the schema is unchanged.
    approver_roles = serializers.JSONField(source="roles", required=False)

    class Meta:
        model = ApprovalPolicy
        fields = ["id", "team", "kind", "approver_roles", "quorum", "expiry_hours"]


class ApprovalPolicySetInputSerializer(serializers.Serializer):
    team = serializers.SlugField()
    kind = serializers.ChoiceField(
        choices=[k for k, _ in ApprovalPolicy._meta.get_field("kind").choices]
    )
    approver_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=APPROVER_ROLE_CHOICES),
        allow_empty=False,
        max_length=MAX_LIST,
    )
    quorum = serializers.IntegerField(min_value=1, max_value=MAX_QUORUM)
    expiry_hours = serializers.IntegerField(
        min_value=1, max_value=MAX_HOURS, required=False, allow_null=True, default=None
    )
