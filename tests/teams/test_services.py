"""The rules of the organization services: every refusal has its exact error type, a message that
says what is wrong, and leaves the database exactly as it was; every success writes exactly the
expected audit events and keeps groups and object permissions in line with the org."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from core.models import AuditEvent
from governance.services import dataasset_create
from teams import permissions, selectors, services
from teams.constants import MAX_TEAM_DEPTH
from teams.models import Membership, Notification, Responsibility, Team, TeamGroupObjectPermission
from teams.tasks import notification_email_send_task
from tests import helpers
from tests.factories import UserFactory
from tests.helpers import audit_since, last_audit_id

pytestmark = pytest.mark.django_db

User = get_user_model()


# --- helpers -----------------------------------------------------------------------------------


def snapshot() -> dict:
    """Everything a service may change, in a comparable form (and the audit trail)."""
    return helpers.snapshot(
        {
            "teams": Team.objects.values_list(
                "id", "name", "slug", "description", "parent_id", "archived"
            ),
            "memberships": Membership.objects.values_list("id", "user_id", "team_id", "role"),
            "responsibilities": Responsibility.objects.values_list(
                "id", "team_id", "user_id", "kind", "subject_type_id", "subject_id", "area", "note"
            ),
            "notifications": Notification.objects.values_list("id", "recipient"),
            "groups": Group.objects.values_list("name", flat=True),
            "user_groups": User.groups.through.objects.values_list("user_id", "group_id"),
            "grants": TeamGroupObjectPermission.objects.values_list(
                "group_id", "permission_id", "content_object_id"
            ),
            "users": User.objects.values_list("id", "is_active"),
        }
    )


def refused(error_type, *words):
    """The block raises exactly `error_type`, its message names all `words`, nothing changed."""
    return helpers.refused(error_type, *words, unchanged=snapshot)


def verbs_since(event_id: int) -> list[str]:
    return [verb for verb, _actor in audit_since(event_id)]


def fresh(user):
    """Refetch the user: permission caches live on the instance."""
    return User.objects.get(pk=user.pk)


def can_manage(user, team) -> bool:
    return permissions.can_manage_team(fresh(user), Team.objects.get(pk=team.pk))


def can_view(user, team) -> bool:
    return permissions.can_view_team(fresh(user), Team.objects.get(pk=team.pk))


def group_names(user) -> set[str]:
    return set(fresh(user).groups.values_list("name", flat=True))


def membership(user, team) -> Membership:
    return Membership.objects.get(user=user, team=team)


def grandchild(org) -> Team:
    return services.team_create(actor=org.admin, name="Alpha Sub Sub", parent=org.sub)


# --- team tree ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["itself", "child", "grandchild"])
def test_team_cannot_move_into_its_own_subtree(org, target):
    deepest = grandchild(org)
    parent = {"itself": org.alpha, "child": org.sub, "grandchild": deepest}[target]
    with refused(ValidationError, "cycle", parent.name, "Alpha") as info:
        services.team_update(actor=org.admin, team=org.alpha, parent=parent)
    assert info.value.field == "parent"


def test_team_cannot_move_to_another_organization(org):
    other = services.team_create(actor=org.admin, name="Other Corp", slug="other", parent=None)
    with refused(ValidationError, "within its own organization") as info:
        services.team_update(actor=org.admin, team=org.beta, parent=other)
    assert info.value.field == "parent"


def test_team_cannot_leave_or_become_the_root(org):
    with refused(ValidationError, "root of its organization"):
        services.team_update(actor=org.admin, team=org.alpha, parent=None)
    other = services.team_create(actor=org.admin, name="Other Corp", slug="other", parent=None)
    with refused(ValidationError, "root of its organization"):
        services.team_update(actor=org.admin, team=other, parent=org.beta)


@contextmanager
def within_seconds(seconds: float):
    """The block must finish in time: a walker looping over a cycle is interrupted and fails."""

    def expire(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s (looping over a cycle?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_tree_walkers_terminate_on_a_cycle(org):
    """A cycle cannot be made through the services; if one is in the data anyway (made here by
    hand), every walker stops or refuses clearly instead of looping forever."""
    Team.objects.filter(pk=org.alpha.pk).update(parent=org.sub)  # alpha -> sub -> alpha
    with within_seconds(5):
        assert permissions.subtree_ids(org.alpha) == {org.alpha.pk, org.sub.pk}
        assert permissions.root_id_of(org.sub.pk) in {org.alpha.pk, org.sub.pk}
        permissions.sync_team_grants()
        permissions.sync_user_groups(org.user("alpha.lead"))
        selectors.org_chart_visible_to(user=org.admin)
        with pytest.raises(ValidationError, match="cycle"):
            services.team_update(actor=org.admin, team=org.beta, parent=org.sub)
        with pytest.raises(ValidationError, match="cycle"):
            services.team_update(actor=org.admin, team=org.sub, parent=org.beta)
        services.team_create(actor=org.admin, name="Beta Sub", parent=org.beta)
        with pytest.raises(ValidationError, match="cycle"):
            services.team_create(actor=org.admin, name="Sub Sub", parent=org.sub)


def test_only_site_admins_create_an_organization(org):
    with refused(PermissionDeniedError, "Only site admins", "organization"):
        services.team_create(actor=org.user("acme.lead"), name="Rogue", parent=None)

    since = last_audit_id()
    root = services.team_create(actor=org.admin, name="New Corp", parent=None)
    assert root.parent_id is None and root.slug == "new-corp"
    assert Group.objects.filter(name="org:new-corp").exists()
    assert verbs_since(since) == ["team.created"]


def test_archived_parent_refuses_sub_teams(org):
    beta = services.team_update(actor=org.admin, team=org.beta, archived=True)
    with refused(ValidationError, "Beta is archived", "sub-teams") as info:
        services.team_create(actor=org.admin, name="Under Beta", parent=beta)
    assert info.value.field == "parent"
    with refused(ValidationError, "Beta is archived"):
        services.team_update(actor=org.admin, team=org.sub, parent=beta)


def test_archiving_a_team_with_active_sub_teams_is_refused(org):
    with refused(ValidationError, "Archive the sub-teams of Alpha first") as info:
        services.team_update(actor=org.admin, team=org.alpha, archived=True)
    assert info.value.field == "archived"

    services.team_update(actor=org.admin, team=org.sub, archived=True)
    alpha = services.team_update(actor=org.admin, team=org.alpha, archived=True)
    assert Team.objects.get(pk=alpha.pk).archived

    with refused(ValidationError, "Restore Alpha first"):
        services.team_update(actor=org.admin, team=org.sub, archived=False)
    with refused(ValidationError, "Alpha is archived", "restore it"):
        services.membership_grant(
            actor=org.admin, team=alpha, user=org.user("newcomer"), role="viewer"
        )


@pytest.mark.parametrize("slug", ["beta", ""])
def test_duplicate_slug_is_refused(org, slug):
    # An explicit slug, or one derived from the name "Beta".
    with refused(ValidationError, "slug 'beta' is taken") as info:
        services.team_create(actor=org.admin, name="Beta", slug=slug, parent=org.root)
    assert info.value.field == "slug"


def test_update_without_a_change_is_refused(org):
    with refused(ValidationError, "Nothing to change"):
        services.team_update(
            actor=org.admin, team=org.alpha, name="Alpha", description="", archived=False
        )
    with refused(ValidationError, "Nothing to change"):
        services.team_update(actor=org.admin, team=org.sub, parent=org.alpha)


def test_team_update_needs_manage_on_the_team_and_on_the_new_parent(org):
    with refused(PermissionDeniedError, "edit this team", "only a lead of Alpha"):
        services.team_update(actor=org.user("beta.lead"), team=org.alpha, name="Mine")
    with refused(NotFoundError, "Team not found"):
        services.team_update(actor=org.user("outsider"), team=org.alpha, name="Mine")
    # alpha.lead manages alpha-sub but not beta.
    with refused(PermissionDeniedError, "move Alpha Sub under Beta"):
        services.team_update(actor=org.user("alpha.lead"), team=org.sub, parent=org.beta)


def _chain_under(parent, levels: int, actor, prefix: str) -> list[Team]:
    made = []
    for level in range(levels):
        parent = services.team_create(actor=actor, name=f"{prefix} {level}", parent=parent)
        made.append(parent)
    return made


def test_team_tree_depth_is_limited(org):
    # acme (level 1) > alpha (2) > alpha-sub (3) > nine more levels = 12.
    deepest = _chain_under(org.sub, MAX_TEAM_DEPTH - 3, org.admin, "Level")[-1]
    with refused(ValidationError, f"at most {MAX_TEAM_DEPTH} levels deep") as info:
        services.team_create(actor=org.admin, name="Too deep", parent=deepest)
    assert info.value.field == "parent"


def test_moving_a_subtree_cannot_exceed_the_depth_limit(org):
    # beta (level 2) gets a child (3); moving beta under a team at level 11 would put beta at
    # level 12 and its child at level 13.
    services.team_create(actor=org.admin, name="Beta Child", parent=org.beta)
    level_11 = _chain_under(org.sub, MAX_TEAM_DEPTH - 4, org.admin, "Level")[-1]
    with refused(ValidationError, f"at most {MAX_TEAM_DEPTH} levels deep"):
        services.team_update(actor=org.admin, team=org.beta, parent=level_11)


# --- memberships -------------------------------------------------------------------------------


def test_duplicate_membership_names_the_user_and_the_team(org):
    with refused(ValidationError, "alpha.viewer", "already a member of Alpha", "Viewer") as info:
        services.membership_grant(
            actor=org.admin, team=org.alpha, user=org.user("alpha.viewer"), role="engineer"
        )
    assert info.value.field == "user"


def test_user_by_username_finds_only_active_users(org):
    assert services.user_by_username("  newcomer ") == org.user("newcomer")
    with refused(ValidationError, "No active user", "'ghost'") as info:
        services.user_by_username("ghost")
    assert info.value.field == "user"
    User.objects.filter(username="newcomer").update(is_active=False)
    with refused(ValidationError, "No active user", "'newcomer'"):
        services.user_by_username("newcomer")


def test_unknown_role_is_refused(org):
    with refused(ValidationError, "Unknown role 'boss'", "lead", "viewer") as info:
        services.membership_grant(
            actor=org.admin, team=org.alpha, user=org.user("newcomer"), role="boss"
        )
    assert info.value.field == "role"
    with refused(ValidationError, "Unknown role 'boss'"):
        services.membership_change_role(
            actor=org.admin, membership=membership(org.user("alpha.viewer"), org.alpha), role="boss"
        )


def test_deactivated_user_cannot_become_a_member(org):
    newcomer = org.user("newcomer")
    newcomer.is_active = False
    newcomer.save(update_fields=["is_active"])
    with refused(ValidationError, "newcomer is deactivated") as info:
        services.membership_grant(actor=org.admin, team=org.alpha, user=newcomer, role="viewer")
    assert info.value.field == "user"


def test_change_to_the_same_role_is_refused(org):
    viewer = membership(org.user("alpha.viewer"), org.alpha)
    with refused(ValidationError, "alpha.viewer already has the role Viewer"):
        services.membership_change_role(
            actor=org.user("alpha.lead"), membership=viewer, role="viewer"
        )


@pytest.mark.parametrize("actor_name", ["alpha.lead", "acme.lead"])
def test_last_lead_cannot_be_demoted_or_removed_by_a_non_admin(org, actor_name):
    actor = org.user(actor_name)
    lead = membership(org.user("alpha.lead"), org.alpha)
    with refused(ValidationError, "alpha.lead is the last lead of Alpha", "someone else lead"):
        services.membership_change_role(actor=actor, membership=lead, role="viewer")
    with refused(ValidationError, "alpha.lead is the last lead of Alpha"):
        services.membership_revoke(actor=actor, membership=lead)


def test_a_site_admin_may_demote_the_last_lead(org):
    lead = membership(org.user("alpha.lead"), org.alpha)
    services.membership_change_role(actor=org.admin, membership=lead, role="viewer")
    assert membership(org.user("alpha.lead"), org.alpha).role == "viewer"
    assert not can_manage(org.user("alpha.lead"), org.alpha)


def test_a_lead_may_step_down_once_there_is_another_lead(org):
    alpha_lead = org.user("alpha.lead")
    services.membership_change_role(
        actor=alpha_lead, membership=membership(org.user("alpha.steward"), org.alpha), role="lead"
    )
    services.membership_change_role(
        actor=alpha_lead, membership=membership(alpha_lead, org.alpha), role="viewer"
    )
    assert not can_manage(alpha_lead, org.alpha)
    assert can_manage(org.user("alpha.steward"), org.alpha)


def test_a_user_may_belong_to_several_teams_with_different_roles(org):
    engineer = org.user("alpha.engineer")
    services.membership_grant(
        actor=org.user("beta.lead"), team=org.beta, user=engineer, role="lead"
    )
    assert dict(Membership.objects.filter(user=engineer).values_list("team__slug", "role")) == {
        "alpha": "engineer",
        "beta": "lead",
    }
    assert group_names(engineer) == {"team:alpha:engineer", "team:beta:lead", "org:acme"}
    assert can_manage(engineer, org.beta) and not can_manage(engineer, org.alpha)

    # Changing or ending one membership leaves the other alone.
    services.membership_change_role(
        actor=org.user("beta.lead"), membership=membership(engineer, org.beta), role="viewer"
    )
    assert membership(engineer, org.alpha).role == "engineer"
    services.membership_revoke(
        actor=org.user("beta.lead"), membership=membership(engineer, org.beta)
    )
    assert group_names(engineer) == {"team:alpha:engineer", "org:acme"}
    assert can_view(engineer, org.beta) and not can_manage(engineer, org.beta)


# --- responsibilities --------------------------------------------------------------------------


def test_second_accountable_on_a_subject_is_refused(org):
    services.responsibility_assign(
        actor=org.admin, user=org.user("alpha.steward"), kind="A", subject=org.asset
    )
    with refused(
        ValidationError, "alpha.steward is already accountable for Catalog", "at most one"
    ) as info:
        services.responsibility_assign(
            actor=org.user("alpha.lead"),
            user=org.user("alpha.engineer"),
            kind="A",
            subject=org.asset,
        )
    assert info.value.field == "kind"


def test_replace_hands_the_accountable_over(org):
    first = services.responsibility_assign(
        actor=org.admin, user=org.user("alpha.steward"), kind="A", subject=org.asset
    )
    since = last_audit_id()
    handed = services.responsibility_assign(
        actor=org.user("alpha.lead"),
        user=org.user("alpha.engineer"),
        kind="A",
        subject=org.asset,
        replace=True,
    )
    assert handed.pk == first.pk
    accountable = Responsibility.objects.filter(kind="A", subject_id=org.asset.pk)
    assert list(accountable.values_list("user__username", flat=True)) == ["alpha.engineer"]
    assert verbs_since(since) == ["responsibility.reassigned"]
    event = AuditEvent.objects.get(id__gt=since)
    assert event.before == {"user": "alpha.steward"}
    assert event.after == {"user": "alpha.engineer"}
    assert event.actor == org.user("alpha.lead")


def test_second_accountable_on_an_area_is_refused(org):
    services.responsibility_assign(
        actor=org.admin, user=org.user("alpha.steward"), kind="A", team=org.alpha, area="ranking"
    )
    with refused(ValidationError, "alpha.steward is already accountable for ranking"):
        services.responsibility_assign(
            actor=org.admin,
            user=org.user("alpha.engineer"),
            kind="A",
            team=org.alpha,
            area="ranking",
        )
    # The same area name in another team is another area.
    other = services.responsibility_assign(
        actor=org.admin, user=org.user("beta.steward"), kind="A", team=org.beta, area="ranking"
    )
    assert other.team == org.beta


@pytest.mark.parametrize("username", ["beta.lead", "sub.lead", "acme.lead"])
def test_accountable_must_be_a_member_of_the_owning_team(org, username):
    # Members of a sibling, of a sub-team or of the parent team do not qualify.
    with refused(ValidationError, f"{username} is not a member of Alpha", "owning team") as info:
        services.responsibility_assign(
            actor=org.admin, user=org.user(username), kind="A", subject=org.asset
        )
    assert info.value.field == "user"
    with refused(ValidationError, f"{username} is not a member of Alpha"):
        services.responsibility_assign(
            actor=org.admin, user=org.user(username), kind="A", team=org.alpha, area="ranking"
        )


@pytest.mark.parametrize("kind", ["R", "C", "I"])
def test_rci_holder_must_belong_to_the_organization(org, kind):
    with refused(ValidationError, "outsider is not a member of this organization") as info:
        services.responsibility_assign(
            actor=org.admin, user=org.user("outsider"), kind=kind, subject=org.asset
        )
    assert info.value.field == "user"
    # Anyone in the organization may be R/C/I, also from another team.
    held = services.responsibility_assign(
        actor=org.admin, user=org.user("beta.steward"), kind=kind, subject=org.asset
    )
    assert held.team == org.alpha and held.subject == org.asset


def test_rci_holder_from_another_organization_is_refused(org):
    other = services.team_create(actor=org.admin, name="Other Corp", slug="other", parent=None)
    stranger = UserFactory(username="stranger")
    services.membership_grant(actor=org.admin, team=other, user=stranger, role="lead")
    with refused(ValidationError, "stranger is not a member of this organization"):
        services.responsibility_assign(actor=org.admin, user=stranger, kind="C", subject=org.asset)


def test_deactivated_user_cannot_hold_a_responsibility(org):
    steward = org.user("alpha.steward")
    steward.is_active = False
    steward.save(update_fields=["is_active"])
    with refused(ValidationError, "alpha.steward is deactivated"):
        services.responsibility_assign(actor=org.admin, user=steward, kind="R", subject=org.asset)


@pytest.mark.parametrize("with_subject,area", [(True, "ranking"), (False, ""), (False, "   ")])
def test_subject_xor_area(org, with_subject, area):
    with refused(ValidationError, "either a governed subject or a named area") as info:
        services.responsibility_assign(
            actor=org.admin,
            user=org.user("alpha.engineer"),
            kind="R",
            subject=org.asset if with_subject else None,
            team=org.alpha,
            area=area,
        )
    assert info.value.field == "subject"


def test_unknown_kind_and_ungoverned_subject_are_refused(org):
    with refused(ValidationError, "Unknown RACI kind 'X'"):
        services.responsibility_assign(
            actor=org.admin, user=org.user("alpha.engineer"), kind="X", subject=org.asset
        )
    with refused(ValidationError, "Team is not a governed subject type"):
        services.responsibility_assign(
            actor=org.admin, user=org.user("alpha.engineer"), kind="R", subject=org.beta
        )


@pytest.mark.parametrize("kind", ["R", "A", "C", "I"])
def test_duplicate_assignment_is_refused(org, kind):
    engineer = org.user("alpha.engineer")
    services.responsibility_assign(actor=org.admin, user=engineer, kind=kind, subject=org.asset)
    with refused(ValidationError, f"alpha.engineer already holds {kind} on Catalog"):
        services.responsibility_assign(actor=org.admin, user=engineer, kind=kind, subject=org.asset)
    services.responsibility_assign(
        actor=org.admin, user=engineer, kind=kind, team=org.alpha, area="ranking"
    )
    with refused(ValidationError, f"alpha.engineer already holds {kind} on ranking"):
        services.responsibility_assign(
            actor=org.admin, user=engineer, kind=kind, team=org.alpha, area="ranking"
        )


def test_assigning_needs_manage_on_the_owning_team(org):
    with refused(PermissionDeniedError, "assign responsibilities", "only a lead of Alpha"):
        services.responsibility_assign(
            actor=org.user("beta.lead"),
            user=org.user("alpha.engineer"),
            kind="R",
            subject=org.asset,
        )


# --- removing an accountable member ------------------------------------------------------------


@pytest.fixture
def email_delay():
    with mock.patch.object(notification_email_send_task, "delay") as delay:
        yield delay


def test_removing_an_accountable_member_needs_a_decision(org, django_capture_on_commit_callbacks):
    steward = org.user("alpha.steward")
    on_asset = services.responsibility_assign(
        actor=org.admin, user=steward, kind="A", subject=org.asset
    )
    on_area = services.responsibility_assign(
        actor=org.admin, user=steward, kind="A", team=org.alpha, area="ranking"
    )
    with (
        django_capture_on_commit_callbacks() as callbacks,
        refused(
            ConflictError,
            "alpha.steward is accountable for",
            "Catalog",
            "ranking (Alpha)",
            "successor",
        ) as info,
    ):
        services.membership_revoke(
            actor=org.user("alpha.lead"), membership=membership(steward, org.alpha)
        )
    assert sorted(info.value.extra["undecided"]) == sorted([on_asset.id, on_area.id])
    assert callbacks == []
    # A decision for one subject is not enough.
    with refused(ConflictError, "ranking (Alpha)") as info:
        services.membership_revoke(
            actor=org.user("alpha.lead"),
            membership=membership(steward, org.alpha),
            successors={on_asset.id: None},
        )
    assert info.value.extra["undecided"] == [on_area.id]
    assert "Catalog" not in info.value.message


def test_removing_an_accountable_member_with_a_successor(
    org, email_delay, django_capture_on_commit_callbacks
):
    newcomer, engineer = org.user("newcomer"), org.user("alpha.engineer")
    services.membership_grant(actor=org.admin, team=org.alpha, user=newcomer, role="lead")
    accountable = services.responsibility_assign(
        actor=org.admin, user=newcomer, kind="A", subject=org.asset
    )
    services.responsibility_assign(
        actor=org.admin, user=newcomer, kind="R", team=org.alpha, area="ranking"
    )
    services.responsibility_assign(
        actor=org.admin, user=newcomer, kind="C", team=org.beta, area="billing"
    )
    assert can_manage(newcomer, org.alpha) and can_manage(newcomer, org.sub)
    assert can_view(newcomer, org.beta)

    since = last_audit_id()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.membership_revoke(
            actor=org.user("alpha.lead"),
            membership=membership(newcomer, org.alpha),
            successors={accountable.id: engineer},
        )

    accountable.refresh_from_db()
    assert accountable.user == engineer and accountable.kind == "A"
    assert not Membership.objects.filter(user=newcomer).exists()
    # Their R in alpha goes with the membership; their C in beta because they left the org.
    assert not Responsibility.objects.filter(user=newcomer).exists()
    assert group_names(newcomer) == set()
    for team in (org.root, org.alpha, org.sub, org.beta):
        assert not can_manage(newcomer, team)
        assert not can_view(newcomer, team)
    assert verbs_since(since) == [
        "responsibility.reassigned",
        "responsibility.removed",
        "membership.revoked",
        "responsibility.removed",
    ]
    reasons = list(
        AuditEvent.objects.filter(id__gt=since, verb="responsibility.removed")
        .order_by("id")
        .values_list("after", flat=True)
    )
    assert reasons == [{"reason": "member removed"}, {"reason": "left the organization"}]
    assert not Notification.objects.exists()
    assert callbacks == []
    email_delay.assert_not_called()
    # The subject keeps its A; the area disappears with its only (R) assignment.
    assert selectors.gaps_of(team=org.alpha) == []


def test_removing_an_accountable_member_leaving_a_gap_notifies_every_lead(
    org, email_delay, django_capture_on_commit_callbacks
):
    steward, second_lead = org.user("alpha.steward"), org.user("newcomer")
    services.membership_grant(actor=org.admin, team=org.alpha, user=second_lead, role="lead")
    accountable = services.responsibility_assign(
        actor=org.admin, user=steward, kind="A", subject=org.asset
    )
    assert selectors.gaps_of(team=org.alpha) == []

    since = last_audit_id()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.membership_revoke(
            actor=org.user("alpha.lead"),
            membership=membership(steward, org.alpha),
            successors={accountable.id: None},
        )
        # Enqueued on commit only, not while the transaction is open.
        email_delay.assert_not_called()
    assert len(callbacks) == 2

    assert not Responsibility.objects.filter(pk=accountable.pk).exists()
    gaps = selectors.gaps_of(team=org.alpha)
    assert [gap.subject for gap in gaps] == [org.asset]
    assert "Catalog" in gaps[0].label
    notifications = list(Notification.objects.order_by("recipient__username"))
    assert [n.recipient.username for n in notifications] == ["alpha.lead", "newcomer"]
    for notification in notifications:
        assert "Alpha" in notification.subject
        assert "no accountable person" in notification.subject
        assert "alpha.steward" in notification.body and "Catalog" in notification.body
        assert notification.link == "/teams/alpha/"
    assert sorted(c.args for c in email_delay.call_args_list) == sorted(
        (n.id,) for n in notifications
    )
    assert verbs_since(since) == ["responsibility.removed", "membership.revoked"]


def test_successor_who_is_not_a_member_is_refused(
    org, email_delay, django_capture_on_commit_callbacks
):
    steward = org.user("alpha.steward")
    accountable = services.responsibility_assign(
        actor=org.admin, user=steward, kind="A", subject=org.asset
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with refused(ValidationError, "beta.lead is not a member of Alpha"):
            services.membership_revoke(
                actor=org.user("alpha.lead"),
                membership=membership(steward, org.alpha),
                successors={accountable.id: org.user("beta.lead")},
            )
        with refused(ValidationError, "someone other than the member being removed"):
            services.membership_revoke(
                actor=org.user("alpha.lead"),
                membership=membership(steward, org.alpha),
                successors={accountable.id: steward},
            )
    assert callbacks == []
    email_delay.assert_not_called()


def test_successor_who_is_deactivated_is_refused(org):
    steward, engineer = org.user("alpha.steward"), org.user("alpha.engineer")
    accountable = services.responsibility_assign(
        actor=org.admin, user=steward, kind="A", subject=org.asset
    )
    engineer.is_active = False
    engineer.save(update_fields=["is_active"])
    # responsibility_assign refuses a deactivated holder; handing an A over must refuse too.
    with refused(ValidationError, "alpha.engineer is deactivated"):
        services.membership_revoke(
            actor=org.user("alpha.lead"),
            membership=membership(steward, org.alpha),
            successors={accountable.id: engineer},
        )


def test_a_refused_removal_undoes_a_gap_already_made_and_enqueues_nothing(
    org, email_delay, django_capture_on_commit_callbacks
):
    steward = org.user("alpha.steward")
    gap = services.responsibility_assign(actor=org.admin, user=steward, kind="A", subject=org.asset)
    area = services.responsibility_assign(
        actor=org.admin, user=steward, kind="A", team=org.alpha, area="ranking"
    )
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        refused(ValidationError, "outsider is not a member of Alpha"),
    ):
        services.membership_revoke(
            actor=org.user("alpha.lead"),
            membership=membership(steward, org.alpha),
            successors={gap.id: None, area.id: org.user("outsider")},
        )
    assert callbacks == []
    email_delay.assert_not_called()
    assert selectors.gaps_of(team=org.alpha) == []


# --- permissions follow the org ---------------------------------------------------------------


def test_granting_and_revoking_a_lead_moves_manage_rights(org):
    newcomer = org.user("newcomer")
    assert not any(can_view(newcomer, t) for t in (org.root, org.alpha, org.sub, org.beta))

    services.membership_grant(
        actor=org.user("alpha.lead"), team=org.alpha, user=newcomer, role="lead"
    )
    assert can_manage(newcomer, org.alpha) and can_manage(newcomer, org.sub)
    assert not can_manage(newcomer, org.root) and not can_manage(newcomer, org.beta)
    assert all(can_view(newcomer, t) for t in (org.root, org.alpha, org.sub, org.beta))

    services.membership_revoke(
        actor=org.user("alpha.lead"), membership=membership(newcomer, org.alpha)
    )
    assert not any(can_manage(newcomer, t) for t in (org.root, org.alpha, org.sub, org.beta))
    assert not any(can_view(newcomer, t) for t in (org.root, org.alpha, org.sub, org.beta))


def test_a_non_lead_member_sees_the_organization_but_manages_nothing(org):
    newcomer = org.user("newcomer")
    services.membership_grant(actor=org.admin, team=org.sub, user=newcomer, role="steward")
    assert all(can_view(newcomer, t) for t in (org.root, org.alpha, org.sub, org.beta))
    assert not any(can_manage(newcomer, t) for t in (org.root, org.alpha, org.sub, org.beta))


def test_changing_a_role_to_lead_and_back_moves_manage_rights(org):
    viewer = org.user("alpha.viewer")
    services.membership_change_role(
        actor=org.user("alpha.lead"), membership=membership(viewer, org.alpha), role="lead"
    )
    assert can_manage(viewer, org.alpha) and can_manage(viewer, org.sub)
    services.membership_change_role(
        actor=org.user("alpha.lead"), membership=membership(viewer, org.alpha), role="viewer"
    )
    assert not can_manage(viewer, org.alpha) and not can_manage(viewer, org.sub)
    assert group_names(viewer) == {"team:alpha:viewer", "org:acme"}


def test_moving_a_team_recomputes_lead_grants(org):
    deepest = grandchild(org)
    alpha_lead, beta_lead = org.user("alpha.lead"), org.user("beta.lead")
    assert can_manage(alpha_lead, org.sub) and can_manage(alpha_lead, deepest)
    assert not can_manage(beta_lead, org.sub) and not can_manage(beta_lead, deepest)

    since = last_audit_id()
    services.team_update(actor=org.user("acme.lead"), team=org.sub, parent=org.beta)
    assert verbs_since(since) == ["team.updated"]
    assert Team.objects.get(pk=org.sub.pk).parent_id == org.beta.pk

    assert not can_manage(alpha_lead, org.sub) and not can_manage(alpha_lead, deepest)
    assert can_manage(alpha_lead, org.alpha)
    assert can_manage(beta_lead, org.sub) and can_manage(beta_lead, deepest)
    assert not can_manage(beta_lead, org.alpha)
    assert can_manage(org.user("acme.lead"), org.sub)
    assert can_manage(org.user("sub.lead"), org.sub) and can_manage(org.user("sub.lead"), deepest)
    assert not can_manage(org.user("sub.lead"), org.beta)
    # Still one organization: everyone in it still sees the moved team.
    assert can_view(org.user("alpha.viewer"), org.sub)


def test_a_new_sub_team_is_managed_by_the_leads_above_it(org):
    team = services.team_create(actor=org.user("alpha.lead"), name="Alpha Two", parent=org.alpha)
    assert can_manage(org.user("alpha.lead"), team)
    assert can_manage(org.user("acme.lead"), team)
    assert not can_manage(org.user("beta.lead"), team)
    assert not can_manage(org.user("sub.lead"), team)
    assert can_view(org.user("beta.steward"), team)
    assert not can_view(org.user("outsider"), team)


# --- audit events per service ------------------------------------------------------------------


def test_team_services_write_one_event_each(org):
    since = last_audit_id()
    team = services.team_create(
        actor=org.user("alpha.lead"), name="Alpha Two", parent=org.alpha, description="d"
    )
    services.team_update(actor=org.user("alpha.lead"), team=team, name="Alpha 2")
    assert verbs_since(since) == ["team.created", "team.updated"]
    created, updated = AuditEvent.objects.filter(id__gt=since).order_by("id")
    assert created.actor == org.user("alpha.lead") and created.target_id == str(team.pk)
    assert created.before is None and created.after["slug"] == "alpha-two"
    assert updated.before["name"] == "Alpha Two" and updated.after["name"] == "Alpha 2"


def test_membership_services_write_one_event_each(org):
    newcomer, lead = org.user("newcomer"), org.user("alpha.lead")
    since = last_audit_id()
    granted = services.membership_grant(actor=lead, team=org.alpha, user=newcomer, role="viewer")
    services.membership_change_role(actor=lead, membership=granted, role="ops")
    services.membership_revoke(actor=lead, membership=granted)
    assert verbs_since(since) == [
        "membership.granted",
        "membership.role_changed",
        "membership.revoked",
    ]
    events = list(AuditEvent.objects.filter(id__gt=since).order_by("id"))
    assert events[0].after == {"user": "newcomer", "team": "alpha", "role": "viewer"}
    assert (events[1].before, events[1].after) == ({"role": "viewer"}, {"role": "ops"})
    assert events[2].before == {"user": "newcomer", "team": "alpha", "role": "ops"}
    assert {e.actor_id for e in events} == {lead.pk}


def test_responsibility_services_write_one_event_each(org):
    since = last_audit_id()
    held = services.responsibility_assign(
        actor=org.user("alpha.lead"), user=org.user("alpha.engineer"), kind="R", subject=org.asset
    )
    services.responsibility_remove(actor=org.user("alpha.lead"), responsibility=held)
    assert verbs_since(since) == ["responsibility.assigned", "responsibility.removed"]
    assigned, removed = AuditEvent.objects.filter(id__gt=since).order_by("id")
    assert assigned.after["user"] == "alpha.engineer" and assigned.after["kind"] == "R"
    assert removed.before["user"] == "alpha.engineer"
    assert removed.after == {"reason": "removed by a lead"}
    assert not Responsibility.objects.filter(pk=held.pk).exists()


def test_dataasset_create_writes_one_event(org):
    since = last_audit_id()
    dataasset_create(
        actor=org.user("alpha.lead"), name="Labels", kind="relevance_labels", owning_team=org.alpha
    )
    assert verbs_since(since) == ["dataasset.created"]


def test_notification_services_write_events_only_on_change(
    org, mailoutbox, django_capture_on_commit_callbacks
):
    lead = org.user("alpha.lead")
    notification = services.notification_send(recipient=lead, subject="Hello", link="/teams/")
    since = last_audit_id()
    services.notification_mark_read(actor=lead, notification=notification)
    services.notification_mark_read(actor=lead, notification=notification)
    with django_capture_on_commit_callbacks(execute=True):  # the mail goes out after commit
        assert services.notification_email_send(notification_id=notification.id) is True
        assert services.notification_email_send(notification_id=notification.id) is False
    assert verbs_since(since) == ["notification.read", "notification.emailed"]
    assert [m.to for m in mailoutbox] == [["alpha.lead@example.test"]]
    with refused(NotFoundError, "Notification not found"):
        services.notification_mark_read(actor=org.user("beta.lead"), notification=notification)
