"""`load_demo`: the four steps of a demo load, one load at a time (see the package docstring)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from django.conf import settings

from recsys.demo.approvals import approve_version
from recsys.demo.dataset import check_demo_files, demo_files
from recsys.demo.errors import DemoLoadError, Say
from recsys.demo.pipeline import DEMO_PIPELINE
from recsys.demo.runs import activate, active_index, retrain, run_parameters, served_index
from recsys.demo.versions import find_version, import_versions
from recsys.models import IndexVersion, Pipeline

DEMO_MAX_STEPS = 20  # about one pass over the synthetic pairs; more overfits them and costs time
DEMO_TIMEOUT_SECONDS = 1800


def load_demo(
    *,
    data: str | None = None,
    base_model: str = "",
    max_steps: int = DEMO_MAX_STEPS,
    timeout: float = DEMO_TIMEOUT_SECONDS,
    say: Say = print,
) -> IndexVersion:
    """Load the demo (see the module docstring); returns the index served at the end."""
    pipeline = Pipeline.objects.filter(slug=DEMO_PIPELINE).select_related("owning_team").first()
    if pipeline is None:
        raise DemoLoadError(
            f"The demo pipeline '{DEMO_PIPELINE}' is missing: run `python manage.py seed_demo` "
            "first."
        )
    parameters = run_parameters(base_model, max_steps)
    with _single_load():
        with tempfile.TemporaryDirectory(prefix="load-demo-") as scratch:
            files = demo_files(data, Path(scratch), say=say)
            found = {f.role: find_version(f) for f in files}
            served = served_index(pipeline, found)
            if served is not None:
                active = active_index(pipeline) or served
                now = "" if active == served else f"; {active} is served now"
                say(
                    f"Nothing to do: {served} was built from these demo versions "
                    f"({', '.join(str(v) for v in found.values())}) and has been served{now}."
                )
                return active
            say("==> 1/4 Dataset versions of the demo assets")
            check_demo_files([f for f in files if found[f.role] is None])
            versions = import_versions(files, found, say)
        say("==> 2/4 Approval of the dataset versions by their stewards")
        versions = [approve_version(v, say) for v in versions]
        say(f"==> 3/4 Full retrain of {pipeline.name}")
        run = retrain(pipeline, versions, parameters, timeout=timeout, say=say)
        say("==> 4/4 Activation of the new index")
        return activate(run, say)


@contextlib.contextmanager
def _single_load():
    """One load at a time per VAR_DIR (two would race to upload the same versions)."""
    path = Path(settings.VAR_DIR) / "load_demo.lock"
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoLoadError(
                "Another load_demo is running on this var folder; wait for it to finish."
            ) from None
        handle.write(json.dumps({"pid": os.getpid()}))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
