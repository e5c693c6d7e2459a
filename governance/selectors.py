"""Reads of governance, restricted to what the user may see, in constant queries.

Names follow the selectors' one scheme (README, Architecture, "Reads").
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Max, Prefetch, Q, QuerySet, Value
from django.utils import timezone

from core.errors import NotFoundError
from core.models import AuditEvent
from governance.choices import ApprovalState, IncidentStatus, ProfileStatus, VersionStatus
from governance.deciders import (
    approvers_by_team,
    can_decide_annotation,
    decidable_by,
    excluded_persons,
)
from governance.models import (
    ApprovalRequest,
    ApprovalRequirement,
    DataAsset,
    DatasetVersion,
    Decision,
    Incident,
)
from governance.services.approvals import handler_for
from governance.sla import version_sla_results
from teams import permissions as team_perms
from teams.choices import RaciKind
from teams.models import Responsibility


def _visible_teams(user):
    return team_perms.teams_with_perm(user, team_perms.VIEW_TEAM)


def assets_visible_to(*, user, team_slug: str = "") -> QuerySet[DataAsset]:
    """Assets of visible teams with their accountable person, open incidents and newest
    approved version prefetched."""
    qs = (
        DataAsset.objects.filter(owning_team__in=_visible_teams(user))
        .select_related("owning_team", "sla")
        .annotate(
            open_incidents=Count(
                "incidents", filter=~Q(incidents__status=IncidentStatus.RESOLVED), distinct=True
            ),
        )
        .prefetch_related(
            Prefetch(
                "responsibilities",
                queryset=Responsibility.objects.filter(kind=RaciKind.ACCOUNTABLE).select_related(
                    "user"
                ),
                to_attr="accountable_rows",
            ),
            Prefetch(
                "versions",
                queryset=DatasetVersion.objects.filter(status=VersionStatus.APPROVED).order_by(
                    "-number"
                ),
                to_attr="approved_versions",
            ),
        )
    )
    if team_slug:
        qs = qs.filter(owning_team__slug=team_slug)
    return qs.order_by("name")


def asset_get_for_user(*, user, slug: str) -> DataAsset:
    asset = assets_visible_to(user=user).filter(slug=slug).first()
    if asset is None:
        raise NotFoundError("Data asset not found.")
    return asset


def versions_visible_to(*, user) -> QuerySet[DatasetVersion]:
    return (
        DatasetVersion.objects.filter(asset__owning_team__in=_visible_teams(user))
        .select_related("asset", "asset__owning_team", "uploaded_by")
        .order_by("-created_at", "-id")
    )


def version_get_for_user(*, user, pk: int) -> DatasetVersion:
    version = versions_visible_to(user=user).select_related("asset__sla").filter(pk=pk).first()
    if version is None:
        raise NotFoundError("Dataset version not found.")
    return version


def data_assets(*, slugs=None) -> QuerySet[DataAsset]:
    """Data assets (all, or those of `slugs`) with their owning team loaded: how the apps
    above governance read assets they know by name (the demo load) without asking who may
    see them."""
    qs = DataAsset.objects.select_related("owning_team")
    if slugs is not None:
        qs = qs.filter(slug__in=slugs)
    return qs


def dataset_versions(
    *, ids=None, assets=None, statuses=None, sha256: str | None = None
) -> QuerySet[DatasetVersion]:
    """Dataset versions (all, or those of `ids`, of `assets`, in `statuses`, whose file has
    the checksum `sha256`; each may be a list or a queryset) with their asset, its owning team
    and the uploader loaded: how the apps above governance read versions they already hold (a
    run's inputs) without asking who may see them."""
    qs = DatasetVersion.objects.select_related("asset__owning_team", "uploaded_by")
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    if assets is not None:
        qs = qs.filter(asset__in=assets)
    if statuses is not None:
        qs = qs.filter(status__in=statuses)
    if sha256 is not None:
        qs = qs.filter(sha256=sha256)
    return qs


def incidents_open_on_assets_of(versions) -> QuerySet[Incident]:
    """Open incidents on the assets of `versions` (a list or a queryset), oldest first, with
    the asset loaded."""
    return (
        Incident.objects.filter(asset__versions__in=versions)
        .exclude(status=IncidentStatus.RESOLVED)
        .select_related("asset")
        .distinct()
        .order_by("opened_at", "pk")
    )


def approvals_for(subject) -> list[ApprovalRequest]:
    return list(
        ApprovalRequest.objects.filter(
            subject_type=ContentType.objects.get_for_model(subject), subject_id=subject.pk
        )
        .select_related("requester")
        .prefetch_related(_requirements(), _decisions())
        .order_by("-created_at")
    )


def approvals_latest_for(
    subjects, *, requirements: bool = True, decisions: bool = True
) -> dict[int, ApprovalRequest]:
    """The latest approval request of each subject (instances of one model), by subject pk,
    with its requirements (team, roles) and decisions (approver, team) loaded unless told
    not to: in a fixed number of queries whatever the number of subjects. Subjects never
    asked for are absent."""
    subjects = list(subjects)
    if not subjects:
        return {}
    latest = (
        ApprovalRequest.objects.filter(
            subject_type=ContentType.objects.get_for_model(subjects[0]),
            subject_id__in=[s.pk for s in subjects],
        )
        .order_by()
        .values("subject_id")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    qs = ApprovalRequest.objects.filter(pk__in=latest).select_related("requester", "subject_type")
    if requirements:
        qs = qs.prefetch_related(_requirements())
    if decisions:
        qs = qs.prefetch_related(_decisions())
    return {r.subject_id: r for r in qs}


def approval_latest_for(
    subject, *, requirements: bool = True, decisions: bool = True
) -> ApprovalRequest | None:
    """The latest approval request of `subject` (None when none was opened), loaded as
    approvals_latest_for says."""
    return approvals_latest_for([subject], requirements=requirements, decisions=decisions).get(
        subject.pk
    )


def approval_pending_for(subject) -> ApprovalRequest | None:
    """The pending approval request of `subject` (the newest, should there be several), or
    None when none is pending."""
    return (
        ApprovalRequest.objects.filter(
            subject_type=ContentType.objects.get_for_model(subject),
            subject_id=subject.pk,
            state=ApprovalState.PENDING,
        )
        .order_by("-id")
        .first()
    )


def approval_approvers_by_team(request: ApprovalRequest) -> dict[int, list]:
    """Team id -> the users who may decide `request` now for that team, by username
    (governance.deciders.approvers_by_team: the one rule of who may decide)."""
    return approvers_by_team(request)


def approval_excluded_persons(request: ApprovalRequest) -> dict[int, str]:
    """User id -> why they may not decide `request` (four eyes: they produced its subject or
    asked for its approval; governance.deciders.excluded_persons)."""
    return excluded_persons(request)


def approvals_for_inbox(*, user) -> QuerySet[ApprovalRequest]:
    """Pending requests the user may decide now (governance.deciders: the rule the decision
    itself checks), oldest first, with the subject and its context prefetched."""
    return (
        _with_context(ApprovalRequest.objects.filter(decidable_by(user)))
        .annotate(can_decide=Value(True))
        .order_by("created_at", "id")
    )


def _with_context(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    return qs.select_related("requester", "subject_type").prefetch_related(
        _requirements(), _decisions()
    )


def _requirements() -> Prefetch:
    """A request's required teams with their approver roles (2 queries)."""
    return Prefetch(
        "requirements",
        queryset=ApprovalRequirement.objects.select_related("team").prefetch_related(
            "approver_roles"
        ),
    )


def _decisions() -> Prefetch:
    return Prefetch("decisions", queryset=Decision.objects.select_related("approver", "team"))


def approvals_with_versions(requests: list[ApprovalRequest]) -> list[ApprovalRequest]:
    """Load the dataset-version subjects (with asset and SLA) of a page of requests at once."""
    version_ids = [r.subject_id for r in requests if r.kind == "dataset_version"]
    versions = DatasetVersion.objects.select_related(
        "asset", "asset__owning_team", "asset__sla", "uploaded_by"
    ).in_bulk(version_ids)
    for version in versions.values():
        version_with_sla_now(version)
    others = _other_subjects([r for r in requests if r.kind != "dataset_version"])
    for request in requests:
        request.version = (
            versions.get(request.subject_id) if request.kind == "dataset_version" else None
        )
        request.other = others.get((request.subject_type_id, request.subject_id))
        subject = request.version or request.other
        request.link = handler_for(request.kind).link(subject) if subject is not None else ""
    return requests


def _other_subjects(requests: list[ApprovalRequest]) -> dict:
    """Subjects of other kinds (pipeline runs, indexes), one query per subject type."""
    by_type: dict = {}
    for request in requests:
        by_type.setdefault(request.subject_type, set()).add(request.subject_id)
    found = {}
    for subject_type, ids in by_type.items():
        model = subject_type.model_class()
        for pk, obj in model.objects.select_related().in_bulk(ids).items():
            found[(subject_type.pk, pk)] = obj
    return found


def version_with_sla_now(version: DatasetVersion) -> DatasetVersion:
    """Attach the version's SLA results against the asset's SLA as it is set now (the stored
    `sla_results` are those of profiling time). Needs asset and asset.sla loaded."""
    version.sla_now = (
        version_sla_results(version.asset, version.profile) if version.profile else None
    )
    return version


def approvals_visible_to(*, user) -> QuerySet[ApprovalRequest]:
    """Requests that need a team the user can see, each with `can_decide` (may the user decide
    it now: governance.deciders)."""
    ids = ApprovalRequest.objects.filter(requirements__team__in=_visible_teams(user)).values("pk")
    return (
        _with_context(ApprovalRequest.objects.filter(pk__in=ids))
        .annotate(can_decide=can_decide_annotation(user))
        .order_by("-created_at", "-id")
    )


def approval_get_for_user(*, user, pk: int) -> ApprovalRequest:
    request = approvals_visible_to(user=user).filter(pk=pk).first()
    if request is None:
        raise NotFoundError("Approval request not found.")
    return request


def decisions_made_by(*, user) -> QuerySet[Decision]:
    return (
        Decision.objects.filter(approver=user)
        .select_related("request", "request__requester", "team")
        .order_by("-created_at", "-id")
    )


def incidents_visible_to(*, user, team_slug: str = "", status: str = "") -> QuerySet[Incident]:
    qs = Incident.objects.filter(asset__owning_team__in=_visible_teams(user)).select_related(
        "asset", "asset__owning_team", "assigned_to", "version"
    )
    if team_slug:
        qs = qs.filter(asset__owning_team__slug=team_slug)
    if status == "unresolved":
        qs = qs.exclude(status=IncidentStatus.RESOLVED)
    elif status:
        qs = qs.filter(status=status)
    return qs.order_by("-opened_at", "-id")


def incident_get_for_user(*, user, pk: int) -> Incident:
    incident = (
        incidents_visible_to(user=user).prefetch_related("events__actor").filter(pk=pk).first()
    )
    if incident is None:
        raise NotFoundError("Incident not found.")
    return incident


def sla_dashboard_visible_to(*, user, team_slug: str = "") -> dict:
    """Every visible asset's SLA status, open incidents, breach history and version metrics
    for the charts, in a constant number of queries."""
    assets = list(assets_visible_to(user=user, team_slug=team_slug))
    history = list(incidents_visible_to(user=user, team_slug=team_slug)[:50])
    versions = (
        DatasetVersion.objects.filter(asset__in=assets, profile_status=ProfileStatus.SUCCEEDED)
        .only("asset_id", "number", "created_at", "row_count", "profile", "status")
        .order_by("number")
    )
    series: dict[int, list[dict]] = {}
    for version in versions:
        series.setdefault(version.asset_id, []).append(_version_point(version))
    now = timezone.now()
    rows = []
    for asset in assets:
        newest = asset.approved_versions[0] if asset.approved_versions else None
        age_hours = (now - newest.created_at).total_seconds() / 3600 if newest else None
        rows.append(
            {
                "asset": asset,
                "newest": newest,
                "age_hours": age_hours,
                "accountable": asset.accountable_rows[0].user if asset.accountable_rows else None,
                "series": series.get(asset.pk, []),
            }
        )
    return {"rows": rows, "history": history}


def _version_point(version: DatasetVersion) -> dict:
    profile = version.profile or {}
    columns = profile.get("columns", [])
    key = profile.get("key") or {}
    return {
        "number": version.number,
        "rows": version.row_count or 0,
        "max_null_rate": max((c.get("null_rate", 0) for c in columns), default=0.0),
        "duplicate_rate": key.get("duplicate_rate", 0.0),
        "status": version.status,
    }


def versions_waiting_for_profile(*, older_than_minutes: int = 2) -> list[int]:
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    return list(
        DatasetVersion.objects.filter(
            profile_status=ProfileStatus.PENDING, created_at__lt=cutoff
        ).values_list("pk", flat=True)
    )


def versions_stuck_profiling(*, older_than_minutes: int) -> list[int]:
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    return list(
        DatasetVersion.objects.filter(
            profile_status=ProfileStatus.RUNNING, profile_started_at__lt=cutoff
        ).values_list("pk", flat=True)
    )


def audit_events(
    *, actor: str = "", verb: str = "", target: str = "", since=None, until=None
) -> QuerySet[AuditEvent]:
    """The audit trail (site admins), filtered by actor, verb prefix, target text and time."""
    qs = AuditEvent.objects.select_related("target_type").order_by("-id")
    if actor:
        qs = qs.filter(actor_repr__iexact=actor)
    if verb:
        qs = qs.filter(verb__startswith=verb)
    if target:
        qs = qs.filter(Q(target_repr__icontains=target) | Q(target_id=target))
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs


def approval_pending_exists(subject) -> bool:
    return ApprovalRequest.objects.filter(
        subject_type=ContentType.objects.get_for_model(subject),
        subject_id=subject.pk,
        state=ApprovalState.PENDING,
    ).exists()


def policies_for_team(*, user, team_slug: str) -> tuple:
    """(team, {kind: policy or None}) for a visible team; defaults apply where None."""
    from governance.choices import ApprovalKind
    from governance.models import ApprovalPolicy
    from teams.selectors import team_get_for_user

    team = team_get_for_user(user=user, slug=team_slug)
    stored = {
        p.kind: p
        for p in ApprovalPolicy.objects.filter(team=team).prefetch_related("approver_roles")
    }
    return team, {kind: stored.get(kind) for kind in ApprovalKind.values}


def policies_visible_to(*, user, team_slug: str | None = None) -> QuerySet:
    """Stored approval policies of the teams `user` can see (optionally of one team)."""
    from governance.models import ApprovalPolicy

    qs = ApprovalPolicy.objects.filter(team__in=_visible_teams(user))
    qs = qs.select_related("team").prefetch_related("approver_roles")
    if team_slug:
        qs = qs.filter(team__slug=team_slug)
    return qs.order_by("team__name", "kind")


def dataset_read_limits(*, timed: bool = True):
    """The bounds on reading a stored dataset file (datafiles.ReadLimits), from the
    STEWARD_PROFILE_* settings: profiling uses them with its time limit (`timed`), the
    pipeline without (its tasks have their own time limits)."""
    from datafiles import ReadLimits  # pandas: imported only where it is needed

    defaults = ReadLimits()
    seconds = getattr(settings, "STEWARD_PROFILE_MAX_SECONDS", 1800.0) if timed else None
    return ReadLimits(
        max_line_chars=int(
            getattr(settings, "STEWARD_PROFILE_MAX_LINE_BYTES", defaults.max_line_chars)
        ),
        max_unpacked_bytes=int(
            getattr(settings, "STEWARD_PROFILE_MAX_DECOMPRESSED_BYTES", defaults.max_unpacked_bytes)
        ),
        max_ratio=float(getattr(settings, "STEWARD_PROFILE_MAX_RATIO", defaults.max_ratio)),
        max_zip_members=int(
            getattr(settings, "STEWARD_PROFILE_MAX_ZIP_MEMBERS", defaults.max_zip_members)
        ),
        max_seconds=float(seconds) if seconds else None,
    )
