"""The approval steps of a demo load: demo members of each required team decide, as a steward
or lead would in the product, until every quorum is met. A human "no" is never overridden."""

from __future__ import annotations

from typing import TYPE_CHECKING

from governance import selectors as gov_selectors
from governance import services as gov
from governance.choices import ApprovalState, VersionStatus
from recsys.demo.errors import DemoLoadError, Say, call_service
from teams.demo import demo_users
from teams.models import Membership

if TYPE_CHECKING:
    from governance.models import ApprovalRequest, DatasetVersion


def approve_version(version: DatasetVersion, say: Say) -> DatasetVersion:
    if version.status in (VersionStatus.APPROVED, VersionStatus.SUPERSEDED):
        say(f"   {version}: already approved")
        return version
    if version.status == VersionStatus.DRAFT:  # its request expired or was cancelled
        call_service(
            gov.dataset_version_submit,
            actor=version.uploaded_by,
            version=version,
            reason=version.note,
        )
    request = gov_selectors.approval_pending_for(version)
    if request is None:
        raise DemoLoadError(f"{version} is {version.status} but has no pending approval request.")
    approve_as_demo(request, subject=str(version), prefer=("steward", "lead"), say=say)
    version = gov_selectors.dataset_versions(ids=[version.pk]).get()
    if version.status != VersionStatus.APPROVED:
        raise DemoLoadError(f"{version} is {version.status} after its approval.")
    return version


def approve_as_demo(request: ApprovalRequest, *, subject: str, prefer, say: Say) -> None:
    """Approve as demo members of every required team until each team's quorum is met."""
    requirements = list(request.requirements.select_related("team").order_by("id"))
    for requirement in requirements:
        while True:
            requirement.refresh_from_db(fields=["approvals"])
            request.refresh_from_db(fields=["state"])
            if (
                request.state != ApprovalState.PENDING
                or requirement.approvals >= requirement.quorum
            ):
                break
            roles = requirement.roles
            decided = request.decisions.values("approver_id")
            approver = demo_member(
                requirement.team,
                roles,
                prefer=prefer,
                exclude=list(gov_selectors.approval_excluded_persons(request)),
                exclude_query=decided,
            )
            if approver is None:
                raise DemoLoadError(
                    f"No demo user of {requirement.team.name} can approve {subject}: it needs "
                    f"{requirement.quorum} approval(s) from its {' or '.join(roles)}s."
                )
            call_service(
                gov.approval_decide,
                actor=approver,
                request=request,
                verdict="approve",
                comment="Demo data loaded by load_demo.",
            )
            say(f"   {subject}: approved by {approver.get_username()} ({requirement.team.name})")
    request.refresh_from_db(fields=["state"])
    if request.state != ApprovalState.APPROVED:
        raise DemoLoadError(f"The approval of {subject} is {request.state}.")


def demo_member(team, roles, *, prefer=(), exclude=(), exclude_query=None):
    """A demo user of `team` with one of `roles` (the `prefer` order first), or None."""
    demo_names = [username for username, _team, _role in demo_users()]
    members = Membership.objects.filter(
        team=team, role__in=list(roles), user__is_active=True, user__username__in=demo_names
    ).exclude(user_id__in=list(exclude))
    if exclude_query is not None:
        members = members.exclude(user_id__in=exclude_query)
    order = {role: i for i, role in enumerate(prefer)}
    ranked = sorted(
        members.select_related("user"),
        key=lambda m: (order.get(m.role, len(order)), m.user.username),
    )
    return ranked[0].user if ranked else None


def demo_user(username: str):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise DemoLoadError(
            f"The demo user {username} is missing: run `python manage.py seed_demo`."
        )
    return user
