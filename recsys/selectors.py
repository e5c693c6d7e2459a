"""Reads of the pipeline, restricted to what the user may see, in constant queries."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from core.errors import NotFoundError
from governance.choices import VersionStatus
from governance.models import ApprovalRequest, DatasetVersion, Decision
from recsys import permissions
from recsys.models import IndexVersion, Pipeline, PipelineRun
from teams import permissions as team_perms


def _visible_teams(user):
    return team_perms.teams_with_perm(user, team_perms.VIEW_TEAM)


def pipelines_for_user(*, user) -> QuerySet[Pipeline]:
    return (
        Pipeline.objects.filter(owning_team__in=_visible_teams(user))
        .select_related("owning_team", "active__index", "active__previous")
        .prefetch_related("input_assets")
    )


def pipeline_get_queryable(*, user, slug: str) -> Pipeline | None:
    """The pipeline ``slug`` when the user may see and query it, else None (the caller's full
    lookup then decides and says why)."""
    pipeline = (
        Pipeline.objects.select_related("owning_team", "active__index", "active__previous")
        .filter(slug=slug)
        .first()
    )
    if pipeline is None or not permissions.can_view_and_run(user, pipeline):
        return None
    return pipeline


def pipeline_get_for_user(*, user, slug: str) -> Pipeline:
    pipeline = pipelines_for_user(user=user).filter(slug=slug).first()
    if pipeline is None:
        raise NotFoundError("Pipeline not found.")
    return pipeline


def runs_for_user(*, user, pipeline: Pipeline | None = None) -> QuerySet[PipelineRun]:
    qs = PipelineRun.objects.filter(pipeline__owning_team__in=_visible_teams(user))
    if pipeline is not None:
        qs = qs.filter(pipeline=pipeline)
    return qs.select_related("pipeline", "requested_by").defer("log").order_by("-created_at", "-id")


def run_get_for_user(*, user, pk: int) -> PipelineRun:
    run = (
        PipelineRun.objects.filter(pipeline__owning_team__in=_visible_teams(user))
        .select_related("pipeline__owning_team", "requested_by")
        .prefetch_related(
            Prefetch("inputs", queryset=DatasetVersion.objects.select_related("asset__owning_team"))
        )
        .filter(pk=pk)
        .first()
    )
    if run is None:
        raise NotFoundError("Pipeline run not found.")
    return run


def approval_of(subject, kind: str) -> ApprovalRequest | None:
    return (
        ApprovalRequest.objects.filter(
            kind=kind,
            subject_type=ContentType.objects.get_for_model(subject),
            subject_id=subject.pk,
        )
        .prefetch_related(
            "requirements__team",
            Prefetch("decisions", queryset=Decision.objects.select_related("approver", "team")),
        )
        .order_by("-id")
        .first()
    )


def run_blockers(run: PipelineRun, request: ApprovalRequest | None) -> list[str]:
    """Why the run cannot start yet, in words an operator can act on."""
    from governance.services.approvals import eligible_approvers

    reasons = []
    if request is not None and request.state == "pending":
        for requirement in request.requirements.all():
            if requirement.approvals < requirement.quorum:
                names = sorted(
                    u.get_username()
                    for u in eligible_approvers(request)
                    if u.memberships.filter(team=requirement.team).exists()
                )
                reasons.append(
                    f"waiting for {requirement.team.name}: {requirement.approvals}/"
                    f"{requirement.quorum} approvals (approvers: "
                    f"{', '.join(names) or 'nobody holds an approver role!'})"
                )
    unusable = [str(v) for v in run.inputs.all() if v.status not in ("approved", "superseded")]
    if unusable:
        reasons.append(f"inputs no longer approved: {', '.join(unusable)}")
    return reasons


def run_input_incidents(run: PipelineRun) -> list[dict]:
    """Open incidents on the assets of the run's inputs, oldest first: for its approvers to
    weigh (an incident does not stop an approved run; the stewards decide whether the data is
    fit to use). One query."""
    from governance.models import Incident

    open_incidents = (
        Incident.objects.filter(asset__versions__pipeline_runs=run)
        .exclude(status="resolved")
        .select_related("asset")
        .distinct()
        .order_by("opened_at", "pk")
    )
    return [
        {
            "id": incident.pk,
            "asset": incident.asset.name,
            "summary": incident.summary,
            "status": incident.status,
            "url": reverse("governance:incident_detail", args=[incident.pk]),
        }
        for incident in open_incidents
    ]


def approved_inputs(pipeline: Pipeline) -> dict:
    """Per input asset, its approved versions (newest first) for the trigger form."""
    versions = (
        DatasetVersion.objects.filter(
            asset__in=pipeline.input_assets.all(),
            status__in=[VersionStatus.APPROVED, VersionStatus.SUPERSEDED],
        )
        .select_related("asset")
        .order_by("asset__name", "-number")
    )
    grouped: dict = {asset: [] for asset in pipeline.input_assets.all().order_by("name")}
    for version in versions:
        grouped.setdefault(version.asset, []).append(version)
    return grouped


def indexes_of(pipeline: Pipeline) -> QuerySet[IndexVersion]:
    return pipeline.indexes.select_related("model_version", "catalog_version__asset", "run")


def index_get_for_user(*, user, pk: int) -> IndexVersion:
    index = (
        IndexVersion.objects.filter(pipeline__owning_team__in=_visible_teams(user))
        .select_related("pipeline__owning_team", "model_version", "catalog_version__asset", "run")
        .filter(pk=pk)
        .first()
    )
    if index is None:
        raise NotFoundError("Index version not found.")
    return index
