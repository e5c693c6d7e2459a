"""Organization API: read viewsets over selectors; every write calls one service."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.errors import ValidationError
from teams import selectors, services
from teams.api.inputs import valid_input
from teams.api.serializers import (
    MembershipCreateInputSerializer,
    MembershipOutputSerializer,
    MembershipRevokeInputSerializer,
    MembershipRoleInputSerializer,
    ResponsibilityCreateInputSerializer,
    ResponsibilityOutputSerializer,
    TeamCreateInputSerializer,
    TeamOutputSerializer,
    TeamUpdateInputSerializer,
)
from teams.filters import MembershipFilterSet, ResponsibilityFilterSet, TeamFilterSet


class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Teams visible to the user; create a sub-team (leads) or an organization (admins)."""

    serializer_class = TeamOutputSerializer
    filterset_class = TeamFilterSet
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.teams_visible_to(user=self.request.user)

    @extend_schema(request=TeamCreateInputSerializer, responses={201: TeamOutputSerializer})
    def create(self, request):
        data = valid_input(TeamCreateInputSerializer, request.data)
        parent_slug = data.pop("parent")
        parent = (
            selectors.team_get_for_user(user=request.user, slug=parent_slug)
            if parent_slug
            else None
        )
        team = services.team_create(actor=request.user, parent=parent, **data)
        return Response(
            TeamOutputSerializer(self.get_queryset().get(pk=team.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=TeamUpdateInputSerializer, responses={200: TeamOutputSerializer})
    def partial_update(self, request, slug=None):
        team = self.get_object()
        data = valid_input(TeamUpdateInputSerializer, request.data)
        if "parent" in data:
            data["parent"] = selectors.team_get_for_user(user=request.user, slug=data["parent"])
        services.team_update(actor=request.user, team=team, **data)
        return Response(TeamOutputSerializer(self.get_queryset().get(pk=team.pk)).data)


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Memberships of visible teams; grant, change role and revoke through services."""

    serializer_class = MembershipOutputSerializer
    filterset_class = MembershipFilterSet

    def get_queryset(self):
        return selectors.memberships_visible_to(user=self.request.user)

    @extend_schema(
        request=MembershipCreateInputSerializer, responses={201: MembershipOutputSerializer}
    )
    def create(self, request):
        data = valid_input(MembershipCreateInputSerializer, request.data)
        team = selectors.team_get_for_user(user=request.user, slug=data["team"])
        user = services.user_by_username(data["username"])
        membership = services.membership_grant(
            actor=request.user, team=team, user=user, role=data["role"]
        )
        return Response(MembershipOutputSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=MembershipRoleInputSerializer, responses={200: MembershipOutputSerializer}
    )
    def partial_update(self, request, pk=None):
        data = valid_input(MembershipRoleInputSerializer, request.data)
        membership = services.membership_change_role(
            actor=request.user, membership=self.get_object(), role=data["role"]
        )
        return Response(MembershipOutputSerializer(membership).data)

    @extend_schema(request=MembershipRevokeInputSerializer, responses={204: None})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Remove the member; name a successor (username) or null per accountable subject."""
        membership = self.get_object()
        data = valid_input(MembershipRevokeInputSerializer, request.data)
        names = {row["successor"] for row in data["successors"] if row["successor"]}
        users = selectors.active_users_by_username(usernames=names)
        missing = names - set(users)
        if missing:
            raise ValidationError(
                f"No active user with the username '{sorted(missing)[0]}'.", field="successors"
            )
        successors = {
            row["responsibility"]: users.get(row["successor"]) for row in data["successors"]
        }
        services.membership_revoke(actor=request.user, membership=membership, successors=successors)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Remove a member who is accountable for nothing (else 409: use revoke)."""
        services.membership_revoke(actor=request.user, membership=self.get_object(), successors={})
        return Response(status=status.HTTP_204_NO_CONTENT)


class ResponsibilityViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """RACI assignments in visible teams; assign and remove through services."""

    serializer_class = ResponsibilityOutputSerializer
    filterset_class = ResponsibilityFilterSet

    def get_queryset(self):
        return selectors.responsibilities_visible_to(user=self.request.user)

    @extend_schema(
        request=ResponsibilityCreateInputSerializer, responses={201: ResponsibilityOutputSerializer}
    )
    def create(self, request):
        data = valid_input(ResponsibilityCreateInputSerializer, request.data)
        subject, team = None, None
        if data["subject_type"] or data["subject_id"] is not None:
            if not data["subject_type"] or data["subject_id"] is None:
                raise ValidationError(
                    "Give both subject_type and subject_id.", field="subject_type"
                )
            subject = selectors.subject_get_for_user(
                user=request.user, type_label=data["subject_type"], subject_id=data["subject_id"]
            )
        if data["team"]:
            team = selectors.team_get_for_user(user=request.user, slug=data["team"])
        user = services.user_by_username(data["username"])
        responsibility = services.responsibility_assign(
            actor=request.user,
            user=user,
            kind=data["kind"],
            subject=subject,
            team=team,
            area=data["area"],
            note=data["note"],
            replace=data["replace"],
        )
        out = self.get_queryset().get(pk=responsibility.pk)
        return Response(ResponsibilityOutputSerializer(out).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.responsibility_remove(actor=request.user, responsibility=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
