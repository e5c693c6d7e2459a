"""Dataset versions: upload (stored before anything else), profiling (a worker job), submission
for approval, and the approval outcomes (approve supersedes the previous version)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import PurePosixPath, PureWindowsPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.audit import audit_record
from core.errors import ValidationError
from core.hashing import sha256_file
from core.queueing import enqueue_on_commit, send
from governance import permissions
from governance.actions import version_actions
from governance.choices import ApprovalKind, ProfileStatus, VersionStatus
from governance.constants import MAX_UPLOAD_BYTES_DEFAULT, UPLOAD_CHUNK_BYTES
from governance.models import DataAsset, DatasetVersion
from governance.services.approvals import SubjectHandler, approval_request_open
from governance.sla import version_sla_results
from governance.transitions import assert_transition

logger = logging.getLogger(__name__)
UNKNOWN_FORMAT = "unknown"  # content that contradicts its file name


def max_upload_bytes() -> int:
    return int(getattr(settings, "STEWARD_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES_DEFAULT))


def _version_state(version: DatasetVersion) -> dict:
    return {
        "asset": version.asset.slug,
        "number": version.number,
        "status": version.status,
        "file": version.original_name,
        "sha256": version.sha256,
        "size_bytes": version.size_bytes,
        "format": version.format,
    }


def check_upload_name(name: str) -> str:
    """The name as given, or a clear error for names with path components."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("The file has no name.", field="file")
    if (
        name != PurePosixPath(name).name
        or name != PureWindowsPath(name).name
        or name in {".", ".."}
    ):
        raise ValidationError(
            f"The file name '{name}' contains path components; upload it under a plain name "
            "such as 'catalog.csv'.",
            field="file",
        )
    return name


def _check_format(name: str, fmt: str | None, head: bytes) -> str:
    """The format to profile with. An unsupported extension is refused before anything is
    stored; content that contradicts its extension is stored as "unknown", and profiling
    fails its version with the reason."""
    import datafiles  # pandas: imported only where it is needed

    if fmt:
        if fmt not in datafiles.FORMATS:
            raise ValidationError(
                f"Unknown format '{fmt}'. Supported: {', '.join(datafiles.FORMATS)}.",
                field="format",
            )
        return fmt
    try:
        return datafiles.detect_format(name, head)
    except datafiles.DatasetReadError as exc:
        if exc.code == "unsupported_format":
            raise ValidationError(exc.message, field="file") from None
        return UNKNOWN_FORMAT


def dataset_version_upload(
    *,
    actor,
    asset: DataAsset,
    file,
    name: str,
    fmt: str | None = None,
    note: str = "",
    submit: bool = True,
) -> DatasetVersion:
    """Store an uploaded file as a new draft version, then profile it on a worker.

    `file` is a Django File/UploadedFile (streamed in chunks, never read whole). With `submit`,
    the version is submitted for approval as soon as its profile is ready. The file is hashed
    and stored before the short transaction that records it: slow I/O never holds a write lock
    (on SQLite, the database's one write lock, which a worker's progress writes wait for).
    """
    permissions.require_upload(actor, asset)
    return _store_version(
        actor=actor,
        uploader=actor,
        asset=asset,
        file=file,
        name=name,
        fmt=fmt,
        note=note,
        submit=submit,
        verb="datasetversion.uploaded",
    )


def dataset_version_store_derived(
    *, asset: DataAsset, file, name: str, fmt: str, uploader, note: str, run_key: str
) -> DatasetVersion:
    """Hash and store a file a pipeline run derived from approved inputs (e.g. the cleaned
    catalog), outside any transaction; the version is not recorded yet (no pk): the run records
    it with `dataset_version_record_derived` in the transaction that marks it succeeded, or
    drops it with `dataset_version_discard_stored`. The approved run is the authority, so no
    upload permission is checked; `uploader` is the run's requester, who therefore cannot
    approve it."""
    return _store_file(
        uploader=uploader,
        asset=asset,
        file=file,
        name=name,
        fmt=fmt,
        note=f"{note} (run {run_key})",
        submit=True,
    )


def dataset_version_record_derived(version: DatasetVersion) -> DatasetVersion:
    """Record a stored derived version (short; inside the caller's transaction), submitted for
    its stewards' approval like any upload once profiled."""
    return _record_version(version, actor=None, verb="datasetversion.derived")


def dataset_version_discard_stored(version: DatasetVersion) -> None:
    """Remove the stored file of a derived version that was never recorded (its run failed,
    was cancelled or lost): nothing is left behind."""
    if version.pk is None or not DatasetVersion.objects.filter(pk=version.pk).exists():
        version.file.delete(save=False)


def dataset_version_discard_stored_files(names: list[str]) -> None:
    """Remove stored files (storage names) that no recorded version holds: what an attempt
    that was killed stored for versions it never recorded."""
    from django.core.files.storage import default_storage

    recorded = set(DatasetVersion.objects.filter(file__in=names).values_list("file", flat=True))
    for name in names:
        if name not in recorded:
            default_storage.delete(name)


def _store_version(*, actor, uploader, asset, file, name, fmt, note, submit, verb):
    version = _store_file(
        uploader=uploader, asset=asset, file=file, name=name, fmt=fmt, note=note, submit=submit
    )
    try:
        return _record_version(version, actor=actor, verb=verb)
    except Exception:
        version.file.delete(save=False)  # not recorded: nothing left behind
        raise


def _store_file(*, uploader, asset, file, name, fmt, note, submit) -> DatasetVersion:
    """Check, hash and store an uploaded file, outside any transaction (a fresh storage key: no
    other version's folder); the version it returns is not recorded yet."""
    name = check_upload_name(name)
    size = file.size
    if size is None or size == 0:
        raise ValidationError(f"'{name}' is empty (0 bytes).", field="file")
    if size > max_upload_bytes():
        raise ValidationError(
            f"'{name}' is {size:,} bytes, over the limit of {max_upload_bytes():,} bytes.",
            field="file",
        )
    file.seek(0)
    fmt = _check_format(name, fmt, file.read(8192))
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in file.chunks(UPLOAD_CHUNK_BYTES):
        digest.update(chunk)
    version = DatasetVersion(
        asset=asset,
        storage_key=uuid.uuid4().hex,
        original_name=name,
        format=fmt,
        size_bytes=size,
        sha256=digest.hexdigest(),
        uploaded_by=uploader,
        note=note.strip()[:500],
        submit_when_profiled=submit,
    )
    file.seek(0)
    version.file.save(name, file, save=False)
    return version


@transaction.atomic
def _record_version(version: DatasetVersion, *, actor, verb: str) -> DatasetVersion:
    """The short transaction that numbers and records a stored file as a new version."""
    asset = DataAsset.objects.select_for_update().get(pk=version.asset_id)
    if actor is not None:
        permissions.require_upload(actor, asset)  # still allowed now that the file is stored
    version.asset = asset
    version.number = (asset.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version.save()
    audit_record(actor=actor, verb=verb, target=version, after=_version_state(version))
    from governance.tasks import dataset_version_profile_task

    enqueue_on_commit(dataset_version_profile_task, version.pk)
    return version


def dataset_version_profile(*, version_id: int) -> DatasetVersion | None:
    """The profiling job (worker): read the stored file in chunks with pandas and record the
    profile and SLA results, or the reason it failed. Idempotent under redelivery."""
    with transaction.atomic():
        version = (
            DatasetVersion.objects.select_for_update(of=("self",))
            .select_related("asset")
            .filter(pk=version_id)
            .first()
        )
        if version is None or version.profile_status in (
            ProfileStatus.SUCCEEDED,
            ProfileStatus.FAILED,
        ):
            return version
        version.profile_status = ProfileStatus.RUNNING
        version.profile_started_at = timezone.now()
        version.save(update_fields=["profile_status", "profile_started_at"])
    profile, error = _run_profile(version)
    try:
        return _profile_record(version_id=version.pk, profile=profile, error=error)
    except Exception as exc:  # never leave a version "running" behind
        logger.exception("recording the profile of version %s failed", version.pk)
        return dataset_version_profile_fail(
            version_id=version.pk, reason=f"Recording the profile failed: {exc}"
        )


@transaction.atomic
def dataset_version_profile_fail(*, version_id: int, reason: str) -> DatasetVersion | None:
    """Fail a pending or running profiling job with `reason` (e.g. its worker was lost)."""
    version = DatasetVersion.objects.select_for_update().filter(pk=version_id).first()
    if version is not None and version.profile_status in (
        ProfileStatus.PENDING,
        ProfileStatus.RUNNING,
    ):
        version.profile_status = ProfileStatus.FAILED
        version.profile_error = reason
        version.profiled_at = timezone.now()
        version.save(update_fields=["profile_status", "profile_error", "profiled_at"])
        audit_record(
            actor=None,
            verb="datasetversion.profile_failed",
            target=version,
            after={"error": reason},
        )
    return version


def dataset_versions_profile_sweep(*, stuck_after_minutes: int = 120) -> dict[str, int]:
    """The beat sweep: re-enqueue versions still pending (the broker may have been down when
    they were uploaded); fail those running far longer than profiling takes ("worker lost")."""
    from governance.selectors import versions_stuck_profiling, versions_waiting_for_profile
    from governance.tasks import dataset_version_profile_task

    pending = versions_waiting_for_profile()
    for version_id in pending:
        send(dataset_version_profile_task, version_id)
    stuck = versions_stuck_profiling(older_than_minutes=stuck_after_minutes)
    for version_id in stuck:
        dataset_version_profile_fail(
            version_id=version_id,
            reason=f"The worker was lost: profiling did not finish within "
            f"{stuck_after_minutes} minutes. Upload the file again to retry.",
        )
    return {"requeued": len(pending), "failed": len(stuck)}


def _run_profile(version: DatasetVersion) -> tuple[dict | None, str]:
    import datafiles
    from governance import profiling
    from governance.selectors import dataset_read_limits

    contract = profiling.SchemaContract.from_dict(version.asset.schema_contract or None)
    try:
        path = default_storage.path(version.file.name)
        if sha256_file(path) != version.sha256:
            return None, "The stored file no longer matches its checksum: it was altered."
        if version.format == UNKNOWN_FORMAT:  # say what the content is instead
            with open(path, "rb") as handle:
                datafiles.detect_format(version.original_name, handle.read(8192))
        limits = dataset_read_limits()
        return profiling.profile_file(
            path, fmt=version.format, contract=contract, limits=limits
        ), ""
    except datafiles.DatasetReadError as exc:
        return None, exc.message
    except FileNotFoundError:
        return None, "The stored file is missing."
    except Exception as exc:  # a bad file must fail its version, not the worker
        logger.exception("profiling version %s failed", version.pk)
        return None, f"Unexpected error while profiling: {type(exc).__name__}: {exc}"


@transaction.atomic
def _profile_record(*, version_id: int, profile: dict | None, error: str):
    version = (
        DatasetVersion.objects.select_for_update(of=("self",))
        .select_related("asset", "asset__sla", "uploaded_by")
        .filter(pk=version_id)
        .first()
    )
    if version is None or version.profile_status != ProfileStatus.RUNNING:
        return version  # gone, or a concurrent attempt already recorded a result
    version.profiled_at = timezone.now()
    if profile is None:
        version.profile_status = ProfileStatus.FAILED
        version.profile_error = error
        version.save(update_fields=["profile_status", "profile_error", "profiled_at"])
        audit_record(
            actor=None, verb="datasetversion.profile_failed", target=version, after={"error": error}
        )
        return version
    version.profile_status = ProfileStatus.SUCCEEDED
    version.profile = profile
    version.row_count = profile.get("rows")
    version.sla_results = version_sla_results(version.asset, profile)
    version.save(
        update_fields=["profile_status", "profile", "row_count", "sla_results", "profiled_at"]
    )
    audit_record(
        actor=None,
        verb="datasetversion.profiled",
        target=version,
        after={"rows": version.row_count, "sla_ok": version.sla_results["ok"]},
    )
    if version.submit_when_profiled and version.status == VersionStatus.DRAFT:
        _submit(actor=version.uploaded_by, version=version, reason=version.note)
    return version


@transaction.atomic
def dataset_version_submit(*, actor, version: DatasetVersion, reason: str = "") -> DatasetVersion:
    """Submit a profiled draft for its owners' approval; it is immutable from now on."""
    version = (
        DatasetVersion.objects.select_for_update(of=("self",))
        .select_related("asset")
        .get(pk=version.pk)
    )
    version_actions(actor, version)["submit"].require()
    return _submit(actor=actor, version=version, reason=reason)


def _submit(*, actor, version: DatasetVersion, reason: str) -> DatasetVersion:
    assert_transition("version", version.status, VersionStatus.SUBMITTED, what="the version")
    before = {"status": version.status}
    version.status = VersionStatus.SUBMITTED
    version.submitted_at = timezone.now()
    version.save(update_fields=["status", "submitted_at"])
    audit_record(
        actor=actor,
        verb="datasetversion.submitted",
        target=version,
        before=before,
        after={"status": version.status},
    )
    approval_request_open(
        actor=actor, kind=ApprovalKind.DATASET_VERSION, subject=version, reason=reason
    )
    return version


def _set_status(
    *, actor, version: DatasetVersion, status: str, verb: str, reason: str = ""
) -> None:
    assert_transition("version", version.status, status, what="the version")
    before = {"status": version.status}
    version.status = status
    fields = ["status"]
    if status in (VersionStatus.APPROVED, VersionStatus.REJECTED):
        version.decided_at = timezone.now()
        fields.append("decided_at")
    version.save(update_fields=fields)
    after = {"status": status, **({"reason": reason} if reason else {})}
    audit_record(actor=actor, verb=verb, target=version, before=before, after=after)


def _on_approved(actor, version: DatasetVersion, request) -> None:
    version = DatasetVersion.objects.select_for_update().get(pk=version.pk)
    _set_status(
        actor=actor, version=version, status=VersionStatus.APPROVED, verb="datasetversion.approved"
    )
    older = DatasetVersion.objects.select_for_update().filter(
        asset_id=version.asset_id, status=VersionStatus.APPROVED, number__lt=version.number
    )
    for previous in older:
        _set_status(
            actor=actor,
            version=previous,
            status=VersionStatus.SUPERSEDED,
            verb="datasetversion.superseded",
        )
    from governance.services.incidents import sla_evaluate_asset

    sla_evaluate_asset(asset=version.asset)


def _on_closed(actor, version: DatasetVersion, request) -> None:
    version = DatasetVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.SUBMITTED:
        return
    if request.state == "rejected":
        _set_status(
            actor=actor,
            version=version,
            status=VersionStatus.REJECTED,
            verb="datasetversion.rejected",
        )
    else:  # expired or cancelled: back to draft, so it can be submitted again
        _set_status(
            actor=actor,
            version=version,
            status=VersionStatus.DRAFT,
            verb="datasetversion.returned_to_draft",
        )


@transaction.atomic
def dataset_version_deprecate(*, actor, version: DatasetVersion, reason: str) -> DatasetVersion:
    """Mark an approved (or superseded) version as not to be used any more."""
    version = (
        DatasetVersion.objects.select_for_update(of=("self",))
        .select_related("asset")
        .get(pk=version.pk)
    )
    version_actions(actor, version)["deprecate"].require()
    if not reason.strip():
        raise ValidationError("Say why the version is deprecated.", field="reason")
    _set_status(
        actor=actor,
        version=version,
        status=VersionStatus.DEPRECATED,
        verb="datasetversion.deprecated",
        reason=reason.strip(),
    )
    return version


def version_content_hash(version: DatasetVersion) -> str:
    return hashlib.sha256(
        f"{version.asset_id}:{version.number}:{version.sha256}".encode()
    ).hexdigest()


DATASET_VERSION_HANDLER = SubjectHandler(
    kind=ApprovalKind.DATASET_VERSION,
    content_hash=version_content_hash,
    required_teams=lambda version: [version.asset.owning_team],
    on_approved=_on_approved,
    on_closed=_on_closed,
    link=lambda version: f"/governance/versions/{version.pk}/",
    model=DatasetVersion,
    authors=(("uploaded_by", "uploaded it"),),  # a derived version: the run's requester
    latency_hours=lambda version: getattr(
        getattr(version.asset, "sla", None), "approval_latency_hours", None
    ),
)
