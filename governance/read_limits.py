"""The bounds on reading a stored dataset file (datafiles.ReadLimits) from the
settings: profiling uses them with its time limit, the pipeline without (its tasks have their
own time limits)."""

from __future__ import annotations

from django.conf import settings


def dataset_read_limits(*, timed: bool = True):
    """ReadLimits from the STEWARD_PROFILE_* settings; `timed` adds profiling's time limit."""
    from datafiles import ReadLimits  # pandas: imported only where it is needed

    defaults = ReadLimits()
    seconds = getattr(settings, "STEWARD_PROFILE_MAX_SECONDS", 1800.0) if timed else None
    return ReadLimits(
        max_line_chars=int(
            getattr(settings, "STEWARD_PROFILE_MAX_LINE_BYTES", defaults.max_line_chars)
        ),
        max_unpacked_bytes=int(
            getattr(settings, "STEWARD_PROFILE_MAX_DECOMPRESSED_BYTES", defaults.max_unpacked_bytes)
        ),
        max_ratio=float(getattr(settings, "STEWARD_PROFILE_MAX_RATIO", defaults.max_ratio)),
        max_zip_members=int(
            getattr(settings, "STEWARD_PROFILE_MAX_ZIP_MEMBERS", defaults.max_zip_members)
        ),
        max_seconds=float(seconds) if seconds else None,
    )
