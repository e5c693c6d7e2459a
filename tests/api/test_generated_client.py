"""A client generated from the committed schema (openapi-python-client) drives an ops journey:
upload a catalog version, approve it, request a run, approve the run as the required teams, see
it queued; its typed models parse every answer, errors included."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.api.test_schema_version import COMMITTED
from tests.conftest import build_org

pytestmark = pytest.mark.django_db

CSV = b"id,title,price\n1,Red shoe,10.5\n2,Blue shoe,12.0\n3,Green hat,7.25\n"


@pytest.fixture(scope="module")
def steward_client(tmp_path_factory):
    """The package generated from docs/api/openapi.yaml, imported from a temporary folder."""
    out = tmp_path_factory.mktemp("client")
    binary = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{binary}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(binary / "openapi-python-client"), "generate", "--path", str(COMMITTED),
         "--output-path", str(out / "steward_client"), "--meta", "none", "--fail-on-warning"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("steward_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.split(".")[0] == "steward_client"]:
            del sys.modules[name]


def test_an_ops_journey_through_the_generated_client(steward_client, wsgi_app, settings, tmp_path):
    from governance.services import dataset_version_profile
    from recsys.services.pipelines import pipeline_create

    models = importlib.import_module("steward_client.models")
    types = importlib.import_module("steward_client.types")
    settings.MEDIA_ROOT = tmp_path / "media"
    org = build_org()
    pipeline_create(actor=org.admin, name="Search", owning_team=org.alpha, input_assets=[org.asset])

    def as_user(username):
        token = Token.objects.create(user=org.user(username))
        return steward_client.AuthenticatedClient(
            base_url="http://testserver",
            token=token.key,
            prefix="Token",
            httpx_args={"transport": httpx.WSGITransport(app=wsgi_app)},
        )

    engineer, steward, ops = (
        as_user("alpha.engineer"),
        as_user("alpha.steward"),
        as_user("alpha.ops"),
    )

    # An engineer uploads a catalog version (multipart); the worker's profiling, run inline here.
    upload = importlib.import_module("steward_client.api.v1.v1_assets_versions_create")
    version = upload.sync(
        "catalog",
        client=engineer,
        body=models.DatasetVersionUploadInputRequest(
            file=types.File(payload=CSV, file_name="catalog.csv", mime_type="text/csv")
        ),
    )
    assert isinstance(version, models.DatasetVersionOutput), version
    dataset_version_profile(version_id=version.id)

    # A steward of the owning team approves it from the inbox.
    inbox = importlib.import_module("steward_client.api.v1.v1_approvals_inbox_list")
    decide = importlib.import_module("steward_client.api.v1.v1_approvals_decide_create")
    pending = inbox.sync(client=steward)
    assert isinstance(pending, models.PaginatedApprovalRequestOutputList), pending
    [request] = [r for r in pending.results if r.subject_id == version.id]
    approve = models.DecideInputRequest(verdict=models.VerdictEnum.APPROVE)
    decided = decide.sync(request.id, client=steward, body=approve)
    assert decided.state == models.ApprovalStateEnum.APPROVED

    # Ops request a run; the answer is typed, an invalid request is the typed error shape.
    runs_create = importlib.import_module("steward_client.api.v1.v1_runs_create")
    body = models.RunRequestInputRequest(
        pipeline="search", kind=models.RunKindEnum.CLEAN, inputs=[version.id], reason="journey"
    )
    run = runs_create.sync(client=ops, body=body)
    assert isinstance(run, models.PipelineRunDetail), run
    assert run.state == models.RunStateEnum.AWAITING_APPROVAL
    refused = runs_create.sync(
        client=ops,
        body=models.RunRequestInputRequest(pipeline="search", inputs=[2**63], reason="x"),
    )
    assert isinstance(refused, models.Error) and refused.code == "ValidationError"

    # Every required team approves it (here: alpha, owning both the input and the pipeline).
    approval = importlib.import_module("steward_client.api.v1.v1_runs_approval_retrieve")
    assert approval.sync(run.id, client=ops) is not None
    for request in inbox.sync(client=steward).results:
        if request.subject_id == run.id and request.kind == models.ApprovalKindEnum.PIPELINE_RUN:
            decide.sync(request.id, client=steward, body=approve)

    runs_retrieve = importlib.import_module("steward_client.api.v1.v1_runs_retrieve")
    assert runs_retrieve.sync(run.id, client=ops).state == models.RunStateEnum.QUEUED
