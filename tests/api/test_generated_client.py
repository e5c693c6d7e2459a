"""A client generated from the committed schema (openapi-python-client) drives the ops journeys;
its typed models parse every answer, errors included.

- Without a worker: upload a catalog version, approve it, request a run, approve the run as the
  required teams, see it queued.
- On a real worker: uploads profiled, approved; a full retrain requested, approved by both
  required teams, executed and watched to success; its index's activation requested, approved
  and activated; a search answered by it, and its provenance read back through the API."""

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
        return _client_as(steward_client, wsgi_app, org.user(username))

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
    waiting = approval.sync(run.id, client=ops)
    assert isinstance(waiting, models.RunApprovalOutput), waiting
    assert waiting.approval.state == models.ApprovalStateEnum.PENDING
    assert [r.team for r in waiting.approval.requirements] == ["alpha"] and waiting.blockers
    for request in inbox.sync(client=steward).results:
        if request.subject_id == run.id and request.kind == models.ApprovalKindEnum.PIPELINE_RUN:
            decide.sync(request.id, client=steward, body=approve)

    runs_retrieve = importlib.import_module("steward_client.api.v1.v1_runs_retrieve")
    assert runs_retrieve.sync(run.id, client=ops).state == models.RunStateEnum.QUEUED


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_retrain_journey_through_the_generated_client_on_a_real_worker(
    steward_client, wsgi_app, celery_worker
):
    """Uploads profiled by the worker, approved from the inboxes; a full retrain requested,
    approved by both required teams, executed by the worker and watched to success; its index's
    activation requested, approved by the pipeline team's lead and activated; a search answered
    by that index. Every call goes through the generated client (committed rows, the worker
    reads them); the worker reads the real MEDIA_ROOT and ARTIFACT_ROOT, so they stay as set."""
    from data import demo_generator as gen
    from governance.models import DataAsset
    from recsys import serving
    from recsys.pipelines.encoding import tiny_encoder
    from recsys.services.pipelines import pipeline_create
    from tests.conftest import tiny_models_dir, wait_for
    from tests.factories import UserFactory

    models = importlib.import_module("steward_client.models")
    types = importlib.import_module("steward_client.types")

    def op(name):
        return importlib.import_module(f"steward_client.api.v1.{name}")

    # The organization (users and teams), and the pipeline, which no API creates: alpha owns
    # the catalog, beta the labels and the pipeline; the tiny model, a few training steps.
    tiny_model_path = tiny_encoder(str(tiny_models_dir()), seed=0)
    org = build_org()
    org.users["beta.ops"] = UserFactory(username="beta.ops")
    clients = {name: _client_as(steward_client, wsgi_app, org.user(name)) for name in (
        "alpha.engineer", "alpha.steward", "beta.steward", "beta.lead", "beta.ops")}  # fmt: skip
    ops, lead = clients["beta.ops"], clients["beta.lead"]

    # beta's lead registers the labels asset and makes beta.ops an ops member of the team.
    labels = op("v1_assets_create").sync(
        client=lead,
        body=models.DataAssetCreateInputRequest(
            name="Labels",
            slug="labels",
            kind=models.AssetKindEnum.RELEVANCE_LABELS,
            owning_team="beta",
        ),
    )
    assert isinstance(labels, models.DataAssetOutput), labels
    member = op("v1_memberships_create").sync(
        client=lead,
        body=models.MembershipCreateInputRequest(
            team="beta", username="beta.ops", role=models.RoleEnum.OPS
        ),
    )
    assert isinstance(member, models.MembershipOutput), member
    pipeline_create(
        actor=org.admin,
        name="Search",
        owning_team=org.beta,
        input_assets=[org.asset, DataAsset.objects.get(slug=labels.slug)],
        default_parameters={"base_model": tiny_model_path, "max_steps": 3, "batch_size": 8},
    )
    approve = models.DecideInputRequest(verdict=models.VerdictEnum.APPROVE)

    def approve_pending(approver, kind, subject_id):
        """Approve, from the approver's inbox, the open request of `kind` about `subject_id`."""
        page = op("v1_approvals_inbox_list").sync(client=clients[approver])
        assert isinstance(page, models.PaginatedApprovalRequestOutputList), page
        [request] = [r for r in page.results if r.kind == kind and r.subject_id == subject_id]
        decided = op("v1_approvals_decide_create").sync(
            request.id, client=clients[approver], body=approve
        )
        assert isinstance(decided, models.ApprovalRequestOutput), decided
        return decided

    # Both inputs uploaded, profiled by the worker, approved by their team's steward.
    catalog = gen.catalog_rows(160, seed=3)
    labelled = gen.queries_and_labels(catalog, per_query=6)
    uploads = [
        ("catalog", "alpha.engineer", "alpha.steward", gen.to_csv(catalog)),
        ("labels", "beta.lead", "beta.steward", gen.to_csv(labelled)),
    ]
    inputs = []
    for asset, uploader, steward, text in uploads:
        version = op("v1_assets_versions_create").sync(
            asset,
            client=clients[uploader],
            body=models.DatasetVersionUploadInputRequest(
                file=types.File(payload=text.encode(), file_name=f"{asset}.csv")
            ),
        )
        assert isinstance(version, models.DatasetVersionOutput), version
        profiled = wait_for(
            lambda v=version, c=clients[uploader]: _settled(
                op("v1_versions_retrieve").sync(v.id, client=c), "profile_status",
                {models.ProfileStatusEnum.SUCCEEDED, models.ProfileStatusEnum.FAILED},
            ),
            timeout=60,
        )  # fmt: skip
        assert profiled.profile_status == models.ProfileStatusEnum.SUCCEEDED, profiled
        approve_pending(steward, models.ApprovalKindEnum.DATASET_VERSION, version.id)
        inputs.append(version.id)

    # A full retrain, approved by the teams owning its inputs and the pipeline.
    run = op("v1_runs_create").sync(
        client=ops,
        body=models.RunRequestInputRequest(
            pipeline="search",
            kind=models.RunKindEnum.FULL_RETRAIN,
            inputs=inputs,
            reason="weekly retrain",
        ),
    )
    assert isinstance(run, models.PipelineRunDetail), run
    assert run.state == models.RunStateEnum.AWAITING_APPROVAL
    approve_pending("alpha.steward", models.ApprovalKindEnum.PIPELINE_RUN, run.id)
    assert op("v1_runs_retrieve").sync(run.id, client=ops).state == (
        models.RunStateEnum.AWAITING_APPROVAL  # beta has not approved: nothing enqueued
    )
    approve_pending("beta.lead", models.ApprovalKindEnum.PIPELINE_RUN, run.id)

    # Watched to success through the client.
    terminal = {models.RunStateEnum.SUCCEEDED, models.RunStateEnum.FAILED}
    terminal.add(models.RunStateEnum.CANCELLED)
    done = wait_for(
        lambda: _settled(op("v1_runs_retrieve").sync(run.id, client=ops), "state", terminal),
        timeout=180,
    )
    assert done.state == models.RunStateEnum.SUCCEEDED, (done.error, done.log_tail)

    # Its index: activation requested by ops, approved by beta's lead, activated by ops.
    indexes = op("v1_indexes_list").sync(client=ops)
    assert isinstance(indexes, models.PaginatedIndexVersionOutputList), indexes
    [index] = [i for i in indexes.results if i.run == run.id]
    assert index.status == models.IndexVersionOutputStatusEnum.CANDIDATE
    requested = op("v1_indexes_request_activation_create").sync(
        index.id,
        client=ops,
        body=models.ActivationReasonInputRequest(reason="serve the weekly retrain"),
    )
    assert isinstance(requested, models.ApprovalSummaryOutput), requested
    assert requested.approval.state == models.ApprovalStateEnum.PENDING
    assert [(r.team, r.approver_roles) for r in requested.approval.requirements] == [
        ("beta", ["lead"])
    ]
    approve_pending("beta.lead", models.ApprovalKindEnum.INDEX_ACTIVATION, index.id)
    activated = op("v1_indexes_activate_create").sync(index.id, client=ops)
    assert isinstance(activated, models.IndexVersionOutput), activated
    assert activated.status == models.IndexVersionOutputStatusEnum.ACTIVE

    # A search answered by that index, its answer naming the index (and through it the run).
    serving.reset()
    try:
        answer = op("v1_search_retrieve").sync(client=ops, q="usb cable", pipeline="search", k=3)
    finally:
        serving.reset()
    assert isinstance(answer, models.SearchAnswer), answer
    assert answer.pipeline == "search" and answer.index_version == index.id
    assert answer.count == len(answer.results) == 3
    assert [hit.rank for hit in answer.results] == [1, 2, 3]
    assert all(isinstance(hit, models.SearchHit) and hit.product_id for hit in answer.results)

    # Its provenance, read through the API: index → the run that built it → its inputs and who
    # approved the run.
    served = op("v1_indexes_retrieve").sync(answer.index_version, client=ops)
    assert isinstance(served, models.IndexVersionOutput), served
    assert served.run == run.id and served.model_version == done.outputs["model_version"]
    built_by = op("v1_runs_retrieve").sync(served.run, client=ops)
    assert sorted(built_by.inputs) == sorted(inputs)
    run_approval = op("v1_runs_approval_retrieve").sync(served.run, client=ops)
    assert isinstance(run_approval, models.RunApprovalOutput), run_approval
    assert run_approval.approval.state == models.ApprovalStateEnum.APPROVED
    assert not run_approval.blockers
    decided = op("v1_approvals_retrieve").sync(run_approval.approval.id, client=ops)
    assert isinstance(decided, models.ApprovalRequestOutput), decided
    assert sorted((d.approver, d.verdict) for d in decided.decisions) == [
        ("alpha.steward", models.VerdictEnum.APPROVE),
        ("beta.lead", models.VerdictEnum.APPROVE),
    ]


def _client_as(steward_client, wsgi_app, user):
    """The generated client authenticated with a token of `user`, calling the WSGI app."""
    token, _ = Token.objects.get_or_create(user=user)
    return steward_client.AuthenticatedClient(
        base_url="http://testserver",
        token=token.key,
        prefix="Token",
        httpx_args={"transport": httpx.WSGITransport(app=wsgi_app)},
    )


def _settled(answer, field, values):
    """The answer when its `field` has one of `values` (else None: wait_for polls again)."""
    assert not isinstance(answer, type(None)), "the client parsed no answer"
    return answer if getattr(answer, field) in values else None
