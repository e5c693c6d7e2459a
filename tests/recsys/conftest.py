"""Fixtures for the recsys pipeline tests: a tiny BERT built from a config (no downloads), and
the ``slow`` marker gate (tests loading the real all-MiniLM-L6-v2 run only with STEWARD_SLOW=1).

`porg` is the pipeline organization (tests/recsys/pipeline_setup.py) on the tiny model, with the
test's own media and artifact folders.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _skip_slow_unless_enabled(request):
    """Skip tests marked ``slow`` unless STEWARD_SLOW=1."""
    if request.node.get_closest_marker("slow") and os.environ.get("STEWARD_SLOW") != "1":
        pytest.skip("loads the real model; set STEWARD_SLOW=1 to run")


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """Folder of a tiny random BERT (hidden 32, 2 layers) with its WordPiece tokenizer: one of
    the base models the tests register in STEWARD_BASE_MODELS (tests/conftest.py)."""
    from recsys.pipelines.encoding import tiny_encoder
    from tests.conftest import tiny_models_dir

    return tiny_encoder(str(tiny_models_dir()), seed=0)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_path):
    """The tiny model loaded once per session (read-only use: do not train it in place)."""
    from recsys.pipelines.encoding import load_encoder

    return load_encoder(tiny_model_path)


@pytest.fixture
def porg(org, settings, tmp_path, tiny_model_path):
    """The pipeline organization on the tiny model; uploads and artifacts in the test's folder."""
    from tests.recsys.pipeline_setup import build_pipeline_org

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return build_pipeline_org(org, tiny_model_path)
