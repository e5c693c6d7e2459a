"""UI of the organization: small views that read through selectors and write through services."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from core.errors import ApplicationError
from teams import selectors, services
from teams.choices import RaciKind, Role
from teams.forms import (
    MemberAddForm,
    MemberRemoveForm,
    MemberRoleForm,
    ResponsibilityAssignForm,
    TeamCreateForm,
    TeamEditForm,
)
from teams.models import Notification, Team
from teams.permissions import MANAGE_TEAM, TeamPermissionMixin, subtree_ids, teams_with_perm
from teams.redirects import safe_return_url

User = get_user_model()


def _form_error(form, exc: ApplicationError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


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
            roots=selectors.org_chart_for_user(
                user=self.request.user, include_archived=include_archived
            ),
            include_archived=include_archived,
            **kwargs,
        )


class TeamDetailView(TeamPermissionMixin, TemplateView):
    manage_required = False
    template_name = "teams/team_detail.html"

    def get_context_data(self, **kwargs):
        team = self.team
        return super().get_context_data(
            team=team,
            can_manage=self.can_manage,
            members=list(selectors.team_members(team=team)),
            responsibilities=selectors.team_responsibilities(team=team),
            gaps=selectors.team_gaps(team=team),
            sub_teams=list(selectors.sub_teams(team=team)),
            roles=Role.choices,
            add_form=MemberAddForm(),
            **kwargs,
        )


class _TeamFormView(TeamPermissionMixin, View):
    """GET shows the form; POST validates, calls one service and redirects to the team page.
    A refused or invalid submission re-renders the form with the message and status 400."""

    template_name = "teams/form.html"
    title = ""

    def build_form(self, data=None):
        raise NotImplementedError

    def perform(self, form):
        raise NotImplementedError

    def render_form(self, form, status=200):
        context = {
            "team": self.team,
            "form": form,
            "title": self.title,
            "cancel_url": self.team_url(),
        }
        return render(self.request, self.template_name, context, status=status)

    def team_url(self):
        return reverse("teams:team_detail", args=[self.team.slug])

    def get(self, request, *args, **kwargs):
        return self.render_form(self.build_form())

    def post(self, request, *args, **kwargs):
        form = self.build_form(request.POST)
        if form.is_valid():
            try:
                message = self.perform(form)
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, message)
                return redirect(self.success_url())
        return self.render_form(form, status=400)

    def success_url(self):
        return self.team_url()


class TeamCreateView(_TeamFormView):
    refused_action = "create a sub-team here"
    title = "New sub-team"

    def build_form(self, data=None):
        return TeamCreateForm(data)

    def perform(self, form):
        self.created = services.team_create(
            actor=self.request.user, parent=self.team, **form.cleaned_data
        )
        return f"Created {self.created.name} under {self.team.name}."

    def success_url(self):
        return reverse("teams:team_detail", args=[self.created.slug])


class TeamEditView(_TeamFormView):
    refused_action = "edit this team"
    title = "Edit team"

    def build_form(self, data=None):
        parents = None
        if self.team.parent_id:
            # The current parent, plus any active team the user manages outside this subtree.
            movable = (
                teams_with_perm(self.request.user, MANAGE_TEAM)
                .exclude(pk__in=subtree_ids(self.team))
                .filter(archived=False)
                .values("pk")
            )
            parents = Team.objects.filter(Q(pk=self.team.parent_id) | Q(pk__in=movable))
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

    def build_form(self, data=None):
        return MemberAddForm(data)

    def perform(self, form):
        user = services.user_by_username(form.cleaned_data["username"])
        membership = services.membership_grant(
            actor=self.request.user, team=self.team, user=user, role=form.cleaned_data["role"]
        )
        return (
            f"Added {user.get_username()} to {self.team.name} as {membership.get_role_display()}."
        )


class _MemberView(_TeamFormView):
    def dispatch(self, request, *args, **kwargs):
        self.membership_pk = kwargs["pk"]
        return super().dispatch(request, *args, **kwargs)

    def get_membership(self):
        membership = selectors.team_members(team=self.team).filter(pk=self.membership_pk).first()
        if membership is None:
            raise Http404("Member not found.")
        return membership


class MemberRoleView(_MemberView):
    refused_action = "change roles in this team"
    title = "Change role"

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

    def build_form(self, data=None):
        self.membership = self.get_membership()
        candidates = [
            m.user for m in selectors.team_members(team=self.team) if m.pk != self.membership.pk
        ]
        return MemberRemoveForm(
            data, accountable=services.accountable_held(self.membership), candidates=candidates
        )

    def render_form(self, form, status=200):
        context = {
            "team": self.team,
            "form": form,
            "membership": self.membership,
            "cancel_url": self.team_url(),
        }
        return render(self.request, self.template_name, context, status=status)

    def perform(self, form):
        decided = form.successors()
        users = User.objects.in_bulk([uid for uid in decided.values() if uid is not None])
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

    def build_form(self, data=None):
        initial = {
            "kind": self.request.GET.get("kind", RaciKind.RESPONSIBLE),
            "subject": self.request.GET.get("subject", ""),
            "area": self.request.GET.get("area", ""),
        }
        return ResponsibilityAssignForm(
            data,
            initial=initial,
            people=selectors.org_members(team=self.team),
            subjects=selectors.team_subjects(team=self.team),
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


class ResponsibilityRemoveView(TeamPermissionMixin, View):
    refused_action = "remove responsibilities in this team"

    def get_responsibility(self, pk):
        responsibility = selectors.responsibility_get_for_user(user=self.request.user, pk=pk)
        if responsibility.team_id != self.team.id:
            raise Http404("Responsibility not found.")
        return responsibility

    def get(self, request, slug, pk):
        return render(
            request,
            "teams/responsibility_remove.html",
            {"team": self.team, "responsibility": self.get_responsibility(pk)},
        )

    def post(self, request, slug, pk):
        responsibility = self.get_responsibility(pk)
        label = (
            f"{responsibility.get_kind_display()} of {responsibility.user.get_username()} "
            f"for {responsibility.subject_label}"
        )
        try:
            services.responsibility_remove(actor=request.user, responsibility=responsibility)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Removed {label}.")
        return redirect("teams:team_detail", slug=self.team.slug)


class MyResponsibilitiesView(LoginRequiredMixin, TemplateView):
    template_name = "teams/my_responsibilities.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        return super().get_context_data(
            responsibilities=selectors.responsibilities_of(user=user),
            memberships=list(user.memberships.select_related("team").order_by("team__name")),
            **kwargs,
        )


class NotificationListView(LoginRequiredMixin, TemplateView):
    template_name = "teams/notifications.html"

    def get_context_data(self, **kwargs):
        from django.core.paginator import Paginator

        page = Paginator(selectors.notifications_for_user(user=self.request.user), 25).get_page(
            self.request.GET.get("page")
        )
        return super().get_context_data(page=page, **kwargs)


class NotificationReadView(LoginRequiredMixin, View):
    def post(self, request, pk):
        notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
        services.notification_mark_read(actor=request.user, notification=notification)
        if notification.link and request.POST.get("follow"):
            return redirect(safe_return_url(request, notification.link, reverse("notifications")))
        return redirect("notifications")
