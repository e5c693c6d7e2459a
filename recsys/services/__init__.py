"""Every state change of the pipeline. One module per area; import from here."""

from recsys.services.indexes import (
    INDEX_HANDLER,
    index_activate,
    index_request_activation,
    index_rollback,
    quality_gate,
)
from recsys.services.pipelines import pipeline_create, pipeline_set_schedule
from recsys.services.runs import (
    RUN_HANDLER,
    run_cancel,
    run_execute,
    run_finish,
    run_progress,
    run_record_index_metrics,
    run_request,
    run_retry,
    runs_sweep,
)
from recsys.services.schedules import schedules_run

__all__ = [
    "INDEX_HANDLER",
    "RUN_HANDLER",
    "index_activate",
    "index_request_activation",
    "index_rollback",
    "pipeline_create",
    "pipeline_set_schedule",
    "quality_gate",
    "run_cancel",
    "run_execute",
    "run_finish",
    "run_progress",
    "run_record_index_metrics",
    "run_request",
    "run_retry",
    "runs_sweep",
    "schedules_run",
]
