"""Reads of the pipeline, restricted to what the user may see, in constant queries.

Names follow the selectors' one scheme (README, Architecture, "Reads").
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from core.errors import NotFoundError
from governance import selectors as gov_selectors
from governance.choices import VersionStatus
from recsys import permissions
from recsys.models import ConsoleQuery, IndexVersion, Pipeline, PipelineRun, SavedQuerySet
from teams import permissions as team_perms


def _visible_teams(user):
    return team_perms.teams_with_perm(user, team_perms.VIEW_TEAM)


def pipelines_visible_to(*, user) -> QuerySet[Pipeline]:
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
    pipeline = pipelines_visible_to(user=user).filter(slug=slug).first()
    if pipeline is None:
        raise NotFoundError("Pipeline not found.")
    return pipeline


def runs_visible_to(*, user, pipeline: Pipeline | None = None) -> QuerySet[PipelineRun]:
    qs = PipelineRun.objects.filter(pipeline__owning_team__in=_visible_teams(user))
    if pipeline is not None:
        qs = qs.filter(pipeline=pipeline)
    return qs.select_related("pipeline", "requested_by").defer("log").order_by("-created_at", "-id")


def run_get_for_user(*, user, pk: int) -> PipelineRun:
    run = (
        PipelineRun.objects.filter(pipeline__owning_team__in=_visible_teams(user))
        .select_related("pipeline__owning_team", "requested_by")
        .prefetch_related(Prefetch("inputs", queryset=gov_selectors.dataset_versions()))
        .filter(pk=pk)
        .first()
    )
    if run is None:
        raise NotFoundError("Pipeline run not found.")
    return run


def blockers_of(run: PipelineRun, request) -> list[str]:
    """Why the run cannot start yet, in words an operator can act on. `request` is the run's
    latest approval request (governance.selectors.approval_latest_for) or None."""
    reasons = []
    if request is not None and request.state == "pending":
        approvers = gov_selectors.approval_approvers_by_team(request)
        for requirement in request.requirements.all():
            if requirement.approvals < requirement.quorum:
                names = [u.get_username() for u in approvers.get(requirement.team_id, [])]
                reasons.append(
                    f"waiting for {requirement.team.name}: {requirement.approvals}/"
                    f"{requirement.quorum} approvals (approvers: "
                    f"{', '.join(names) or 'nobody holds an approver role!'})"
                )
    unusable = [str(v) for v in run.inputs.all() if v.status not in ("approved", "superseded")]
    if unusable:
        reasons.append(f"inputs no longer approved: {', '.join(unusable)}")
    return reasons


def incidents_open_on_inputs_of(run: PipelineRun) -> list[dict]:
    """Open incidents on the assets of the run's inputs, oldest first: for its approvers to
    weigh (an incident does not stop an approved run; the stewards decide whether the data is
    fit to use). One query."""
    open_incidents = gov_selectors.incidents_open_on_assets_of(run.inputs.all())
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


def inputs_approved_for(pipeline: Pipeline) -> dict:
    """Per input asset, its approved versions (newest first) for the trigger form."""
    versions = gov_selectors.dataset_versions(
        assets=pipeline.input_assets.all(),
        statuses=[VersionStatus.APPROVED, VersionStatus.SUPERSEDED],
    ).order_by("asset__name", "-number")
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


def console_queries_recent(*, user, pipeline: Pipeline, limit: int = 10) -> list[ConsoleQuery]:
    """The user's latest console queries, each distinct query text once (newest first)."""
    seen, recent = set(), []
    for entry in ConsoleQuery.objects.filter(user=user, pipeline=pipeline)[:50]:
        if entry.query not in seen:
            seen.add(entry.query)
            recent.append(entry)
    return recent[:limit]


def query_sets_of(*, user, pipeline: Pipeline) -> QuerySet[SavedQuerySet]:
    """The user's own saved query sets of `pipeline`."""
    return SavedQuerySet.objects.filter(owner=user, pipeline=pipeline)


def query_set_get_for_user(*, user, pk: int) -> SavedQuerySet:
    """One of the user's own saved query sets (404 for anyone else's)."""
    saved = (
        SavedQuerySet.objects.select_related("pipeline__owning_team")
        .filter(pk=pk, owner=user)
        .first()
    )
    if saved is None:
        raise NotFoundError("Query set not found.")
    return saved


def indexes_visible_to(*, user) -> QuerySet[IndexVersion]:
    """Index versions of the pipelines of teams `user` can see (the API's list)."""
    return (
        IndexVersion.objects.filter(pipeline__owning_team__in=_visible_teams(user))
        .select_related("pipeline__owning_team", "model_version")
        .order_by("-created_at", "-id")
    )
