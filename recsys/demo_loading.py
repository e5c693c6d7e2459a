"""Loading the demo end to end (`python manage.py load_demo`).

1. The demo data (generated, or a real set given with `data`) is stored as dataset versions of
   the demo assets, uploaded by each owning team's demo engineer and profiled.
2. The versions are approved by the demo stewards of the owning teams.
3. A full retrain of the demo pipeline is requested by the demo ops user, approved by a demo
   approver of every required team, and run by a Celery worker: one that already answers, or
   one started for the duration of the load.
4. Its index is approved by the search-ops lead and activated.

Every change goes through the services, so the audit trail reads as if the demo users had
clicked through the product. Each step first looks for what an earlier load did (versions by
checksum, runs by their inputs, the index by its run), so a second load finds everything done
and changes nothing. A human "no" (a rejected version, run or activation) is never overridden:
the load stops and says so. Failures raise DemoLoadError with a message for the operator.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.files import File
from django.db import connection, transaction

from config.celery import QUEUES, worker_argv
from core.errors import ApplicationError
from core.hashing import sha256_file
from data import demo_generator as gen
from governance import services as gov
from governance.choices import ApprovalKind, ApprovalState, ProfileStatus, VersionStatus
from governance.deciders import excluded_persons
from governance.models import ApprovalRequest, DataAsset, DatasetVersion, Decision
from recsys import services
from recsys.choices import TERMINAL_RUN_STATES, IndexStatus, RunKind, RunState
from recsys.demo import DEMO_PIPELINE
from recsys.models import ActiveIndex, IndexVersion, Pipeline, PipelineRun
from recsys.services.runs import inputs_fingerprint
from teams.demo import demo_users
from teams.models import Membership

Say = Callable[[str], None]

DEMO_MAX_STEPS = 20  # about one pass over the synthetic pairs; more overfits them and costs time
DEMO_TIMEOUT_SECONDS = 1800
GENERATED_PRODUCTS = 3000
GENERATED_SEED = 2026
# The generated catalog lacks the EAN of 6% of its products, over the SLA's 5% null-rate limit:
# approving it opens an incident that the catalog's steward meets on the SLA dashboard.
GENERATED_MISSING_EANS = 0.06
RUN_REQUESTER = "ops.ops"  # the demo ops user of search-ops, which owns the demo pipeline
WORKER_QUEUES = ",".join(QUEUES)
WORKER_STOP_SECONDS = 60

# role of a file in a demo data set -> (asset slug, asset kind for the column checks)
ROLES = {
    "catalog": ("product-catalog", "product_catalog"),
    "labels": ("relevance-labels", "relevance_labels"),
    "events": ("behaviour-events", "behaviour_events"),
}
REQUIRED_ROLES = ("catalog", "labels")
LAYOUT_HELP = (
    "Give a folder in the chorus-icecat layout (*.json.zip product files and judgments.csv) "
    "or the generic layout (catalog.*, labels.* and optionally events.*, each .csv, .tsv, "
    ".jsonl, .json or .parquet, optionally .gz): see docs/demo-data.md."
)


class DemoLoadError(Exception):
    """The demo cannot be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class DemoFile:
    """One file of a demo data set, as it will be uploaded."""

    role: str  # catalog, labels or events
    path: Path
    name: str  # the upload name
    fmt: str
    note: str
    sha256: str

    @property
    def asset_slug(self) -> str:
        return ROLES[self.role][0]


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
    parameters = _run_parameters(base_model, max_steps)
    with _single_load():
        with tempfile.TemporaryDirectory(prefix="load-demo-") as scratch:
            files = demo_files(data, Path(scratch), say=say)
            found = {f.role: _find_version(f) for f in files}
            served = _served_index(pipeline, found)
            if served is not None:
                active = _active_index(pipeline) or served
                now = "" if active == served else f"; {active} is served now"
                say(
                    f"Nothing to do: {served} was built from these demo versions "
                    f"({', '.join(str(v) for v in found.values())}) and has been served{now}."
                )
                return active
            say("==> 1/4 Dataset versions of the demo assets")
            check_demo_files([f for f in files if found[f.role] is None])
            versions = _import_versions(files, found, say)
        say("==> 2/4 Approval of the dataset versions by their stewards")
        versions = [_approve_version(v, say) for v in versions]
        say(f"==> 3/4 Full retrain of {pipeline.name}")
        run = _retrain(pipeline, versions, parameters, timeout=timeout, say=say)
        say("==> 4/4 Activation of the new index")
        return _activate(run, say)


# --- the data set -------------------------------------------------------------------------------


def demo_files(data: str | None, scratch: Path, *, say: Say = print) -> list[DemoFile]:
    """The files to load: generated into VAR_DIR/demo-data, or found under `data`."""
    if not data:
        folder = Path(settings.VAR_DIR) / "demo-data"
        files = generate_demo_data(folder)
        say(f"==> Demo data: synthetic, generated by data/demo_generator.py into {folder}")
        return files
    path = Path(data).expanduser()
    if not path.exists():
        raise DemoLoadError(f"--data {data}: no such file or folder. {LAYOUT_HELP}")
    if not path.is_dir():
        raise DemoLoadError(f"--data {data} is a file, not a folder. {LAYOUT_HELP}")
    if list(path.glob("*.json.zip")) or (path / "judgments.csv").exists():
        files = _chorus_files(path, scratch)
        say(f"==> Demo data: the chorus-icecat set in {path}")
    else:
        files = _generic_files(path)
        say(f"==> Demo data: {', '.join(f.path.name for f in files)} in {path}")
    return files


def generate_demo_data(
    folder: Path, *, products: int = GENERATED_PRODUCTS, seed: int = GENERATED_SEED
) -> list[DemoFile]:
    """Write the synthetic demo set (deterministic: same bytes on every call) into `folder`."""
    catalog = gen.catalog_rows(
        products, seed=seed, missing_eans=GENERATED_MISSING_EANS, attributes=True
    )
    tables = {
        "catalog": catalog,
        "labels": gen.queries_and_labels(catalog, seed=seed + 1),
        "events": gen.behaviour_events(catalog, seed=seed + 2, with_queries=True),
    }
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for role, rows in tables.items():
        path = folder / f"{role}.csv"
        text = gen.to_csv(rows).encode()
        if not path.exists() or path.read_bytes() != text:
            path.write_bytes(text)
        files.append(
            DemoFile(
                role=role,
                path=path,
                name=f"synthetic-{role}.csv",
                fmt="csv",
                note=f"Demo {role}: {gen.SYNTHETIC_NOTE}, seed {seed}",
                sha256=hashlib.sha256(text).hexdigest(),
            )
        )
    return files


def _chorus_files(folder: Path, scratch: Path) -> list[DemoFile]:
    products = sorted(folder.glob("*.json.zip"))
    judgments = folder / "judgments.csv"
    if not products or not judgments.is_file():
        lacking = "*.json.zip product files" if not products else "judgments.csv"
        raise DemoLoadError(
            f"--data {folder} looks like the chorus-icecat layout but has no {lacking}. "
            f"{LAYOUT_HELP}"
        )
    bundle = _bundle_zips(products, scratch / f"{folder.name}-products.zip")
    return [
        DemoFile(
            role="catalog",
            path=bundle,
            name=bundle.name,
            fmt="chorus-products",
            note=f"Demo catalog: Icecat products from {folder.name} "
            f"({', '.join(p.name for p in products)})",
            sha256=sha256_file(bundle),
        ),
        DemoFile(
            role="labels",
            path=judgments,
            name="judgments.csv",
            fmt="chorus-judgments",
            note=f"Demo labels: Chorus relevance judgments from {folder.name}",
            sha256=sha256_file(judgments),
        ),
    ]


def _bundle_zips(members: list[Path], target: Path) -> Path:
    """One zip holding every member of `members`, byte-identical on every call (fixed member
    times and order), so a second load recognises the version it stored before."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for member_zip in members:
            try:
                with zipfile.ZipFile(member_zip) as inner:
                    for info in inner.infolist():
                        if info.is_dir():
                            continue
                        entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                        entry.compress_type = zipfile.ZIP_DEFLATED
                        entry.external_attr = 0o644 << 16
                        with inner.open(info) as src, out.open(entry, "w") as dst:
                            while chunk := src.read(1024 * 1024):
                                dst.write(chunk)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DemoLoadError(f"{member_zip} is not a readable zip file: {exc}") from None
    return target


def _generic_files(folder: Path) -> list[DemoFile]:
    from governance import profiling

    files = []
    for role in ROLES:
        candidates = sorted(
            p for p in folder.iterdir() if p.is_file() and p.name.split(".", 1)[0] == role
        )
        if not candidates:
            if role in REQUIRED_ROLES:
                raise DemoLoadError(f"--data {folder} has no {role} file. {LAYOUT_HELP}")
            continue
        if len(candidates) > 1:
            raise DemoLoadError(
                f"--data {folder} has several {role} files "
                f"({', '.join(p.name for p in candidates)}): keep one."
            )
        path = candidates[0]
        with path.open("rb") as handle:
            head = handle.read(8192)
        try:
            fmt = profiling.detect_format(path.name, head)
        except profiling.DatasetReadError as exc:
            raise DemoLoadError(f"{path}: {exc.message}") from None
        files.append(
            DemoFile(
                role=role,
                path=path,
                name=path.name,
                fmt=fmt,
                note=f"Demo {role} from {folder.name}/{path.name}",
                sha256=sha256_file(path),
            )
        )
    return files


def check_demo_files(files: list[DemoFile]) -> None:
    """Refuse, before anything is stored, a file that cannot be read or lacks the columns the
    pipeline needs (known aliases accepted). Reads only the first rows of each file."""
    from governance import profiling
    from recsys.pipelines.cleaning import ALIASES, REQUIRED

    for file in files:
        kind = ROLES[file.role][1]
        if file.path.stat().st_size == 0:
            raise DemoLoadError(f"{file.path} is empty.")
        try:
            with contextlib.closing(
                profiling.iter_frames(file.path, fmt=file.fmt, chunk_rows=500)
            ) as frames:
                frame = next(frames, None)
        except profiling.DatasetReadError as exc:
            raise DemoLoadError(f"{file.path}: {exc.message}") from None
        if frame is None:
            raise DemoLoadError(f"{file.path} has no rows.")
        columns = {ALIASES[kind].get(str(c), str(c)) for c in frame.columns}
        missing = [c for c in REQUIRED[kind] if c not in columns]
        if missing:
            raise DemoLoadError(
                f"{file.path} lacks the column(s) {', '.join(missing)} that "
                f"{kind.replace('_', ' ')} need (it has: {', '.join(map(str, frame.columns))})."
            )


# --- 1. dataset versions ------------------------------------------------------------------------


def _asset(slug: str) -> DataAsset:
    asset = DataAsset.objects.select_related("owning_team").filter(slug=slug).first()
    if asset is None:
        raise DemoLoadError(
            f"The demo asset '{slug}' is missing: run `python manage.py seed_demo`."
        )
    return asset


def _find_version(file: DemoFile) -> DatasetVersion | None:
    """The version an earlier load stored from the same bytes; refuses when a steward turned
    it down (the load does not override that decision)."""
    versions = DatasetVersion.objects.select_related("asset").filter(
        asset__slug=file.asset_slug, sha256=file.sha256
    )
    usable = versions.exclude(status__in=[VersionStatus.REJECTED, VersionStatus.DEPRECATED])
    version = usable.order_by("-number").first()
    if version is not None:
        return version
    refused = versions.order_by("-number").first()
    if refused is not None:
        raise DemoLoadError(
            f"{refused} holds this {file.role} data and was {refused.status}: the demo load "
            "does not override a steward's decision. Load other data with --data, or upload "
            "it again from the product."
        )
    return None


def _import_versions(files: list[DemoFile], found: dict, say: Say) -> list[DatasetVersion]:
    """Upload the files not stored yet (all in one transaction), then profile what is not."""
    versions = dict(found)
    with transaction.atomic():
        for file in files:
            version = found[file.role]
            if version is not None:
                say(f"   {version}: already stored ({file.name})")
                continue
            asset = _asset(file.asset_slug)
            uploader = _demo_member(asset.owning_team, ("engineer",))
            if uploader is None:
                raise DemoLoadError(
                    f"No demo engineer in {asset.owning_team.name} to upload {asset.name}: "
                    "run `python manage.py seed_demo`."
                )
            with file.path.open("rb") as handle:
                version = _call(
                    gov.dataset_version_upload,
                    actor=uploader,
                    asset=asset,
                    file=File(handle, name=file.name),
                    name=file.name,
                    fmt=file.fmt,
                    note=file.note,
                    submit=True,
                )
            versions[file.role] = version
            say(
                f"   {version}: uploaded {file.name} ({version.size_bytes:,} bytes) "
                f"as {uploader.get_username()}"
            )
    result = []
    for file in files:
        version = versions[file.role]
        if version.profile_status in (ProfileStatus.PENDING, ProfileStatus.RUNNING):
            # Profiled here so the load goes on at once; a worker's copy of the job is a no-op.
            gov.dataset_version_profile(version_id=version.pk)
        version = DatasetVersion.objects.select_related("asset").get(pk=version.pk)
        if version.profile_status == ProfileStatus.FAILED:
            raise DemoLoadError(f"Profiling {version} failed: {version.profile_error}")
        if found[file.role] is None:
            sla = version.sla_results or {}
            say(
                f"   {version}: profiled, {version.row_count:,} rows, SLA "
                f"{'met' if sla.get('ok', True) else 'breached'}{_schema_note(version)}"
            )
        result.append(version)
    return result


def _schema_note(version: DatasetVersion) -> str:
    schema = (version.profile or {}).get("schema") or {}
    if schema.get("ok", True):
        return ""
    missing = schema.get("missing") or []
    detail = f" (missing: {', '.join(map(str, missing))})" if missing else ""
    return f"; its schema contract check fails{detail}, approved anyway as demo data"


# --- 2. approvals -------------------------------------------------------------------------------


def _approve_version(version: DatasetVersion, say: Say) -> DatasetVersion:
    if version.status in (VersionStatus.APPROVED, VersionStatus.SUPERSEDED):
        say(f"   {version}: already approved")
        return version
    if version.status == VersionStatus.DRAFT:  # its request expired or was cancelled
        _call(
            gov.dataset_version_submit,
            actor=version.uploaded_by,
            version=version,
            reason=version.note,
        )
    request = _pending_request(ApprovalKind.DATASET_VERSION, version.pk)
    if request is None:
        raise DemoLoadError(f"{version} is {version.status} but has no pending approval request.")
    _approve_as_demo(request, subject=str(version), prefer=("steward", "lead"), say=say)
    version = DatasetVersion.objects.select_related("asset").get(pk=version.pk)
    if version.status != VersionStatus.APPROVED:
        raise DemoLoadError(f"{version} is {version.status} after its approval.")
    return version


def _pending_request(kind: str, subject_id: int) -> ApprovalRequest | None:
    return (
        ApprovalRequest.objects.filter(
            kind=kind, subject_id=subject_id, state=ApprovalState.PENDING
        )
        .order_by("-id")
        .first()
    )


def _approve_as_demo(request: ApprovalRequest, *, subject: str, prefer, say: Say) -> None:
    """Approve as demo members of every required team until each team's quorum is met."""
    requirements = list(request.requirements.select_related("team").order_by("id"))
    for requirement in requirements:
        while True:
            requirement.refresh_from_db(fields=["approvals"])
            request.refresh_from_db(fields=["state"])
            if (
                request.state != ApprovalState.PENDING
                or requirement.approvals >= requirement.quorum
            ):
                break
            roles = [r for r in requirement.approver_roles.split(",") if r]
            decided = Decision.objects.filter(request=request).values("approver_id")
            approver = _demo_member(
                requirement.team,
                roles,
                prefer=prefer,
                exclude=list(excluded_persons(request)),
                exclude_query=decided,
            )
            if approver is None:
                raise DemoLoadError(
                    f"No demo user of {requirement.team.name} can approve {subject}: it needs "
                    f"{requirement.quorum} approval(s) from its {' or '.join(roles)}s."
                )
            _call(
                gov.approval_decide,
                actor=approver,
                request=request,
                verdict="approve",
                comment="Demo data loaded by load_demo.",
            )
            say(f"   {subject}: approved by {approver.get_username()} ({requirement.team.name})")
    request.refresh_from_db(fields=["state"])
    if request.state != ApprovalState.APPROVED:
        raise DemoLoadError(f"The approval of {subject} is {request.state}.")


def _demo_member(team, roles, *, prefer=(), exclude=(), exclude_query=None):
    """A demo user of `team` with one of `roles` (the `prefer` order first), or None."""
    demo_names = [username for username, _team, _role in demo_users()]
    members = Membership.objects.filter(
        team=team, role__in=list(roles), user__is_active=True, user__username__in=demo_names
    ).exclude(user_id__in=list(exclude))
    if exclude_query is not None:
        members = members.exclude(user_id__in=exclude_query)
    order = {role: i for i, role in enumerate(prefer)}
    ranked = sorted(
        members.select_related("user"),
        key=lambda m: (order.get(m.role, len(order)), m.user.username),
    )
    return ranked[0].user if ranked else None


def _user(username: str):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise DemoLoadError(
            f"The demo user {username} is missing: run `python manage.py seed_demo`."
        )
    return user


# --- 3. the full retrain ------------------------------------------------------------------------


def _run_parameters(base_model: str, max_steps: int) -> dict:
    if base_model and not (Path(base_model).expanduser() / "config.json").is_file():
        raise DemoLoadError(
            f"--base-model {base_model}: no such model folder (a folder with the model's "
            "config.json, tokenizer and weights)."
        )
    parameters = {"max_steps": max_steps}
    if base_model:
        parameters["base_model"] = str(Path(base_model).expanduser().resolve())
    return parameters


def _served_index(pipeline: Pipeline, found: dict) -> IndexVersion | None:
    """An index of the pipeline built from exactly the versions found (all of them stored
    already) that has been served: then the demo is loaded."""
    versions = list(found.values())
    if not all(versions):
        return None
    built = IndexVersion.objects.filter(
        pipeline=pipeline, run__inputs_hash=inputs_fingerprint(versions), activated_at__isnull=False
    )
    return built.filter(status=IndexStatus.ACTIVE).first() or built.order_by("-id").first()


def _active_index(pipeline: Pipeline) -> IndexVersion | None:
    active = ActiveIndex.objects.filter(pipeline=pipeline).select_related("index").first()
    return active.index if active else None


def _retrain(pipeline, versions, parameters, *, timeout: float, say: Say) -> PipelineRun:
    runs = PipelineRun.objects.filter(
        pipeline=pipeline, kind=RunKind.FULL_RETRAIN, inputs_hash=inputs_fingerprint(versions)
    ).order_by("-id")
    done = runs.filter(state=RunState.SUCCEEDED).first()
    if done is not None and IndexVersion.objects.filter(run=done).exists():
        say(f"   run #{done.pk}: already succeeded")
        return done
    in_flight = [RunState.AWAITING_APPROVAL, RunState.QUEUED, RunState.RUNNING]
    if runs.filter(state=RunState.RUNNING).exists():
        services.runs_sweep()  # fails a run whose worker is gone (an earlier load was killed)
    run = runs.filter(state__in=in_flight).first()
    if run is not None:
        say(f"   run #{run.pk}: continuing ({run.get_state_display().lower()})")
        if run.state == RunState.RUNNING and run.heartbeat_at:
            say(
                f"   run #{run.pk}: its worker last reported at {run.heartbeat_at:%H:%M:%S}; "
                "the sweep fails it if it stays silent for "
                f"{settings.STEWARD_RUN_WORKER_LOST_AFTER_SECONDS}s"
            )
    else:
        last = runs.first()
        if last is not None:
            _refuse_if_rejected(last)
            reason = (last.error or "no reason given").strip().splitlines()[0]
            say(f"   run #{last.pk} {last.state} ({reason}): requesting anew")
        run = _call(
            services.run_request,
            actor=_user(RUN_REQUESTER),
            pipeline=pipeline,
            kind=RunKind.FULL_RETRAIN,
            inputs=versions,
            parameters=parameters,
            reason="Demo: fine-tune and index the demo data (python manage.py load_demo).",
        )
        shown = ", ".join(
            f"{k} {v}" for k, v in sorted(run.parameters.items()) if v not in ("", None)
        )
        say(f"   run #{run.pk}: requested by {RUN_REQUESTER} ({shown})")
    with DemoWorker(say=say) as worker:
        try:
            if run.state == RunState.AWAITING_APPROVAL:
                request = _pending_request(ApprovalKind.PIPELINE_RUN, run.pk)
                if request is None:
                    raise DemoLoadError(f"Run #{run.pk} awaits an approval that is not pending.")
                _approve_as_demo(
                    request, subject=f"run #{run.pk}", prefer=("steward", "lead"), say=say
                )
            _wait_for_run(run, worker, timeout=timeout, say=say)
        except BaseException:  # a failure or an interrupt: the run must not go on unattended
            _cancel_quietly(run)
            raise
    return PipelineRun.objects.get(pk=run.pk)


def _latest_request(kind: str, subject_id: int) -> ApprovalRequest | None:
    return ApprovalRequest.objects.filter(kind=kind, subject_id=subject_id).order_by("-id").first()


def _refuse_if_rejected(run: PipelineRun) -> None:
    request = _latest_request(ApprovalKind.PIPELINE_RUN, run.pk)
    if request is not None and request.state == ApprovalState.REJECTED:
        raise DemoLoadError(
            f"Run #{run.pk} of the demo data was rejected: the demo load does not override "
            "that decision. Request a run from the product instead."
        )


def _wait_for_run(run: PipelineRun, worker: DemoWorker, *, timeout: float, say: Say) -> None:
    """Print the run's progress until it ends (the caller cancels it if this raises)."""
    started = time.monotonic()
    deadline = started + timeout
    last_shown, last_sweep = None, started
    while True:
        row = PipelineRun.objects.values("state", "step", "progress", "error").get(pk=run.pk)
        shown = (row["state"], row["step"], row["progress"] // 5)
        if shown != last_shown:
            step = f" · {row['step']}" if row["state"] == RunState.RUNNING else ""
            say(f"   run #{run.pk}: {row['state']}{step} {row['progress']}%")
            last_shown = shown
        if row["state"] in TERMINAL_RUN_STATES:
            break
        worker.check()
        now = time.monotonic()
        if now > deadline:
            raise DemoLoadError(
                f"Run #{run.pk} did not finish within {int(timeout)}s "
                f"({row['state']}, {row['step'] or '-'} {row['progress']}%): it was "
                "cancelled. Raise --timeout or lower --max-steps."
            )
        if now - last_sweep >= 60:  # what beat does every minute under `make run`
            services.runs_sweep()
            last_sweep = now
        time.sleep(1.0)
    run = PipelineRun.objects.get(pk=run.pk)
    if run.state != RunState.SUCCEEDED:
        tail = "\n".join(run.log.strip().splitlines()[-10:])
        raise DemoLoadError(f"Run #{run.pk} {run.state}: {run.error}\nLast log lines:\n{tail}")
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in (run.timings or {}).items())
    say(f"   run #{run.pk}: succeeded in {time.monotonic() - started:.0f}s ({timings})")


def _cancel_quietly(run: PipelineRun) -> None:
    state = PipelineRun.objects.values_list("state", flat=True).get(pk=run.pk)
    if state in TERMINAL_RUN_STATES:
        return
    with contextlib.suppress(ApplicationError):
        services.run_cancel(actor=run.requested_by, run=run)


class DemoWorker:
    """A Celery worker for the load: one that already answers on the `train` queue, or a
    `celery worker` process started here and stopped at the end. (Workers on the filesystem
    broker cannot answer a ping, so there the load always starts its own; two workers on the
    same queues are harmless: the run's guards let only one execute it.)"""

    def __init__(self, *, say: Say):
        self.say = say
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(settings.VAR_DIR) / "log" / "load_demo-worker.log"
        self._log = None

    def __enter__(self) -> DemoWorker:
        answering = _workers_on_train_queue()
        if answering:
            self.say(f"   worker: {', '.join(answering)} answers; the run goes to it")
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            worker_argv(
                f"load-demo-{os.getpid()}@%h",
                queues=WORKER_QUEUES,
                pool=("--concurrency", "1"),
            ),
            cwd=settings.BASE_DIR,
            env=_worker_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches this command only, which
            # cancels the run and then stops the worker (and its pool process) itself.
            start_new_session=True,
        )
        self.say(
            f"   worker: none answers; started one for this load (pid {self.proc.pid}, "
            f"log {self.log_path})"
        )
        return self

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise DemoLoadError(
                f"The worker started for the load exited with code {self.proc.returncode}. "
                f"The end of its log ({self.log_path}):\n{tail}"
            )

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        # Warm shutdown (the task in hand ends: a cancelled run stops at its next batch), then
        # cold, then the whole process group is killed.
        for sig, wait in ((signal.SIGTERM, WORKER_STOP_SECONDS), (signal.SIGQUIT, 10)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the pool, if any
        self.proc.wait()
        self._log.close()
        self.say("   worker: stopped")


def _workers_on_train_queue() -> list[str]:
    """Names of the workers that answer and consume the `train` queue ([] on brokers whose
    workers cannot answer, such as the filesystem transport)."""
    from config.celery import app

    if str(app.conf.broker_url).startswith("filesystem://"):
        return []
    if not app.conf.worker_enable_remote_control:
        return []
    try:
        queues = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # no broker, no answer: start a worker of our own
        return []
    return sorted(name for name, qs in queues.items() if any(q["name"] == "train" for q in qs))


def _worker_env() -> dict:
    """The environment of the worker: this process's, pointed at the database this process
    uses when that is not the configured one (a test database, for instance)."""
    import dj_database_url

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    live = connection.settings_dict
    configured = dj_database_url.parse(settings.DATABASE_URL)
    if str(live["NAME"]) != str(configured["NAME"]):
        env["DATABASE_URL"] = _database_url(live, connection.vendor)
    return env


def _database_url(s: dict, vendor: str) -> str:
    if vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}.get(vendor, vendor)
    user = quote(s.get("USER") or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"{scheme}://{auth}{s.get('HOST') or '127.0.0.1'}{port}/{s['NAME']}"


# --- 4. the index -------------------------------------------------------------------------------


def _activate(run: PipelineRun, say: Say) -> IndexVersion:
    index = IndexVersion.objects.filter(run=run).select_related("pipeline").order_by("-id").first()
    if index is None:
        raise DemoLoadError(f"Run #{run.pk} succeeded but recorded no index.")
    if index.status != IndexStatus.CANDIDATE:
        say(f"   {index}: already {index.status}")
        return index
    ok, detail = services.quality_gate(index)
    if not ok:
        raise DemoLoadError(f"{index} fails the quality gate ({detail}): it is left a candidate.")
    request = _latest_request(ApprovalKind.INDEX_ACTIVATION, index.pk)
    if request is not None and request.state == ApprovalState.REJECTED:
        raise DemoLoadError(
            f"The activation of {index} was rejected: the demo load does not override that "
            "decision."
        )
    ops = _user(RUN_REQUESTER)
    if request is None or request.state in (ApprovalState.EXPIRED, ApprovalState.CANCELLED):
        request = _call(
            services.index_request_activation,
            actor=ops,
            index=index,
            reason="Demo: serve the index trained on the demo data.",
        )
        say(f"   {index}: activation requested by {RUN_REQUESTER}")
    if request.state == ApprovalState.PENDING:
        _approve_as_demo(request, subject=f"activation of {index}", prefer=("lead",), say=say)
    _call(services.index_activate, actor=ops, index=index)
    index.refresh_from_db()
    say(f"   {index}: activated ({detail}; held-out nDCG@10: {_ndcg_line(index.metrics)})")
    return index


def _ndcg_line(metrics: dict | None) -> str:
    values = [
        f"{name.replace('_', '-')} {value['ndcg@10']:.3f}"
        for name, value in (metrics or {}).items()
        if isinstance(value, dict) and isinstance(value.get("ndcg@10"), int | float)
    ]
    return ", ".join(values) or "-"


# --- helpers ------------------------------------------------------------------------------------


def _call(service, **kwargs):
    """Call a service; a rule it enforces becomes a DemoLoadError with its message."""
    try:
        return service(**kwargs)
    except ApplicationError as exc:
        raise DemoLoadError(exc.message) from None


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
