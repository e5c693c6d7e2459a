"""UI of the organization: small views that read through selectors and write through services."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from core.errors import ApplicationError
from core.views import ObjectView, ServiceActionView
from teams import permissions, selectors, services
from teams.choices import RaciKind, Role
from teams.forms import (
    MemberAddForm,
    MemberRemoveForm,
    MemberRoleForm,
    ResponsibilityAssignForm,
    TeamCreateForm,
    TeamEditForm,
)
from teams.redirects import safe_return_url


class DemoAwareLoginView(LoginView):
    """The login page; in demo mode (DEBUG only) it lists the demo logins."""

    template_name = "registration/login.html"

    def get_context_data(self, **kwargs):
        from django.conf import settings

        context = super().get_context_data(**kwargs)
        if settings.DEBUG and settings.DEMO_MODE:  # never with DEBUG off, whatever else says
            from teams.demo import demo_logins

            context["demo_logins"] = demo_logins()
        return context


class OrgChartView(LoginRequiredMixin, TemplateView):
    template_name = "teams/org_chart.html"

    def get_context_data(self, **kwargs):
        include_archived = self.request.GET.get("archived") == "1"
        return super().get_context_data(
            roots=selectors.org_chart_visible_to(
                user=self.request.user, include_archived=include_archived
            ),
            include_archived=include_archived,
            **kwargs,
        )


class _TeamObject(ObjectView):
    def get_object(self):
        return selectors.team_get_for_user(user=self.request.user, slug=self.kwargs["slug"])

    def team_url(self):
        return reverse("teams:team_detail", args=[self.object.slug])


class TeamDetailView(_TeamObject, TemplateView):
    template_name = "teams/team_detail.html"

    def get_context_data(self, **kwargs):
        team = self.object
        return super().get_context_data(
            team=team,
            can_manage=permissions.can_manage_team(self.request.user, team),
            members=list(selectors.memberships_of(team=team)),
            responsibilities=selectors.responsibilities_of_team(team=team),
            gaps=selectors.gaps_of(team=team),
            sub_teams=list(selectors.sub_teams_of(team=team)),
            roles=Role.choices,
            add_form=MemberAddForm(),
            **kwargs,
        )


class _TeamFormView(_TeamObject, ServiceActionView):
    """A lead's form on the team (refused with a 403 page that says why to anyone else):
    `perform` returns the success message; back to the team page."""

    template_name = "teams/form.html"
    title = ""
    refused_action = "manage this team"

    @property
    def team(self):
        return self.object

    def check(self):
        permissions.manage_verdict(self.request.user, self.team, self.refused_action).require()

    def get_context_data(self, **kwargs):
        return {"team": self.team, "title": self.title, "cancel_url": self.team_url(), **kwargs}

    def success_message(self, message):
        return message

    def next_url(self, result):
        return self.team_url()


class TeamCreateView(_TeamFormView):
    refused_action = "create a sub-team here"
    title = "New sub-team"
    form_class = TeamCreateForm

    def perform(self, form):
        return services.team_create(actor=self.request.user, parent=self.team, **form.cleaned_data)

    def success_message(self, created):
        return f"Created {created.name} under {self.team.name}."

    def next_url(self, created):
        return reverse("teams:team_detail", args=[created.slug])


class TeamEditView(_TeamFormView):
    refused_action = "edit this team"
    title = "Edit team"
    form_class = TeamEditForm

    def build_form(self, data=None):
        parents = None
        if self.team.parent_id:
            parents = selectors.parent_choices_for(user=self.request.user, team=self.team)
        initial = {
            "name": self.team.name,
            "description": self.team.description,
            "parent": self.team.parent_id,
            "archived": self.team.archived,
        }
        return TeamEditForm(data, initial=initial, parent_choices=parents)

    def perform(self, form):
        changes = dict(form.cleaned_data)
        services.team_update(actor=self.request.user, team=self.team, **changes)
        return f"Saved {self.team.name}."


class MemberAddView(_TeamFormView):
    refused_action = "add members to this team"
    title = "Add a member"
    form_class = MemberAddForm

    def perform(self, form):
        user = services.user_by_username(form.cleaned_data["username"])
        membership = services.membership_grant(
            actor=self.request.user, team=self.team, user=user, role=form.cleaned_data["role"]
        )
        return (
            f"Added {user.get_username()} to {self.team.name} as {membership.get_role_display()}."
        )


class _MemberView(_TeamFormView):
    def get_membership(self):
        membership = selectors.memberships_of(team=self.team).filter(pk=self.kwargs["pk"]).first()
        if membership is None:
            raise Http404("Member not found.")
        return membership


class MemberRoleView(_MemberView):
    refused_action = "change roles in this team"
    title = "Change role"
    form_class = MemberRoleForm

    def build_form(self, data=None):
        self.membership = self.get_membership()
        return MemberRoleForm(data, initial={"role": self.membership.role})

    def perform(self, form):
        services.membership_change_role(
            actor=self.request.user, membership=self.membership, role=form.cleaned_data["role"]
        )
        return f"{self.membership.user.get_username()} is now {self.membership.get_role_display()}."


class MemberRemoveView(_MemberView):
    """Confirmation page; names a successor (or an explicit gap) per accountable subject."""

    refused_action = "remove members from this team"
    template_name = "teams/member_remove.html"
    form_class = MemberRemoveForm

    def build_form(self, data=None):
        self.membership = self.get_membership()
        candidates = [
            m.user for m in selectors.memberships_of(team=self.team) if m.pk != self.membership.pk
        ]
        return MemberRemoveForm(
            data, accountable=services.accountable_held(self.membership), candidates=candidates
        )

    def get_context_data(self, **kwargs):
        return {
            "team": self.team,
            "membership": self.membership,
            "cancel_url": self.team_url(),
            **kwargs,
        }

    def perform(self, form):
        decided = form.successors()
        users = selectors.users_by_ids(ids=[uid for uid in decided.values() if uid is not None])
        successors = {
            rid: (users.get(uid) if uid is not None else None) for rid, uid in decided.items()
        }
        if any(uid is not None and uid not in users for uid in decided.values()):
            raise ApplicationError("A chosen successor no longer exists.")
        services.membership_revoke(
            actor=self.request.user, membership=self.membership, successors=successors
        )
        gaps = sum(1 for v in successors.values() if v is None)
        note = f" {gaps} subject(s) now have no accountable person." if gaps else ""
        return f"Removed {self.membership.user.get_username()} from {self.team.name}.{note}"


class ResponsibilityAssignView(_TeamFormView):
    refused_action = "assign responsibilities in this team"
    title = "Assign a responsibility"
    form_class = ResponsibilityAssignForm

    def build_form(self, data=None):
        initial = {
            "kind": self.request.GET.get("kind", RaciKind.RESPONSIBLE),
            "subject": self.request.GET.get("subject", ""),
            "area": self.request.GET.get("area", ""),
        }
        return ResponsibilityAssignForm(
            data,
            initial=initial,
            people=selectors.members_of_org(team=self.team),
            subjects=selectors.subjects_owned_by(team=self.team),
        )

    def perform(self, form):
        data = form.cleaned_data
        responsibility = services.responsibility_assign(
            actor=self.request.user,
            user=data["user"],
            kind=data["kind"],
            subject=data["subject_obj"],
            team=self.team,
            area=data["area"],
            note=data["note"],
            replace=data["replace"],
        )
        return (
            f"{responsibility.user.get_username()} is now {responsibility.get_kind_display()} "
            f"for {responsibility.subject_label}."
        )


class ResponsibilityRemoveView(_TeamObject, ServiceActionView):
    """GET: the confirmation page; POST: remove, the result flashed on the team page."""

    def check(self):
        """A lead's action, on a responsibility of this team (404 for any other)."""
        permissions.manage_verdict(
            self.request.user, self.object, "remove responsibilities in this team"
        ).require()
        self.responsibility = selectors.responsibility_get_for_user(
            user=self.request.user, pk=self.kwargs["pk"]
        )
        if self.responsibility.team_id != self.object.id:
            raise Http404("Responsibility not found.")

    def get(self, request, *args, **kwargs):
        self.check()
        return render(
            request,
            "teams/responsibility_remove.html",
            {"team": self.object, "responsibility": self.responsibility},
        )

    def perform(self, form):
        services.responsibility_remove(actor=self.request.user, responsibility=self.responsibility)

    def success_message(self, result):
        responsibility = self.responsibility
        return (
            f"Removed {responsibility.get_kind_display()} of "
            f"{responsibility.user.get_username()} for {responsibility.subject_label}."
        )

    def next_url(self, result):
        return self.team_url()


class MyResponsibilitiesView(LoginRequiredMixin, TemplateView):
    template_name = "teams/my_responsibilities.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        return super().get_context_data(
            responsibilities=selectors.responsibilities_held_by(user=user),
            memberships=list(user.memberships.select_related("team").order_by("team__name")),
            **kwargs,
        )


class NotificationListView(LoginRequiredMixin, TemplateView):
    template_name = "teams/notifications.html"

    def get_context_data(self, **kwargs):
        from django.core.paginator import Paginator

        page = Paginator(selectors.notifications_of(user=self.request.user), 25).get_page(
            self.request.GET.get("page")
        )
        return super().get_context_data(page=page, **kwargs)


class NotificationReadView(ObjectView, View):
    def get_object(self):
        return selectors.notification_get_for_user(user=self.request.user, pk=self.kwargs["pk"])

    def post(self, request, pk):
        notification = self.object
        services.notification_mark_read(actor=request.user, notification=notification)
        if notification.link and request.POST.get("follow"):
            return redirect(safe_return_url(request, notification.link, reverse("notifications")))
        return redirect("notifications")
