"""SLA evaluation and incidents: one incident per asset and breached condition, opened on a
breach, resolved automatically (with a note) when the condition clears. Idempotent, so the
15-minute beat run and the evaluation on every new version never duplicate incidents."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import audit_record
from governance.actions import incident_actions
from governance.choices import ApprovalKind, ApprovalState, IncidentStatus, SlaRule, VersionStatus
from governance.models import ApprovalRequest, DataAsset, DatasetVersion, Incident, IncidentEvent
from governance.sla import freshness_check, version_sla_results
from governance.transitions import assert_transition
from teams.choices import Role
from teams.selectors import accountable_for
from teams.services import notification_send

User = get_user_model()


def current_breaches(asset: DataAsset, now) -> dict[str, dict]:
    """dedup key -> breach ({rule, summary, detail, version?, request?}) for the asset now."""
    sla = getattr(asset, "sla", None)
    breaches: dict[str, dict] = {}
    current = asset.versions.filter(status=VersionStatus.APPROVED).order_by("-number").first()
    fresh = freshness_check(sla, current.created_at if current else None, now)
    if fresh and not fresh["ok"]:
        breaches[SlaRule.FRESHNESS] = {
            "rule": SlaRule.FRESHNESS,
            "summary": fresh["detail"],
            "detail": fresh,
            "version": current,
        }
    if current is not None and current.profile:
        for check in version_sla_results(asset, current.profile)["checks"]:
            if not check["ok"]:
                key = f"{check['rule']}:{check.get('column', '')}".rstrip(":")
                breaches[key] = {
                    "rule": check["rule"],
                    "summary": f"v{current.number}: {check['detail']}",
                    "detail": check,
                    "version": current,
                }
    for request in _overdue_requests(asset, now):
        breaches[f"approval:{request.pk}"] = {
            "rule": SlaRule.APPROVAL_LATENCY,
            "request": request,
            "summary": f"approval #{request.pk} undecided past its due time "
            f"{request.due_at:%Y-%m-%d %H:%M}",
            "detail": {"due_at": request.due_at.isoformat()},
        }
    return breaches


def _overdue_requests(asset: DataAsset, now):
    version_ids = asset.versions.values("pk")
    return ApprovalRequest.objects.filter(
        kind=ApprovalKind.DATASET_VERSION,
        state=ApprovalState.PENDING,
        due_at__lte=now,
        subject_type=ContentType.objects.get_for_model(DatasetVersion),
        subject_id__in=version_ids,
    )


def sla_evaluate_asset(*, asset: DataAsset, now=None) -> dict[str, int]:
    """Open incidents for new breaches and resolve those whose condition cleared."""
    now = now or timezone.now()
    asset = DataAsset.objects.select_related("sla", "owning_team").get(pk=asset.pk)
    breaches = current_breaches(asset, now)
    opened = resolved = 0
    with transaction.atomic():
        unresolved = {
            i.dedup_key: i
            for i in Incident.objects.select_for_update()
            .filter(asset=asset)
            .exclude(status=IncidentStatus.RESOLVED)
        }
        for key, breach in breaches.items():
            if key not in unresolved and _incident_open(asset=asset, key=key, breach=breach):
                opened += 1
        for key, incident in unresolved.items():
            if key not in breaches:
                _incident_resolve(incident=incident, note="condition cleared (automatic)")
                resolved += 1
    return {"opened": opened, "resolved": resolved}


def _incident_open(*, asset: DataAsset, key: str, breach: dict) -> bool:
    accountable = accountable_for(asset)
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                asset=asset,
                rule=breach["rule"],
                dedup_key=key,
                summary=breach["summary"][:300],
                detail=breach.get("detail") or {},
                assigned_to=accountable,
                version=breach.get("version"),
                approval_request=breach.get("request"),
            )
    except IntegrityError:
        return False  # a concurrent evaluation opened it first
    IncidentEvent.objects.create(incident=incident, kind="opened", message=incident.summary)
    audit_record(
        actor=None,
        verb="incident.opened",
        target=incident,
        after={
            "rule": incident.rule,
            "summary": incident.summary,
            "assigned_to": accountable.username if accountable else None,
        },
    )
    recipients = {
        u.pk: u
        for u in User.objects.filter(
            memberships__team=asset.owning_team, memberships__role=Role.STEWARD, is_active=True
        )
    }
    if accountable is not None:
        recipients[accountable.pk] = accountable
    for user in recipients.values():
        notification_send(
            recipient=user,
            subject=f"SLA breach on {asset.name}",
            body=incident.summary,
            link=f"/governance/incidents/{incident.pk}/",
        )
    IncidentEvent.objects.create(
        incident=incident,
        kind="notified",
        message="notified "
        + (
            ", ".join(sorted(u.username for u in recipients.values()))
            or "nobody (no accountable person or stewards)"
        ),
    )
    return True


def _incident_resolve(*, incident: Incident, note: str, actor=None) -> None:
    assert_transition("incident", incident.status, IncidentStatus.RESOLVED, what="the incident")
    before = {"status": incident.status}
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = timezone.now()
    incident.resolution_note = note[:300]
    incident.save(update_fields=["status", "resolved_at", "resolution_note"])
    IncidentEvent.objects.create(incident=incident, actor=actor, kind="resolved", message=note)
    audit_record(
        actor=actor,
        verb="incident.resolved",
        target=incident,
        before=before,
        after={"status": incident.status, "note": note},
    )


@transaction.atomic
def incident_acknowledge(*, actor, incident: Incident, note: str = "") -> Incident:
    """The accountable person, a steward or a lead of the owning team takes the incident on."""
    incident = (
        Incident.objects.select_for_update(of=("self",))
        .select_related("asset__owning_team")
        .get(pk=incident.pk)
    )
    incident_actions(actor, incident)["acknowledge"].require()
    before = {"status": incident.status}
    incident.status = IncidentStatus.ACKNOWLEDGED
    incident.acknowledged_at = timezone.now()
    incident.acknowledged_by = actor
    incident.save(update_fields=["status", "acknowledged_at", "acknowledged_by"])
    IncidentEvent.objects.create(
        incident=incident,
        actor=actor,
        kind="acknowledged",
        message=note.strip()[:500] or "acknowledged",
    )
    audit_record(
        actor=actor,
        verb="incident.acknowledged",
        target=incident,
        before=before,
        after={"status": incident.status, "note": note.strip()},
    )
    return incident


def slas_evaluate_all(*, now=None) -> dict[str, int]:
    """The beat job: expire and escalate approvals, then evaluate every asset's SLA."""
    from governance.services.approvals import approvals_escalate_overdue, approvals_expire_due

    now = now or timezone.now()
    totals = {
        "expired": approvals_expire_due(now=now),
        "escalated": approvals_escalate_overdue(now=now),
        "opened": 0,
        "resolved": 0,
    }
    for asset in DataAsset.objects.all().only("pk"):
        result = sla_evaluate_asset(asset=asset, now=now)
        totals["opened"] += result["opened"]
        totals["resolved"] += result["resolved"]
    return totals
