"""Input serializers shape incoming data; output serializers shape responses. No rules here."""

from rest_framework import serializers

from governance.choices import ApprovalState
from recsys.choices import RunKind
from recsys.models import IndexVersion, Pipeline, PipelineRun
from teams.api.inputs import MAX_LIST, IdField


# The approval of a run or an index (governance's ApprovalRequest), as the API shows it.
class ApprovalRequirementBriefSerializer(serializers.Serializer):
    team = serializers.CharField(help_text="Slug of the team whose approvals are required.")
    approvals = serializers.IntegerField()
    quorum = serializers.IntegerField()
    approver_roles = serializers.ListField(child=serializers.CharField())


class ApprovalBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=ApprovalState.choices)
    requirements = ApprovalRequirementBriefSerializer(many=True)


class ApprovalSummaryOutputSerializer(serializers.Serializer):
    """The approval request of an object (null when none was opened): its state and, per required
    team, the approvals given and the quorum."""

    approval = ApprovalBriefSerializer(allow_null=True)


def approval_summary(request) -> dict:
    """The ApprovalSummaryOutputSerializer shape of an approval request (or of none)."""
    if request is None:
        return {"approval": None}
    return {
        "approval": {
            "id": request.pk,
            "state": request.state,
            "requirements": [
                {
                    "team": r.team.slug,
                    "approvals": r.approvals,
                    "quorum": r.quorum,
                    "approver_roles": r.roles,
                }
                for r in request.requirements.all()
            ],
        }
    }


class PipelineOutputSerializer(serializers.ModelSerializer):
    owning_team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    input_assets = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    active_index = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = [
            "id",
            "name",
            "slug",
            "owning_team",
            "description",
            "input_assets",
            "default_parameters",
            "schedule",
            "schedule_last_slot",
            "active_index",
            "created_at",
        ]

    def get_active_index(self, obj) -> int | None:  # select_related by the selector
        active = getattr(obj, "active", None)
        return active.index_id if active else None


class PipelineRunOutputSerializer(serializers.ModelSerializer):
    pipeline = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PipelineRun
        fields = [
            "id",
            "pipeline",
            "kind",
            "state",
            "parameters",
            "requested_by",
            "reason",
            "attempt",
            "progress",
            "step",
            "error",
            "cancel_requested",
            "outputs",
            "timings",
            "worker_host",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
        ]


class PipelineRunDetailSerializer(PipelineRunOutputSerializer):
    inputs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    log_tail = serializers.SerializerMethodField()

    class Meta(PipelineRunOutputSerializer.Meta):
        fields = [*PipelineRunOutputSerializer.Meta.fields, "inputs", "log_tail"]

    def get_log_tail(self, obj) -> str:
        return "\n".join(obj.log.splitlines()[-40:])


class RunRequestInputSerializer(serializers.Serializer):
    pipeline = serializers.SlugField()
    kind = serializers.ChoiceField(choices=RunKind.choices, default=RunKind.FULL_RETRAIN)
    inputs = serializers.ListField(
        child=IdField(),
        allow_empty=False,
        max_length=MAX_LIST,
        help_text="Ids of approved dataset versions.",
    )
    parameters = serializers.DictField(
        required=False,
        default=dict,
        help_text="Overrides of the pipeline's defaults; model_version (build_index: a model "
        "version id, default the newest) and index_version (evaluate: required) name the "
        "version a single-step run works on.",
    )
    reason = serializers.CharField()


class IndexVersionOutputSerializer(serializers.ModelSerializer):
    pipeline = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = IndexVersion
        fields = [
            "id",
            "pipeline",
            "run",
            "model_version",
            "catalog_version",
            "kind",
            "n_items",
            "dim",
            "checksum",
            "metrics",
            "status",
            "created_at",
            "activated_at",
        ]


class ScheduleInputSerializer(serializers.Serializer):
    schedule = serializers.CharField(
        allow_blank=True,
        help_text='5-field cron expression ("0 3 * * 1" = Mondays 03:00); "" clears',
    )


class ActivationReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class RunInputIncidentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    asset = serializers.CharField()
    summary = serializers.CharField()
    status = serializers.CharField()
    url = serializers.CharField()


class RunApprovalOutputSerializer(ApprovalSummaryOutputSerializer):
    """Who still has to approve a run, why it cannot run yet, open incidents on its inputs."""

    blockers = serializers.ListField(child=serializers.CharField())
    input_incidents = RunInputIncidentSerializer(many=True)
