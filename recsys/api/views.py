"""Pipeline API for ops: read viewsets over selectors; every write calls one service."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance import selectors as gov_selectors
from recsys import selectors, services
from recsys.api.serializers import (
    ActivationReasonInputSerializer,
    ApprovalSummaryOutputSerializer,
    IndexVersionOutputSerializer,
    PipelineOutputSerializer,
    PipelineRunDetailSerializer,
    PipelineRunOutputSerializer,
    RunApprovalOutputSerializer,
    RunRequestInputSerializer,
    ScheduleInputSerializer,
    approval_summary,
)
from teams.api.inputs import valid_input


class PipelineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Pipelines of visible teams; POST {slug}/rollback/ serves the previous index again;
    POST {slug}/schedule/ sets or clears the cron schedule of its retrains."""

    serializer_class = PipelineOutputSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.pipelines_visible_to(user=self.request.user)

    @extend_schema(request=None, responses={200: PipelineOutputSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, slug=None):
        pipeline = self.get_object()
        services.index_rollback(actor=request.user, pipeline=pipeline)
        return Response(self.get_serializer(self.get_queryset().get(pk=pipeline.pk)).data)

    @extend_schema(request=ScheduleInputSerializer, responses={200: PipelineOutputSerializer})
    @action(detail=True, methods=["post"])
    def schedule(self, request, slug=None):
        pipeline = self.get_object()
        data = valid_input(ScheduleInputSerializer, request.data)
        services.pipeline_set_schedule(
            actor=request.user, pipeline=pipeline, schedule=data["schedule"]
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=pipeline.pk)).data)


class PipelineRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Runs of visible pipelines (filters: pipeline, state); request, cancel, retry."""

    def get_serializer_class(self):
        return (
            PipelineRunDetailSerializer if self.action != "list" else (PipelineRunOutputSerializer)
        )

    def get_queryset(self):
        qs = selectors.runs_visible_to(user=self.request.user)
        if self.action != "list":
            qs = qs.defer(None).prefetch_related("inputs")
        params = self.request.query_params
        if params.get("pipeline"):
            qs = qs.filter(pipeline__slug=params["pipeline"])
        if params.get("state"):
            qs = qs.filter(state=params["state"])
        return qs

    @extend_schema(parameters=[OpenApiParameter("pipeline", str), OpenApiParameter("state", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=RunRequestInputSerializer, responses={201: PipelineRunDetailSerializer})
    def create(self, request):
        data = valid_input(RunRequestInputSerializer, request.data)
        pipeline = selectors.pipeline_get_for_user(user=request.user, slug=data["pipeline"])
        run = services.run_request(
            actor=request.user,
            pipeline=pipeline,
            kind=data["kind"],
            inputs=data["inputs"],  # ids: the service reads them through what the user sees
            parameters=data["parameters"],
            reason=data["reason"],
        )
        return Response(PipelineRunDetailSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: PipelineRunDetailSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.run_cancel(actor=request.user, run=self.get_object())
        return Response(PipelineRunDetailSerializer(run).data)

    @extend_schema(request=None, responses={200: PipelineRunDetailSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        run = services.run_retry(actor=request.user, run=self.get_object())
        return Response(PipelineRunDetailSerializer(run).data)

    @extend_schema(responses={200: RunApprovalOutputSerializer})
    @action(detail=True, methods=["get"])
    def approval(self, request, pk=None):
        """Who still has to approve this run, why it cannot run yet, and the open incidents on
        its inputs (for the approvers to weigh; they do not stop an approved run)."""
        run = self.get_object()
        approval = gov_selectors.approval_latest_for(run)
        return Response(
            {
                **approval_summary(approval),
                "blockers": selectors.blockers_of(run, approval),
                "input_incidents": selectors.incidents_open_on_inputs_of(run),
            }
        )


class IndexVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Index versions of visible pipelines; request activation, activate."""

    serializer_class = IndexVersionOutputSerializer

    def get_queryset(self):
        return selectors.indexes_visible_to(user=self.request.user)

    @extend_schema(
        request=ActivationReasonInputSerializer, responses={200: ApprovalSummaryOutputSerializer}
    )
    @action(detail=True, methods=["post"], url_path="request-activation")
    def request_activation(self, request, pk=None):
        approval = services.index_request_activation(
            actor=request.user,
            index=self.get_object(),
            reason=valid_input(ActivationReasonInputSerializer, request.data)["reason"],
        )
        return Response(approval_summary(approval))

    @extend_schema(request=None, responses={200: IndexVersionOutputSerializer})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        index = self.get_object()
        services.index_activate(actor=request.user, index=index)
        return Response(self.get_serializer(self.get_queryset().get(pk=index.pk)).data)
