"""UI of the pipeline for ops: pipelines, the trigger form, run pages with live progress,
index versions with activation and rollback. Reads through selectors, writes through services."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import TemplateView

from core.errors import ApplicationError
from governance.charts import sparkline
from governance.choices import ApprovalKind
from governance.models import DatasetVersion
from recsys import permissions, selectors, services
from recsys.choices import TERMINAL_RUN_STATES
from recsys.forms import RunRequestForm
from recsys.services.schedules import CRON_HELP
from teams import permissions as team_perms
from teams.htmx import stop_polling_when_final


class PipelineListView(LoginRequiredMixin, TemplateView):
    template_name = "recsys/pipeline_list.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            pipelines=list(selectors.pipelines_for_user(user=self.request.user)), **kwargs
        )


class PipelineDetailView(LoginRequiredMixin, TemplateView):
    template_name = "recsys/pipeline_detail.html"

    def get_context_data(self, **kwargs):
        pipeline = selectors.pipeline_get_for_user(user=self.request.user, slug=kwargs["slug"])
        runs = Paginator(
            selectors.runs_for_user(user=self.request.user, pipeline=pipeline), 20
        ).get_page(self.request.GET.get("page"))
        indexes = list(selectors.indexes_of(pipeline)[:20])
        for index in indexes:
            index.gate_ok, index.gate_detail = services.quality_gate(index)
            index.activation = selectors.approval_of(index, ApprovalKind.INDEX_ACTIVATION)
        history = [
            (ix.metrics or {}).get("fine_tuned", {}).get("ndcg@10") for ix in reversed(indexes)
        ]
        return super().get_context_data(
            pipeline=pipeline,
            runs=runs,
            indexes=indexes,
            ndcg_chart=sparkline([v for v in history if v is not None], width=320, height=60),
            active=getattr(pipeline, "active", None),
            can_run=permissions.can_run(self.request.user, pipeline),
            can_schedule=team_perms.can_manage_team(self.request.user, pipeline.owning_team),
            cron_help=CRON_HELP,
            time_zone=settings.TIME_ZONE,
            **kwargs,
        )


class RunRequestView(LoginRequiredMixin, View):
    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.pipeline = selectors.pipeline_get_for_user(user=request.user, slug=kwargs["slug"])
        if not permissions.can_run(request.user, self.pipeline):
            raise PermissionDenied(
                f"You cannot request runs of {self.pipeline.name}: only ops "
                f"and leads of {self.pipeline.owning_team.name} can."
            )
        return super().dispatch(request, *args, **kwargs)

    def _form(self, data=None):
        return RunRequestForm(
            data,
            inputs=selectors.approved_inputs(self.pipeline),
            defaults=self.pipeline.default_parameters or {},
            pipeline=self.pipeline,
        )

    def get(self, request, slug):
        return self._render(self._form())

    def post(self, request, slug):
        form = self._form(request.POST)
        if form.is_valid():
            try:
                run = services.run_request(
                    actor=request.user,
                    pipeline=self.pipeline,
                    kind=form.cleaned_data["kind"],
                    inputs=list(DatasetVersion.objects.filter(pk__in=form.input_ids())),
                    parameters=form.parameters(),
                    reason=form.cleaned_data["reason"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Requested run #{run.pk}; it waits for approvals.")
                return redirect("recsys:run_detail", pk=run.pk)
        return self._render(form, status=400)

    def _render(self, form, status=200):
        return render(
            self.request,
            "recsys/run_request.html",
            {"pipeline": self.pipeline, "form": form},
            status=status,
        )


class RunDetailView(LoginRequiredMixin, TemplateView):
    template_name = "recsys/run_detail.html"

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        return stop_polling_when_final(self.request, response, final=not context["live"])

    def get_context_data(self, **kwargs):
        user = self.request.user
        run = selectors.run_get_for_user(user=user, pk=kwargs["pk"])
        request = selectors.approval_of(run, ApprovalKind.PIPELINE_RUN)
        model = run.model_versions.first()
        curve = [p.get("loss", 0.0) for p in (model.training_curve if model else [])]
        return super().get_context_data(
            run=run,
            approval=request,
            model=model,
            index=run.index_versions.select_related("model_version").first(),
            blockers=selectors.run_blockers(run, request)
            if run.state in ("awaiting_approval", "queued")
            else [],
            input_incidents=selectors.run_input_incidents(run)
            if run.state == "awaiting_approval"
            else [],
            live=run.state not in TERMINAL_RUN_STATES,
            loss_chart=sparkline(curve, width=320, height=60),
            can_run=permissions.can_run(user, run.pipeline),
            log_tail="\n".join(run.log.splitlines()[-40:]),
            **kwargs,
        )


class _RunAction(LoginRequiredMixin, View):
    def post(self, request, pk):
        run = selectors.run_get_for_user(user=request.user, pk=pk)
        try:
            self.perform(request.user, run)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, self.done.format(run=run))
        return redirect("recsys:run_detail", pk=pk)


class RunCancelView(_RunAction):
    done = "Cancelled run #{run.pk} (a running job stops at its next step or batch)."

    def perform(self, user, run):
        services.run_cancel(actor=user, run=run)


class RunRetryView(_RunAction):
    done = "Run #{run.pk} is queued again as a new attempt."

    def perform(self, user, run):
        services.run_retry(actor=user, run=run)


class _IndexAction(LoginRequiredMixin, View):
    def post(self, request, pk):
        index = selectors.index_get_for_user(user=request.user, pk=pk)
        try:
            self.perform(request, index)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, self.done.format(index=index))
        return redirect("recsys:pipeline_detail", slug=index.pipeline.slug)


class IndexRequestActivationView(_IndexAction):
    done = "Asked {index.pipeline.owning_team.name} to approve serving index v{index.pk}."

    def perform(self, request, index):
        services.index_request_activation(
            actor=request.user, index=index, reason=request.POST.get("reason", "")
        )


class IndexActivateView(_IndexAction):
    done = "Index v{index.pk} is now served."

    def perform(self, request, index):
        services.index_activate(actor=request.user, index=index)


class ScheduleView(LoginRequiredMixin, View):
    def post(self, request, slug):
        pipeline = selectors.pipeline_get_for_user(user=request.user, slug=slug)
        try:
            pipeline = services.pipeline_set_schedule(
                actor=request.user, pipeline=pipeline, schedule=request.POST.get("schedule", "")
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                f"Retrains of {pipeline.name} are scheduled at '{pipeline.schedule}' (cron, "
                f"{settings.TIME_ZONE})."
                if pipeline.schedule
                else f"{pipeline.name} has no schedule any more.",
            )
        return redirect("recsys:pipeline_detail", slug=slug)


class RollbackView(LoginRequiredMixin, View):
    def post(self, request, slug):
        pipeline = selectors.pipeline_get_for_user(user=request.user, slug=slug)
        try:
            pointer = services.index_rollback(actor=request.user, pipeline=pipeline)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Rolled back: index v{pointer.index_id} is served again.")
        return redirect("recsys:pipeline_detail", slug=slug)
