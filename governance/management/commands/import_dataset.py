"""python manage.py import_dataset --asset SLUG --format FORMAT PATH

Stores PATH as a new version of the asset (exactly like an upload from the UI or the API),
then profiling runs on a worker (--wait waits for it; --profile-now runs it in this process).
For chorus-products, PATH may be a folder of *.json.zip files (bundled into one zip, the same
bytes as load_demo bundles from that folder)."""

import tempfile
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from governance import services
from governance.forms import FORMAT_CHOICES
from governance.models import DataAsset, DatasetVersion

User = get_user_model()
FORMATS = [value for value, _label in FORMAT_CHOICES if value]


class Command(BaseCommand):
    help = "Import a file (or a chorus-icecat folder) as a new dataset version of an asset."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--asset", required=True, help="Slug of the data asset.")
        parser.add_argument(
            "--format", choices=FORMATS, default=None, help="Default: detected from the file name."
        )
        parser.add_argument(
            "--as",
            dest="username",
            default="",
            help="Who uploads (default: the first active site admin).",
        )
        parser.add_argument("--note", default="")
        parser.add_argument(
            "--no-submit",
            action="store_true",
            help="Keep it a draft instead of submitting it once profiled.",
        )
        parser.add_argument(
            "--wait",
            type=int,
            default=0,
            metavar="SECONDS",
            help="Wait up to SECONDS for the worker to profile it.",
        )
        parser.add_argument(
            "--profile-now",
            action="store_true",
            help="Profile in this process instead of on a worker.",
        )

    def handle(
        self, *args, path, asset, format, username, note, no_submit, wait, profile_now, **options
    ):
        target = DataAsset.objects.filter(slug=asset).select_related("owning_team").first()
        if target is None:
            raise CommandError(f"No data asset with the slug '{asset}'.")
        actor = self._actor(username)
        source = Path(path)
        if not source.exists():
            raise CommandError(f"{source} does not exist.")
        with tempfile.TemporaryDirectory() as scratch:
            if source.is_dir():
                source = self._bundle(source, Path(scratch), format)
            with source.open("rb") as handle:
                try:
                    version = services.dataset_version_upload(
                        actor=actor,
                        asset=target,
                        file=File(handle, name=source.name),
                        name=source.name,
                        fmt=format,
                        note=note,
                        submit=not no_submit,
                    )
                except ApplicationError as exc:
                    raise CommandError(exc.message) from None
        self.stdout.write(
            f"Stored {source.name} as {target.slug} v{version.number} "
            f"(id {version.pk}, {version.size_bytes:,} bytes, sha256 "
            f"{version.sha256[:12]}…)."
        )
        if profile_now:
            version = services.dataset_version_profile(version_id=version.pk)
        elif wait:
            version = self._wait(version.pk, wait)
        self._report(version)

    def _actor(self, username: str):
        if username:
            user = User.objects.filter(username=username, is_active=True).first()
            if user is None:
                raise CommandError(f"No active user '{username}'.")
            return user
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No site admin exists: pass --as USERNAME.")
        return user

    def _bundle(self, folder: Path, scratch: Path, fmt: str | None) -> Path:
        members = sorted(folder.glob("*.json.zip")) if fmt == "chorus-products" else []
        if not members:
            raise CommandError(
                f"{folder} is a folder: give a file, or --format chorus-products "
                "for a folder of *.json.zip files."
            )
        import datafiles  # pandas: imported only where it is needed

        try:
            return datafiles.bundle_product_zips(members, scratch / f"{folder.name}-products.zip")
        except datafiles.DatasetReadError as exc:
            raise CommandError(exc.message) from None

    def _wait(self, version_id: int, seconds: int) -> DatasetVersion:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            version = DatasetVersion.objects.get(pk=version_id)
            if version.profile_status in ("succeeded", "failed"):
                return version
            time.sleep(0.5)
        raise CommandError(
            f"Not profiled within {seconds}s: is a worker running (make run starts one)?"
        )

    def _report(self, version: DatasetVersion) -> None:
        if version.profile_status == "failed":
            raise CommandError(f"Profiling failed: {version.profile_error}")
        if version.profile_status == "succeeded":
            self.stdout.write(
                self.style.SUCCESS(
                    f"Profiled: {version.row_count:,} rows; SLA "
                    f"{'OK' if version.sla_results and version.sla_results['ok'] else 'breached'}; "
                    f"status {version.status}."
                )
            )
        else:
            self.stdout.write("Profiling is queued for a worker.")
