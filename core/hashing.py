"""File checksums. Imports nothing from Django: the ML package (recsys.pipelines), which runs
without Django, hashes its artifacts with it too."""

import hashlib
import os

CHUNK_BYTES = 1 << 20  # 1 MiB


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
