"""UI of governance: assets and versions, the approvals inbox, the SLA dashboard, incidents and
the audit trail. Views read through selectors and write through one service each."""

import csv

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.views.generic import TemplateView

from core.charts import sparkline
from core.views import ObjectView, ServiceActionView
from governance import permissions, selectors, services
from governance.actions import incident_actions, version_actions
from governance.choices import ApprovalKind, ProfileStatus
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
from teams.permissions import can_manage_team, manage_verdict
from teams.redirects import safe_return_url


class _AssetObject(ObjectView):
    def get_object(self):
        return selectors.asset_get_for_user(user=self.request.user, slug=self.kwargs["slug"])


class AssetListView(LoginRequiredMixin, TemplateView):
    template_name = "governance/asset_list.html"

    def get_context_data(self, **kwargs):
        team = self.request.GET.get("team", "")
        page = Paginator(
            selectors.assets_visible_to(user=self.request.user, team_slug=team), 50
        ).get_page(self.request.GET.get("page"))
        return super().get_context_data(page=page, team=team, **kwargs)


class AssetDetailView(_AssetObject, TemplateView):
    template_name = "governance/asset_detail.html"

    def get_context_data(self, **kwargs):
        user, asset = self.request.user, self.object
        versions = Paginator(
            asset.versions.select_related("uploaded_by").order_by("-number"), 20
        ).get_page(self.request.GET.get("page"))
        incidents = selectors.incidents_visible_to(user=user).filter(asset=asset)[:20]
        return super().get_context_data(
            asset=asset,
            versions=versions,
            incidents=incidents,
            accountable=asset.accountable_rows[0].user if asset.accountable_rows else None,
            sla=getattr(asset, "sla", None),
            can_upload=permissions.can_upload(user, asset),
            can_steward=permissions.can_steward(user, asset),
            upload_form=VersionUploadForm(),
            **kwargs,
        )


class VersionUploadView(_AssetObject, ServiceActionView):
    """GET: the upload form; POST: store the file (streamed to disk by Django's upload
    handlers, never read whole into memory) and profile it on a worker. An over-limit body
    never gets here: UploadLimitMiddleware answers it with 413."""

    template_name = "governance/version_upload.html"
    form_class = VersionUploadForm

    def check(self):
        permissions.upload_verdict(self.request.user, self.object).require()

    def build_form(self, data=None):
        if data is None:
            return VersionUploadForm(initial={"submit": True})
        return VersionUploadForm(data, self.request.FILES)

    def perform(self, form):
        upload = form.cleaned_data["file"]
        return services.dataset_version_upload(
            actor=self.request.user,
            asset=self.object,
            file=upload,
            name=upload.name,
            fmt=form.cleaned_data["format"] or None,
            note=form.cleaned_data["note"],
            submit=form.cleaned_data["submit"],
        )

    def error_field(self, exc, form):
        return "file" if exc.field in (None, "file") else exc.field

    def success_message(self, version):
        return (
            f"Stored {version.original_name} as version "
            f"{version.number}; profiling has been queued."
        )

    def next_url(self, version):
        return reverse("governance:version_detail", kwargs={"pk": version.pk})

    def get_context_data(self, **kwargs):
        return {"asset": self.object, **kwargs}


class _AssetFormView(_AssetObject, ServiceActionView):
    """A steward's form on the asset; `perform` returns the success message."""

    template_name = "governance/form.html"
    title = ""
    action = "change this asset"

    def check(self):
        permissions.steward_verdict(self.request.user, self.object, self.action).require()

    def success_message(self, message):
        return message

    def next_url(self, result):
        return reverse("governance:asset_detail", kwargs={"slug": self.object.slug})

    def get_context_data(self, **kwargs):
        return {
            "title": self.title,
            "asset": self.object,
            "cancel_url": reverse("governance:asset_detail", args=[self.object.slug]),
            **kwargs,
        }


class AssetSlaView(_AssetFormView):
    title = "Service levels"
    form_class = AssetSlaForm
    action = "change the SLA of this asset"

    def build_form(self, data=None):
        sla = getattr(self.object, "sla", None)
        initial = {}
        if sla is not None:
            initial = {f: getattr(sla, f) for f in AssetSlaForm.base_fields}
            initial["column_max_null_rates"] = sla.column_max_null_rates or ""
        return AssetSlaForm(data, initial=initial)

    def perform(self, form):
        services.assetsla_update(actor=self.request.user, asset=self.object, **form.cleaned_data)
        return f"Saved the SLA of {self.object.name}; incidents were re-evaluated."


class AssetEditView(_AssetFormView):
    title = "Edit asset"
    form_class = AssetEditForm
    action = "edit this asset"

    def build_form(self, data=None):
        import json

        asset = self.object
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

    def perform(self, form):
        services.dataasset_update(actor=self.request.user, asset=self.object, **form.cleaned_data)
        return f"Saved {self.object.name}."


class _VersionObject(ObjectView):
    def get_object(self):
        return selectors.version_get_for_user(user=self.request.user, pk=self.kwargs["pk"])


class VersionDetailView(_VersionObject, TemplateView):
    template_name = "governance/version_detail.html"

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        return stop_polling_when_final(self.request, response, final=not context["profiling"])

    def get_context_data(self, **kwargs):
        user, version = self.request.user, selectors.version_with_sla_now(self.object)
        requests = selectors.approvals_for(version)
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
            actions=version_actions(user, version),
            is_requester=pending is not None and pending.requester_id == user.pk,
            profiling=version.profile_status in (ProfileStatus.PENDING, ProfileStatus.RUNNING),
            **kwargs,
        )


class _VersionAction(_VersionObject, ServiceActionView):
    def next_url(self, result):
        return reverse("governance:version_detail", kwargs={"pk": self.object.pk})


class VersionSubmitView(_VersionAction):
    def perform(self, form):
        note = NoteForm(self.request.POST)
        return services.dataset_version_submit(
            actor=self.request.user,
            version=self.object,
            reason=note.cleaned_data["note"] if note.is_valid() else "",
        )

    def success_message(self, result):
        return f"Submitted {self.object} for approval."


class VersionDeprecateView(_VersionAction):
    form_class = ReasonForm
    invalid_message = "Say why the version is deprecated."

    def perform(self, form):
        return services.dataset_version_deprecate(
            actor=self.request.user, version=self.object, reason=form.cleaned_data["reason"]
        )

    def success_message(self, result):
        return f"Deprecated {self.object}."


class ApprovalInboxView(LoginRequiredMixin, TemplateView):
    template_name = "governance/inbox.html"

    def get_context_data(self, **kwargs):
        page = Paginator(
            selectors.approvals_for_inbox(user=self.request.user), INBOX_PAGE_SIZE
        ).get_page(self.request.GET.get("page"))
        selectors.approvals_with_versions(page.object_list)
        return super().get_context_data(page=page, **kwargs)


class DecidedByMeView(LoginRequiredMixin, TemplateView):
    template_name = "governance/decided.html"

    def get_context_data(self, **kwargs):
        page = Paginator(
            selectors.decisions_made_by(user=self.request.user), INBOX_PAGE_SIZE
        ).get_page(self.request.GET.get("page"))
        return super().get_context_data(page=page, **kwargs)


class ApprovalDecideView(ServiceActionView):
    """Approve, or reject with a comment, in one step; back to where the form was."""

    form_class = DecisionForm
    invalid_message = "Choose approve or reject."

    def get_object(self):
        return selectors.approval_get_for_user(user=self.request.user, pk=self.kwargs["pk"])

    def perform(self, form):
        return services.approval_decide(
            actor=self.request.user,
            request=self.object,
            verdict=form.cleaned_data["verdict"],
            comment=form.cleaned_data["comment"],
        )

    def success_message(self, approval):
        verb = "Approved" if self.request.POST.get("verdict") == "approve" else "Rejected"
        return f"{verb} request #{approval.pk}; it is now {approval.state}."

    def next_url(self, result):
        return safe_return_url(
            self.request, self.request.POST.get("next"), reverse("governance:inbox")
        )


class ApprovalCancelView(ServiceActionView):
    def get_object(self):
        return selectors.approval_get_for_user(user=self.request.user, pk=self.kwargs["pk"])

    def perform(self, form):
        return services.approval_cancel(
            actor=self.request.user, request=self.object, reason=self.request.POST.get("reason", "")
        )

    def success_message(self, result):
        return f"Cancelled request #{self.object.pk}."

    def next_url(self, result):
        return safe_return_url(
            self.request, self.request.POST.get("next"), reverse("governance:inbox")
        )


class SlaDashboardView(LoginRequiredMixin, TemplateView):
    template_name = "governance/sla_dashboard.html"

    def get_context_data(self, **kwargs):
        team = self.request.GET.get("team", "")
        board = selectors.sla_dashboard_visible_to(user=self.request.user, team_slug=team)
        for row in board["rows"]:
            series = row["series"]
            row["rows_chart"] = sparkline([p["rows"] for p in series])
            row["null_chart"] = sparkline([p["max_null_rate"] for p in series])
            row["dup_chart"] = sparkline([p["duplicate_rate"] for p in series])
        return super().get_context_data(board=board, team=team, **kwargs)


class _IncidentObject(ObjectView):
    def get_object(self):
        return selectors.incident_get_for_user(user=self.request.user, pk=self.kwargs["pk"])


class IncidentDetailView(_IncidentObject, TemplateView):
    template_name = "governance/incident_detail.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            incident=self.object, actions=incident_actions(self.request.user, self.object), **kwargs
        )


class IncidentAcknowledgeView(_IncidentObject, ServiceActionView):
    def perform(self, form):
        return services.incident_acknowledge(
            actor=self.request.user, incident=self.object, note=self.request.POST.get("note", "")
        )

    def success_message(self, result):
        return "Incident acknowledged."

    def next_url(self, result):
        return reverse("governance:incident_detail", kwargs={"pk": self.object.pk})


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


class ApprovalPolicyView(ServiceActionView):
    """A team's approval policies, one form per kind of request; leads edit them."""

    template_name = "governance/policies.html"
    form_class = ApprovalPolicyForm

    def get_object(self):
        team, self.policies = selectors.policies_for_team(
            user=self.request.user, team_slug=self.kwargs["slug"]
        )
        return team

    def post(self, request, *args, **kwargs):
        manage_verdict(
            request.user, self.object, "change the approval policies of this team"
        ).require()
        return super().post(request, *args, **kwargs)

    def perform(self, form):
        data = form.cleaned_data
        return services.approvalpolicy_set(
            actor=self.request.user,
            team=self.object,
            kind=data["kind"],
            approver_roles=data["approver_roles"],
            quorum=data["quorum"],
            expiry_hours=data["expiry_hours"],
        )

    def success_message(self, policy):
        kind = ApprovalKind(policy.kind).label.lower()
        return f"Saved the {kind} policy of {self.object.name}."

    def next_url(self, result):
        return reverse("governance:policies", kwargs={"slug": self.object.slug})

    def get_context_data(self, *, form, **kwargs):
        bound = {self.request.POST.get("kind", ""): form} if form.is_bound else {}
        rows = []
        for kind, policy in self.policies.items():
            initial = {
                "kind": kind,
                "approver_roles": policy.roles if policy else default_approver_roles(kind),
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
        return {
            "team": self.object,
            "rows": rows,
            "can_manage": can_manage_team(self.request.user, self.object),
            **kwargs,
        }
