"""Input serializers shape incoming data; output serializers shape responses. No rules here."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from teams.api.inputs import MAX_LIST, IdField
from teams.choices import RaciKind, Role
from teams.models import Membership, Responsibility, Team

User = get_user_model()


class UserBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name"]


class TeamOutputSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    member_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Team
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "parent",
            "archived",
            "member_count",
            "created_at",
            "updated_at",
        ]


class TeamCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=60, required=False, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    parent = serializers.SlugField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Slug of the parent team; omit for a new organization (admins).",
    )


class TeamUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    parent = serializers.SlugField(required=False, help_text="Slug of the new parent team.")
    archived = serializers.BooleanField(required=False)


class MembershipOutputSerializer(serializers.ModelSerializer):
    user = UserBriefSerializer(read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "team", "role", "created_at"]


class MembershipCreateInputSerializer(serializers.Serializer):
    team = serializers.SlugField()
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipRoleInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class SuccessorInputSerializer(serializers.Serializer):
    responsibility = IdField()
    successor = serializers.CharField(
        allow_null=True, help_text="Username, or null to leave a gap."
    )


class MembershipRevokeInputSerializer(serializers.Serializer):
    successors = SuccessorInputSerializer(
        many=True, required=False, default=list, max_length=MAX_LIST
    )


class ResponsibilityOutputSerializer(serializers.ModelSerializer):
    user = UserBriefSerializer(read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    subject_type = serializers.SerializerMethodField()
    subject_label = serializers.CharField(read_only=True)

    class Meta:
        model = Responsibility
        fields = [
            "id",
            "team",
            "user",
            "kind",
            "subject_type",
            "subject_id",
            "area",
            "subject_label",
            "note",
            "created_at",
        ]

    def get_subject_type(self, obj) -> str | None:
        # subject_type is select_related by the selector: no query per row.
        return obj.subject_type.model if obj.subject_type_id else None


class ResponsibilityCreateInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    kind = serializers.ChoiceField(choices=RaciKind.choices)
    subject_type = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text='Governed subject type, e.g. "governance.dataasset".',
    )
    subject_id = IdField(required=False, allow_null=True, default=None)
    team = serializers.SlugField(
        required=False, allow_blank=True, default="", help_text="Team slug; needed for an area."
    )
    area = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    note = serializers.CharField(max_length=240, required=False, allow_blank=True, default="")
    replace = serializers.BooleanField(required=False, default=False)
