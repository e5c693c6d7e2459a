"""UI of the pipeline for ops: pipelines, the trigger form, run pages with live progress,
index versions with activation and rollback. Reads through selectors, writes through services."""

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.urls import reverse
from django.views.generic import TemplateView

from core.charts import sparkline
from core.views import ObjectView, ServiceActionView
from governance import selectors as gov_selectors
from recsys import permissions, selectors, services
from recsys.actions import index_actions, pipeline_actions, run_actions
from recsys.choices import TERMINAL_RUN_STATES, RunState
from recsys.forms import RunRequestForm
from recsys.services.schedules import CRON_HELP
from teams.htmx import stop_polling_when_final


class PipelineListView(LoginRequiredMixin, TemplateView):
    template_name = "recsys/pipeline_list.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            pipelines=list(selectors.pipelines_visible_to(user=self.request.user)), **kwargs
        )


class _PipelineObject(ObjectView):
    def get_object(self):
        return selectors.pipeline_get_for_user(user=self.request.user, slug=self.kwargs["slug"])


class PipelineDetailView(_PipelineObject, TemplateView):
    template_name = "recsys/pipeline_detail.html"

    def get_context_data(self, **kwargs):
        pipeline = self.object
        active = getattr(pipeline, "active", None)
        runs = Paginator(
            selectors.runs_visible_to(user=self.request.user, pipeline=pipeline), 20
        ).get_page(self.request.GET.get("page"))
        indexes = list(selectors.indexes_of(pipeline)[:20])
        activations = gov_selectors.approvals_latest_for(indexes)
        for index in indexes:
            index.gate_ok, index.gate_detail = services.quality_gate(index)
            index.activation = activations.get(index.pk)
            index.actions = index_actions(self.request.user, index, activation=index.activation)
        history = [
            (ix.metrics or {}).get("fine_tuned", {}).get("ndcg@10") for ix in reversed(indexes)
        ]
        return super().get_context_data(
            pipeline=pipeline,
            runs=runs,
            indexes=indexes,
            ndcg_chart=sparkline([v for v in history if v is not None], width=320, height=60),
            active=active,
            actions=pipeline_actions(self.request.user, pipeline, active=active),
            cron_help=CRON_HELP,
            time_zone=settings.TIME_ZONE,
            **kwargs,
        )


class _RunObject(ObjectView):
    def get_object(self):
        return selectors.run_get_for_user(user=self.request.user, pk=self.kwargs["pk"])


class _IndexObject(ObjectView):
    def get_object(self):
        return selectors.index_get_for_user(user=self.request.user, pk=self.kwargs["pk"])


class RunRequestView(_PipelineObject, ServiceActionView):
    template_name = "recsys/run_request.html"
    form_class = RunRequestForm

    def check(self):
        pipeline = self.object
        permissions.run_verdict(
            self.request.user, pipeline, f"request runs of {pipeline.name}"
        ).require()

    def build_form(self, data=None):
        return RunRequestForm(
            data,
            inputs=selectors.inputs_approved_for(self.object),
            defaults=self.object.default_parameters or {},
            pipeline=self.object,
        )

    def perform(self, form):
        return services.run_request(
            actor=self.request.user,
            pipeline=self.object,
            kind=form.cleaned_data["kind"],
            inputs=form.input_ids(),
            parameters=form.parameters(),
            reason=form.cleaned_data["reason"],
        )

    def error_field(self, exc, form):
        return None

    def success_message(self, run):
        return f"Requested run #{run.pk}; it waits for approvals."

    def next_url(self, run):
        return reverse("recsys:run_detail", kwargs={"pk": run.pk})

    def get_context_data(self, **kwargs):
        return {"pipeline": self.object, **kwargs}


class RunDetailView(_RunObject, TemplateView):
    template_name = "recsys/run_detail.html"

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        return stop_polling_when_final(self.request, response, final=not context["live"])

    def get_context_data(self, **kwargs):
        user, run = self.request.user, self.object
        request = gov_selectors.approval_latest_for(run)
        model = run.model_versions.first()
        curve = [p.get("loss", 0.0) for p in (model.training_curve if model else [])]
        waiting = run.state in (RunState.AWAITING_APPROVAL, RunState.QUEUED)
        return super().get_context_data(
            run=run,
            approval=request,
            model=model,
            index=run.index_versions.select_related("model_version").first(),
            blockers=selectors.blockers_of(run, request) if waiting else [],
            input_incidents=selectors.incidents_open_on_inputs_of(run)
            if run.state == RunState.AWAITING_APPROVAL
            else [],
            live=run.state not in TERMINAL_RUN_STATES,
            queued=run.state == RunState.QUEUED,
            cancelling=run.state == RunState.RUNNING and run.cancel_requested,
            actions=run_actions(user, run),
            loss_chart=sparkline(curve, width=320, height=60),
            can_run=permissions.can_run(user, run.pipeline),
            log_tail="\n".join(run.log.splitlines()[-40:]),
            **kwargs,
        )


class _RunAction(_RunObject, ServiceActionView):
    def next_url(self, result):
        return reverse("recsys:run_detail", kwargs={"pk": self.object.pk})


class RunCancelView(_RunAction):
    def perform(self, form):
        return services.run_cancel(actor=self.request.user, run=self.object)

    def success_message(self, run):
        return f"Cancelled run #{run.pk} (a running job stops at its next step or batch)."


class RunRetryView(_RunAction):
    def perform(self, form):
        return services.run_retry(actor=self.request.user, run=self.object)

    def success_message(self, run):
        return f"Run #{run.pk} is queued again as a new attempt."


class _IndexAction(_IndexObject, ServiceActionView):
    def next_url(self, result):
        return reverse("recsys:pipeline_detail", kwargs={"slug": self.object.pipeline.slug})


class IndexRequestActivationView(_IndexAction):
    def perform(self, form):
        return services.index_request_activation(
            actor=self.request.user, index=self.object, reason=self.request.POST.get("reason", "")
        )

    def success_message(self, result):
        index = self.object
        return f"Asked {index.pipeline.owning_team.name} to approve serving index v{index.pk}."


class IndexActivateView(_IndexAction):
    def perform(self, form):
        return services.index_activate(actor=self.request.user, index=self.object)

    def success_message(self, result):
        return f"Index v{self.object.pk} is now served."


class _PipelineAction(_PipelineObject, ServiceActionView):
    def next_url(self, result):
        return reverse("recsys:pipeline_detail", kwargs={"slug": self.object.slug})


class ScheduleView(_PipelineAction):
    def perform(self, form):
        return services.pipeline_set_schedule(
            actor=self.request.user,
            pipeline=self.object,
            schedule=self.request.POST.get("schedule", ""),
        )

    def success_message(self, pipeline):
        if not pipeline.schedule:
            return f"{pipeline.name} has no schedule any more."
        return (
            f"Retrains of {pipeline.name} are scheduled at '{pipeline.schedule}' (cron, "
            f"{settings.TIME_ZONE})."
        )


class RollbackView(_PipelineAction):
    def perform(self, form):
        return services.index_rollback(actor=self.request.user, pipeline=self.object)

    def success_message(self, pointer):
        return f"Rolled back: index v{pointer.index_id} is served again."
