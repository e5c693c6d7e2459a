"""Step 1 of a demo load: the demo files as dataset versions of the demo assets, uploaded by each
owning team's demo engineer and profiled (found by checksum when an earlier load stored them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.files import File
from django.db import transaction

from governance import selectors as gov_selectors
from governance import services as gov
from governance.choices import ProfileStatus, VersionStatus
from recsys.demo.approvals import demo_member
from recsys.demo.dataset import DemoFile
from recsys.demo.errors import DemoLoadError, Say, call_service

if TYPE_CHECKING:
    from governance.models import DataAsset, DatasetVersion


def _asset(slug: str) -> DataAsset:
    asset = gov_selectors.data_assets(slugs=[slug]).first()
    if asset is None:
        raise DemoLoadError(
            f"The demo asset '{slug}' is missing: run `python manage.py seed_demo`."
        )
    return asset


def find_version(file: DemoFile) -> DatasetVersion | None:
    """The version an earlier load stored from the same bytes; refuses when a steward turned
    it down (the load does not override that decision)."""
    versions = list(
        gov_selectors.dataset_versions(
            assets=gov_selectors.data_assets(slugs=[file.asset_slug]), sha256=file.sha256
        ).order_by("-number")
    )
    refused_states = (VersionStatus.REJECTED, VersionStatus.DEPRECATED)
    usable = [v for v in versions if v.status not in refused_states]
    if usable:
        return usable[0]
    if versions:
        refused = versions[0]
        raise DemoLoadError(
            f"{refused} holds this {file.role} data and was {refused.status}: the demo load "
            "does not override a steward's decision. Load other data with --data, or upload "
            "it again from the product."
        )
    return None


def import_versions(files: list[DemoFile], found: dict, say: Say) -> list[DatasetVersion]:
    """Upload the files not stored yet (all in one transaction), then profile what is not."""
    versions = dict(found)
    with transaction.atomic():
        for file in files:
            version = found[file.role]
            if version is not None:
                say(f"   {version}: already stored ({file.name})")
                continue
            asset = _asset(file.asset_slug)
            uploader = demo_member(asset.owning_team, ("engineer",))
            if uploader is None:
                raise DemoLoadError(
                    f"No demo engineer in {asset.owning_team.name} to upload {asset.name}: "
                    "run `python manage.py seed_demo`."
                )
            with file.path.open("rb") as handle:
                version = call_service(
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
        version = gov_selectors.dataset_versions(ids=[version.pk]).get()
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
