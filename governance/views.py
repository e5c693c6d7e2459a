"""UI of governance: assets and versions, the approvals inbox, the SLA dashboard, incidents and
the audit trail. Views read through selectors and write through one service each."""

import csv

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from core.errors import ApplicationError
from governance import permissions, selectors, services
from governance.charts import sparkline
from governance.choices import ApprovalKind, ProfileStatus, VersionStatus
from governance.constants import (
    AUDIT_PAGE_SIZE,
    DEFAULT_QUORUM,
    INBOX_PAGE_SIZE,
)
from governance.deciders import decide_check
from governance.forms import (
    ApprovalPolicyForm,
    AssetEditForm,
    AssetSlaForm,
    AuditFilterForm,
    DecisionForm,
    NoteForm,
    ReasonForm,
    VersionUploadForm,
)
from governance.services.approvals import default_approver_roles
from teams.htmx import stop_polling_when_final
from teams.redirects import safe_return_url


class AssetMixin(LoginRequiredMixin):
    """Resolves self.asset from the slug through the selector (404 when not visible)."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.asset = selectors.asset_get_for_user(user=request.user, slug=kwargs["slug"])
        self.can_upload = permissions.can_upload(request.user, self.asset)
        self.can_steward = permissions.can_steward(request.user, self.asset)
        return super().dispatch(request, *args, **kwargs)


class AssetListView(LoginRequiredMixin, TemplateView):
    template_name = "governance/asset_list.html"

    def get_context_data(self, **kwargs):
        team = self.request.GET.get("team", "")
        page = Paginator(
            selectors.assets_list_for_user(user=self.request.user, team_slug=team), 50
        ).get_page(self.request.GET.get("page"))
        return super().get_context_data(page=page, team=team, **kwargs)


class AssetDetailView(AssetMixin, TemplateView):
    template_name = "governance/asset_detail.html"

    def get_context_data(self, **kwargs):
        versions = Paginator(
            self.asset.versions.select_related("uploaded_by").order_by("-number"), 20
        ).get_page(self.request.GET.get("page"))
        incidents = selectors.incidents_for_user(user=self.request.user).filter(asset=self.asset)[
            :20
        ]
        return super().get_context_data(
            asset=self.asset,
            versions=versions,
            incidents=incidents,
            accountable=self.asset.accountable_rows[0].user
            if self.asset.accountable_rows
            else None,
            sla=getattr(self.asset, "sla", None),
            can_upload=self.can_upload,
            can_steward=self.can_steward,
            upload_form=VersionUploadForm(),
            **kwargs,
        )


class VersionUploadView(AssetMixin, View):
    """GET: the upload form; POST: store the file (streamed to disk by Django's upload
    handlers, never read whole into memory) and profile it on a worker."""

    def get(self, request, slug):
        self._require()
        return self._render(VersionUploadForm(initial={"submit": True}))

    def post(self, request, slug):
        self._require()
        # An over-limit body never gets here: UploadLimitMiddleware answers it with 413.
        form = VersionUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                version = services.dataset_version_upload(
                    actor=request.user,
                    asset=self.asset,
                    file=upload,
                    name=upload.name,
                    fmt=form.cleaned_data["format"] or None,
                    note=form.cleaned_data["note"],
                    submit=form.cleaned_data["submit"],
                )
            except ApplicationError as exc:
                form.add_error("file" if exc.field in (None, "file") else exc.field, exc.message)
            else:
                messages.success(
                    request,
                    f"Stored {version.original_name} as version "
                    f"{version.number}; profiling has been queued.",
                )
                return redirect("governance:version_detail", pk=version.pk)
        return self._render(form, status=400)

    def _require(self):
        if not self.can_upload:
            raise PermissionDenied(
                f"You cannot upload versions of {self.asset.name}: only engineers, stewards and "
                f"leads of {self.asset.owning_team.name} can."
            )

    def _render(self, form, status=200):
        return render(
            self.request,
            "governance/version_upload.html",
            {"asset": self.asset, "form": form},
            status=status,
        )


class _AssetFormView(AssetMixin, View):
    title = ""
    action = "change this asset"

    def get(self, request, slug):
        self._require()
        return self._render(self.build_form())

    def post(self, request, slug):
        self._require()
        form = self.build_form(request.POST)
        if form.is_valid():
            try:
                message = self.perform(form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, message)
                return redirect("governance:asset_detail", slug=self.asset.slug)
        return self._render(form, status=400)

    def _require(self):
        if not self.can_steward:
            raise PermissionDenied(
                f"You cannot {self.action}: only stewards and leads of "
                f"{self.asset.owning_team.name} can."
            )

    def _render(self, form, status=200):
        return render(
            self.request,
            "governance/form.html",
            {
                "form": form,
                "title": self.title,
                "asset": self.asset,
                "cancel_url": reverse("governance:asset_detail", args=[self.asset.slug]),
            },
            status=status,
        )


class AssetSlaView(_AssetFormView):
    title = "Service levels"
    action = "change the SLA of this asset"

    def build_form(self, data=None):
        sla = getattr(self.asset, "sla", None)
        initial = {}
        if sla is not None:
            initial = {f: getattr(sla, f) for f in AssetSlaForm.base_fields}
            initial["column_max_null_rates"] = sla.column_max_null_rates or ""
        return AssetSlaForm(data, initial=initial)

    def perform(self, data):
        services.assetsla_update(actor=self.request.user, asset=self.asset, **data)
        return f"Saved the SLA of {self.asset.name}; incidents were re-evaluated."


class AssetEditView(_AssetFormView):
    title = "Edit asset"
    action = "edit this asset"

    def build_form(self, data=None):
        import json

        asset = self.asset
        return AssetEditForm(
            data,
            initial={
                "description": asset.description,
                "classification": asset.classification,
                "retention_days": asset.retention_days,
                "schema_contract": json.dumps(asset.schema_contract)
                if asset.schema_contract
                else "",
            },
        )

    def perform(self, data):
        services.dataasset_update(actor=self.request.user, asset=self.asset, **data)
        return f"Saved {self.asset.name}."


class VersionMixin(LoginRequiredMixin):
    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.version = selectors.version_get_for_user(user=request.user, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)


class VersionDetailView(VersionMixin, TemplateView):
    template_name = "governance/version_detail.html"

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        return stop_polling_when_final(self.request, response, final=not context["profiling"])

    def get_context_data(self, **kwargs):
        user, version = self.request.user, selectors.with_sla_now(self.version)
        requests = selectors.requests_for_subject(version)
        pending = next((r for r in requests if r.state == "pending"), None)
        decide = decide_check(user, pending) if pending else None
        return super().get_context_data(
            version=version,
            asset=version.asset,
            requests=requests,
            pending=pending,
            can_decide=bool(decide),
            # Why the user may not decide, when it is the four-eyes rule (they produced or
            # asked for this version); other refusals need no explanation here.
            decide_refusal=decide.reason if decide is not None and decide.excluded else "",
            can_submit=version.status == VersionStatus.DRAFT
            and version.profile_status == ProfileStatus.SUCCEEDED
            and permissions.can_upload(user, version.asset),
            can_deprecate=version.status in (VersionStatus.APPROVED, VersionStatus.SUPERSEDED)
            and permissions.can_steward(user, version.asset),
            is_requester=pending is not None and pending.requester_id == user.pk,
            profiling=version.profile_status in (ProfileStatus.PENDING, ProfileStatus.RUNNING),
            **kwargs,
        )


class VersionSubmitView(VersionMixin, View):
    def post(self, request, pk):
        form = NoteForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        try:
            services.dataset_version_submit(actor=request.user, version=self.version, reason=note)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Submitted {self.version} for approval.")
        return redirect("governance:version_detail", pk=pk)


class VersionDeprecateView(VersionMixin, View):
    def post(self, request, pk):
        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Say why the version is deprecated.")
            return redirect("governance:version_detail", pk=pk)
        try:
            services.dataset_version_deprecate(
                actor=request.user, version=self.version, reason=form.cleaned_data["reason"]
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Deprecated {self.version}.")
        return redirect("governance:version_detail", pk=pk)


class ApprovalInboxView(LoginRequiredMixin, TemplateView):
    template_name = "governance/inbox.html"

    def get_context_data(self, **kwargs):
        page = Paginator(
            selectors.approval_inbox_for_user(user=self.request.user), INBOX_PAGE_SIZE
        ).get_page(self.request.GET.get("page"))
        selectors.attach_versions(page.object_list)
        return super().get_context_data(page=page, **kwargs)


class DecidedByMeView(LoginRequiredMixin, TemplateView):
    template_name = "governance/decided.html"

    def get_context_data(self, **kwargs):
        page = Paginator(
            selectors.decisions_by_user(user=self.request.user), INBOX_PAGE_SIZE
        ).get_page(self.request.GET.get("page"))
        return super().get_context_data(page=page, **kwargs)


class ApprovalDecideView(LoginRequiredMixin, View):
    """Approve, or reject with a comment, in one step; back to where the form was."""

    def post(self, request, pk):
        approval = selectors.approval_get_for_user(user=request.user, pk=pk)
        form = DecisionForm(request.POST)
        back = safe_return_url(request, request.POST.get("next"), reverse("governance:inbox"))
        if not form.is_valid():
            messages.error(request, "Choose approve or reject.")
            return redirect(back)
        try:
            approval = services.approval_decide(
                actor=request.user,
                request=approval,
                verdict=form.cleaned_data["verdict"],
                comment=form.cleaned_data["comment"],
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect(back)
        verb = "Approved" if form.cleaned_data["verdict"] == "approve" else "Rejected"
        messages.success(request, f"{verb} request #{approval.pk}; it is now {approval.state}.")
        return redirect(back)


class ApprovalCancelView(LoginRequiredMixin, View):
    def post(self, request, pk):
        approval = selectors.approval_get_for_user(user=request.user, pk=pk)
        try:
            services.approval_cancel(
                actor=request.user, request=approval, reason=request.POST.get("reason", "")
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Cancelled request #{approval.pk}.")
        return redirect(
            safe_return_url(request, request.POST.get("next"), reverse("governance:inbox"))
        )


class SlaDashboardView(LoginRequiredMixin, TemplateView):
    template_name = "governance/sla_dashboard.html"

    def get_context_data(self, **kwargs):
        team = self.request.GET.get("team", "")
        board = selectors.sla_dashboard(user=self.request.user, team_slug=team)
        for row in board["rows"]:
            series = row["series"]
            row["rows_chart"] = sparkline([p["rows"] for p in series])
            row["null_chart"] = sparkline([p["max_null_rate"] for p in series])
            row["dup_chart"] = sparkline([p["duplicate_rate"] for p in series])
        return super().get_context_data(board=board, team=team, **kwargs)


class IncidentDetailView(LoginRequiredMixin, TemplateView):
    template_name = "governance/incident_detail.html"

    def get_context_data(self, **kwargs):
        incident = selectors.incident_get_for_user(user=self.request.user, pk=kwargs["pk"])
        return super().get_context_data(
            incident=incident,
            can_ack=incident.status == "open"
            and (
                incident.assigned_to_id == self.request.user.pk
                or permissions.can_steward(self.request.user, incident.asset)
            ),
            **kwargs,
        )


class IncidentAcknowledgeView(LoginRequiredMixin, View):
    def post(self, request, pk):
        incident = selectors.incident_get_for_user(user=request.user, pk=pk)
        try:
            services.incident_acknowledge(
                actor=request.user, incident=incident, note=request.POST.get("note", "")
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Incident acknowledged.")
        return redirect("governance:incident_detail", pk=pk)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ tab or CR gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value):
        return value


class AuditLogView(LoginRequiredMixin, TemplateView):
    """The audit trail for site admins, filterable; ?format=csv exports the filtered rows."""

    template_name = "governance/audit.html"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_superuser:
            raise PermissionDenied("The audit trail is for site admins.")
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        form = AuditFilterForm(request.GET or None)
        query = request.GET.copy()
        query.pop("page", None)
        if form.is_bound and not form.is_valid():
            # Never fall back to "everything" (nor export it) when a filter is wrong.
            return self.render_to_response(
                self.get_context_data(form=form, page=None, query=""), status=400
            )
        filters = form.cleaned_data if form.is_bound else {}
        events = selectors.audit_events(**{k: v for k, v in filters.items() if v})
        if request.GET.get("format") == "csv":
            return self._csv(events)
        page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
        query.pop("format", None)
        return self.render_to_response(
            self.get_context_data(form=form, page=page, query=query.urlencode())
        )

    def _csv(self, events):
        writer = csv.writer(_Echo())
        header = [
            "id",
            "created_at",
            "actor",
            "verb",
            "target_type",
            "target_id",
            "target",
            "before",
            "after",
            "correlation_id",
            "hash",
        ]

        def rows():
            yield writer.writerow(header)
            for e in events.iterator(chunk_size=2000):
                yield writer.writerow(
                    [
                        csv_safe(v)
                        for v in (
                            e.id,
                            e.created_at.isoformat(),
                            e.actor_repr,
                            e.verb,
                            e.target_type.model,
                            e.target_id,
                            e.target_repr,
                            e.before,
                            e.after,
                            e.correlation_id,
                            e.hash,
                        )
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="steward-audit.csv"'
        return response


class ApprovalPolicyView(LoginRequiredMixin, View):
    """A team's approval policies, one form per kind of request; leads edit them."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.team, self.policies = selectors.policies_for_team(
            user=request.user, team_slug=kwargs["slug"]
        )
        from teams.permissions import can_manage_team

        self.can_manage = can_manage_team(request.user, self.team)
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, slug):
        return self._render({})

    def post(self, request, slug):
        if not self.can_manage:
            raise PermissionDenied(
                "You cannot change the approval policies of this team: only a lead of "
                f"{self.team.name} or of a team above it can."
            )
        form = ApprovalPolicyForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.approvalpolicy_set(
                    actor=request.user,
                    team=self.team,
                    kind=data["kind"],
                    approver_roles=data["approver_roles"],
                    quorum=data["quorum"],
                    expiry_hours=data["expiry_hours"],
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(
                    request,
                    f"Saved the {ApprovalKind(data['kind']).label.lower()} "
                    f"policy of {self.team.name}.",
                )
                return redirect("governance:policies", slug=self.team.slug)
        return self._render({request.POST.get("kind", ""): form}, status=400)

    def _render(self, bound: dict, status=200):
        rows = []
        for kind, policy in self.policies.items():
            initial = {
                "kind": kind,
                "approver_roles": policy.approver_roles if policy else default_approver_roles(kind),
                "quorum": policy.quorum if policy else DEFAULT_QUORUM,
                "expiry_hours": policy.expiry_hours if policy else None,
            }
            rows.append(
                {
                    "kind": ApprovalKind(kind),
                    "policy": policy,
                    "form": bound.get(kind) or ApprovalPolicyForm(initial=initial),
                }
            )
        return render(
            self.request,
            "governance/policies.html",
            {"team": self.team, "rows": rows, "can_manage": self.can_manage},
            status=status,
        )
