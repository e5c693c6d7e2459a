"""The pipeline: an owned pipeline, its runs, and the model and index versions they produce."""

from django.conf import settings
from django.db import models

from core.models import GovernedSubject
from recsys.choices import IndexStatus, RunKind, RunState
from recsys.constants import RUN_QUEUES


class Pipeline(GovernedSubject):
    """A governed, owned pipeline (like a data asset): its runs need the approval of every team
    owning one of its inputs plus its own team."""

    owning_team = models.ForeignKey(
        "teams.Team", on_delete=models.PROTECT, related_name="pipelines"
    )
    input_assets = models.ManyToManyField("governance.DataAsset", related_name="pipelines")
    default_parameters = models.JSONField(default=dict, blank=True)
    schedule = models.CharField(
        max_length=60,
        blank=True,
        help_text="Optional cron expression (m h dom mon dow): requests a full retrain.",
    )
    schedule_last_slot = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The latest cron slot handled (a retrain requested or skipped for it).",
    )


class PipelineRun(models.Model):
    """One requested run; the row is the only truth about its state (never Celery results)."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=24, choices=RunKind.choices)
    state = models.CharField(max_length=24, choices=RunState.choices, default=RunState.REQUESTED)
    inputs = models.ManyToManyField("governance.DatasetVersion", related_name="pipeline_runs")
    inputs_hash = models.CharField(max_length=64)
    parameters = models.JSONField(default=dict)
    parameters_hash = models.CharField(max_length=64)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pipeline_runs"
    )
    reason = models.TextField()
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    attempt = models.PositiveIntegerField(default=0)
    job_key = models.CharField(max_length=32, unique=True)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=60, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    outputs = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.pipeline}"

    @property
    def queue(self) -> str:
        """The Celery queue its kind's jobs are sent to."""
        return RUN_QUEUES[self.kind]


class ModelVersion(models.Model):
    """A fine-tuned encoder (safetensors + tokenizer + config + curve) and its metrics."""

    run = models.ForeignKey(PipelineRun, on_delete=models.PROTECT, related_name="model_versions")
    base_model = models.CharField(max_length=300)
    path = models.CharField(max_length=500)
    checksum = models.CharField(max_length=64)
    config = models.JSONField(default=dict)
    training_curve = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Model v{self.pk} (run #{self.run_id})"


class IndexVersion(models.Model):
    """A FAISS index built from a model version over a catalog version."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="indexes")
    run = models.ForeignKey(PipelineRun, on_delete=models.PROTECT, related_name="index_versions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    catalog_version = models.ForeignKey(
        "governance.DatasetVersion", on_delete=models.PROTECT, related_name="+"
    )
    path = models.CharField(max_length=500)
    checksum = models.CharField(max_length=64)
    kind = models.CharField(max_length=24)
    n_items = models.PositiveIntegerField()
    dim = models.PositiveIntegerField()
    build_params = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=IndexStatus.choices, default=IndexStatus.CANDIDATE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Index v{self.pk} of {self.pipeline}"


class ActiveIndex(models.Model):
    """The pointer to the index a pipeline serves; switched in one transaction."""

    pipeline = models.OneToOneField(Pipeline, on_delete=models.CASCADE, related_name="active")
    index = models.ForeignKey(IndexVersion, on_delete=models.PROTECT, related_name="+")
    previous = models.ForeignKey(
        IndexVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.pipeline} serves {self.index}"


class ConsoleQuery(models.Model):
    """A query someone ran in the search console (their recent queries; a log, pruned to the
    newest CONSOLE_HISTORY per user)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_queries"
    )
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    query = models.CharField(max_length=512)
    mode = models.CharField(max_length=16)
    k = models.PositiveSmallIntegerField()
    filters = models.JSONField(default=dict, blank=True)
    index_version = models.ForeignKey(
        IndexVersion, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return self.query


class SavedQuerySet(models.Model):
    """A named list of queries to compare index versions on later."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_query_sets"
    )
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    queries = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_query_set_name")
        ]

    def __str__(self) -> str:
        return self.name
