"""Numbers of the pipeline used in more than one place."""

# Parameters a run accepts: name -> (type, default, min, max). Validated by run_request.
RUN_PARAMETERS = {
    "base_model": (str, "", None, None),
    "epochs": (int, 1, 1, 20),
    "batch_size": (int, 32, 2, 256),
    "max_length": (int, 64, 16, 512),
    "lr": (float, 2e-5, 1e-7, 1e-2),
    "max_steps": (int, None, 1, 1_000_000),
    "min_grade": (int, 2, 0, 3),
    "held_out_fraction": (float, 0.2, 0.05, 0.5),
    "seed": (int, 13, 0, 2**31 - 1),
    # Versions a single-step run works on (ids; resolved and pinned in the parameters hash).
    "model_version": (int, None, 1, 2**31 - 1),
    "index_version": (int, None, 1, 2**31 - 1),
}
# The run kind that takes each version parameter; no other kind (nor a pipeline default) may.
VERSION_PARAMETERS = {"model_version": "build_index", "index_version": "evaluate"}
# Parameters of the held-out split: an evaluation of an existing model reuses its run's values,
# so that it scores the model on the queries it did not train on.
SPLIT_PARAMETERS = ("min_grade", "held_out_fraction", "seed")
QUALITY_GATE_TOLERANCE_DEFAULT = 0.01  # nDCG@10 may drop at most 1 point vs the active index
RUN_LOG_MAX_CHARS = 200_000
# The Celery queue of each run kind, so that hosts can take the kinds they are built for: a
# fine-tuning host (a GPU, see STEWARD_PIPELINE_DEVICE) listens on "train", an embedding and
# indexing host on "index", cleaning shares "clean" with dataset profiling.
RUN_QUEUES = {
    "full_retrain": "train",
    "fine_tune": "train",
    "build_index": "index",
    "evaluate": "index",
    "clean": "clean",
}
