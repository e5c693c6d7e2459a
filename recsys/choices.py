"""Enumerations of the pipeline."""

from django.db import models


class RunKind(models.TextChoices):
    FULL_RETRAIN = "full_retrain", "Full retrain (clean → pairs → fine-tune → index → evaluate)"
    CLEAN = "clean", "Clean the catalog"
    FINE_TUNE = "fine_tune", "Fine-tune (clean → pairs → fine-tune → evaluate; no index)"
    BUILD_INDEX = "build_index", "Build index (clean → embed + index with a model → evaluate)"
    EVALUATE = "evaluate", "Evaluate an index version on held-out queries"


class RunState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_RUN_STATES = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}


class IndexStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
