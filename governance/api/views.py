"""Governance API: read viewsets over selectors; every write calls one service."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from governance import selectors, services
from governance.api.serializers import (
    ApprovalPolicyOutputSerializer,
    ApprovalPolicySetInputSerializer,
    ApprovalRequestOutputSerializer,
    AssetSLAInputSerializer,
    AssetSLASerializer,
    AuditEventOutputSerializer,
    DataAssetCreateInputSerializer,
    DataAssetOutputSerializer,
    DataAssetUpdateInputSerializer,
    DatasetVersionOutputSerializer,
    DatasetVersionUploadInputSerializer,
    DecideInputSerializer,
    IncidentEventOutputSerializer,
    IncidentOutputSerializer,
    NoteInputSerializer,
    ReasonInputSerializer,
    RequiredReasonInputSerializer,
)
from governance.models import AssetSLA
from teams import selectors as team_selectors
from teams.api.inputs import valid_input


class DataAssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Data assets of visible teams; register, edit, set the SLA, upload versions."""

    serializer_class = DataAssetOutputSerializer
    lookup_field = "slug"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        qs = selectors.assets_visible_to(
            user=self.request.user, team_slug=self.request.query_params.get("team", "")
        )
        kind = self.request.query_params.get("kind")
        return qs.filter(kind=kind) if kind else qs

    @extend_schema(parameters=[OpenApiParameter("team", str), OpenApiParameter("kind", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=DataAssetCreateInputSerializer, responses={201: DataAssetOutputSerializer}
    )
    def create(self, request):
        data = valid_input(DataAssetCreateInputSerializer, request.data)
        team = team_selectors.team_get_for_user(user=request.user, slug=data.pop("owning_team"))
        asset = services.dataasset_create(actor=request.user, owning_team=team, **data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=asset.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=DataAssetUpdateInputSerializer, responses={200: DataAssetOutputSerializer}
    )
    def partial_update(self, request, slug=None):
        asset = self.get_object()
        services.dataasset_update(
            actor=request.user,
            asset=asset,
            **valid_input(DataAssetUpdateInputSerializer, request.data),
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=asset.pk)).data)

    @extend_schema(
        methods=["PUT"], request=AssetSLAInputSerializer, responses={200: AssetSLASerializer}
    )
    @extend_schema(methods=["GET"], responses={200: AssetSLASerializer})
    @action(detail=True, methods=["get", "put"])
    def sla(self, request, slug=None):
        """The asset's SLA; PUT sets the given thresholds (null: not checked). An asset without
        one answers the defaults that then apply (no threshold; the schema contract enforced)."""
        asset = self.get_object()
        if request.method == "GET":
            sla = getattr(asset, "sla", None) or AssetSLA(asset=asset)
            return Response(AssetSLASerializer(sla).data)
        sla = services.assetsla_update(
            actor=request.user, asset=asset, **valid_input(AssetSLAInputSerializer, request.data)
        )
        return Response(AssetSLASerializer(sla).data)

    @extend_schema(
        request={"multipart/form-data": DatasetVersionUploadInputSerializer},
        responses={201: DatasetVersionOutputSerializer},
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def versions(self, request, slug=None):
        """Upload a file as a new version (multipart `file`); profiled by a worker."""
        asset = self.get_object()
        data = valid_input(DatasetVersionUploadInputSerializer, request.data)
        upload = data["file"]
        version = services.dataset_version_upload(
            actor=request.user,
            asset=asset,
            file=upload,
            name=upload.name,
            fmt=data["format"] or None,
            note=data["note"],
            submit=data["submit"],
        )
        return Response(
            DatasetVersionOutputSerializer(version).data, status=status.HTTP_201_CREATED
        )


class DatasetVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Versions of visible assets (filters: asset, status); submit and deprecate."""

    serializer_class = DatasetVersionOutputSerializer

    def get_queryset(self):
        qs = selectors.versions_visible_to(user=self.request.user)
        params = self.request.query_params
        if params.get("asset"):
            qs = qs.filter(asset__slug=params["asset"])
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        return qs

    @extend_schema(parameters=[OpenApiParameter("asset", str), OpenApiParameter("status", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=NoteInputSerializer, responses={200: DatasetVersionOutputSerializer})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        version = services.dataset_version_submit(
            actor=request.user,
            version=self.get_object(),
            reason=valid_input(NoteInputSerializer, request.data)["note"],
        )
        return Response(self.get_serializer(version).data)

    @extend_schema(
        request=RequiredReasonInputSerializer, responses={200: DatasetVersionOutputSerializer}
    )
    @action(detail=True, methods=["post"])
    def deprecate(self, request, pk=None):
        version = services.dataset_version_deprecate(
            actor=request.user,
            version=self.get_object(),
            reason=valid_input(RequiredReasonInputSerializer, request.data)["reason"],
        )
        return Response(self.get_serializer(version).data)


class ApprovalRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Approval requests of visible teams (filter: state); the inbox; decide and cancel."""

    serializer_class = ApprovalRequestOutputSerializer

    def get_queryset(self):
        qs = selectors.approvals_visible_to(user=self.request.user)
        state = self.request.query_params.get("state")
        return qs.filter(state=state) if state else qs

    @extend_schema(parameters=[OpenApiParameter("state", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: ApprovalRequestOutputSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def inbox(self, request):
        """Pending requests the caller may decide, oldest first."""
        page = self.paginate_queryset(selectors.approvals_for_inbox(user=request.user))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=DecideInputSerializer, responses={200: ApprovalRequestOutputSerializer})
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        data = valid_input(DecideInputSerializer, request.data)
        approval = services.approval_decide(
            actor=request.user,
            request=self.get_object(),
            verdict=data["verdict"],
            comment=data["comment"],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=approval.pk)).data)

    @extend_schema(request=ReasonInputSerializer, responses={200: ApprovalRequestOutputSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        approval = services.approval_cancel(
            actor=request.user,
            request=self.get_object(),
            reason=valid_input(ReasonInputSerializer, request.data)["reason"],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=approval.pk)).data)


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """SLA incidents of visible assets (filters: team, status=open|acknowledged|resolved|
    unresolved); acknowledge."""

    serializer_class = IncidentOutputSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.incidents_visible_to(
            user=self.request.user,
            team_slug=params.get("team", ""),
            status=params.get("status", ""),
        )

    @extend_schema(parameters=[OpenApiParameter("team", str), OpenApiParameter("status", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: IncidentEventOutputSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def timeline(self, request, pk=None):
        """Every event of the incident, oldest first (a plain list: not paginated)."""
        incident = self.get_object()
        return Response(
            IncidentEventOutputSerializer(incident.events.select_related("actor"), many=True).data
        )

    @extend_schema(request=NoteInputSerializer, responses={200: IncidentOutputSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        incident = services.incident_acknowledge(
            actor=request.user,
            incident=self.get_object(),
            note=valid_input(NoteInputSerializer, request.data)["note"],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=incident.pk)).data)


class IsSiteAdmin(BasePermission):
    """Site admins are superusers (as in the UI); staff status alone is not enough."""

    message = "The audit trail is for site admins."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_active and request.user.is_superuser)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail (site admins): filters actor, verb (prefix), target, since, until."""

    serializer_class = AuditEventOutputSerializer
    permission_classes = [IsSiteAdmin]

    def get_queryset(self):
        p = self.request.query_params
        return selectors.audit_events(
            actor=p.get("actor", ""),
            verb=p.get("verb", ""),
            target=p.get("target", ""),
            since=p.get("since"),
            until=p.get("until"),
        )


class ApprovalPolicyViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stored approval policies of visible teams (filter: team); teams without one use the
    default (stewards and leads, quorum 1, no expiry). POST sets one (leads)."""

    serializer_class = ApprovalPolicyOutputSerializer

    def get_queryset(self):
        return selectors.policies_visible_to(
            user=self.request.user, team_slug=self.request.query_params.get("team")
        )

    @extend_schema(parameters=[OpenApiParameter("team", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=ApprovalPolicySetInputSerializer, responses={200: ApprovalPolicyOutputSerializer}
    )
    def create(self, request):
        data = valid_input(ApprovalPolicySetInputSerializer, request.data)
        team = team_selectors.team_get_for_user(user=request.user, slug=data.pop("team"))
        policy = services.approvalpolicy_set(actor=request.user, team=team, **data)
        return Response(self.get_serializer(policy).data)
