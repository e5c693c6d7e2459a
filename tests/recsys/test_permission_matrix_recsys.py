"""Permission matrix of the pipeline (recsys): every actor x owning team x action, UI and API.

Targets: two pipelines over the same inputs (alpha's catalog, beta's labels), one owned by beta
and one by alpha. Each has a run awaiting approval (requested by the ops of its owning team), a
failed run whose approval holds (to retry) and a candidate index (to ask to serve and to serve).

Outcomes (tests/permission_matrix.py): Y allowed, R refused with the reason (403; the UI's POST
actions answer with a flash message and a redirect), N not visible (404), L not logged in.
A refusal changes nothing (no row, no audit event); a success has its effect and writes exactly
the expected audit events, attributed to the actor.

"activate" serves an index: its activation is not approved yet, so an actor who may activate is
told exactly that (403 naming the missing approval) and one who may not is told that they may
not (a full activation is in tests/recsys/test_runs.py and test_index_activation_io.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import override_settings

from governance.models import ApprovalRequest, Decision
from recsys import services
from recsys.models import ActiveIndex, IndexVersion, ModelVersion, Pipeline, PipelineRun
from tests import helpers
from tests.helpers import audit_since, count_changes
from tests.permission_matrix import (
    api_client,
    assert_refused,
    flashes,
    parse_table,
    shared_org,
    ui_client,
)
from tests.recsys.pipeline_setup import approve_run, build_pipeline_org, run_approval

ANONYMOUS = "anonymous"
BETA, ALPHA = "beta", "alpha"  # the team owning the target pipeline
TARGETS = [BETA, ALPHA]

# view:     run page (UI), run, its approval and the index (API)
# request:  request a run (UI form, API)          approve: approve the run awaiting approval
# cancel:   cancel the run awaiting approval      retry:   retry the failed run
# ask:      ask to serve the candidate index      activate: serve it (see the module docstring)
#
# Runs are for ops and leads of the owning team, leads above it and site admins; approvals for
# stewards and leads of every team the run needs (both inputs' teams: alpha and beta), never for
# the requester, an ancestor's lead or a site admin who is no member.
EXPECT_TABLE = """
actor           target  view request approve cancel retry ask activate
anonymous       beta    L    L       L       L      L     L   L
anonymous       alpha   L    L       L       L      L     L   L
admin           beta    Y    Y       R       Y      Y     Y   Y
admin           alpha   Y    Y       R       Y      Y     Y   Y
acme.lead       beta    Y    Y       R       Y      Y     Y   Y
acme.lead       alpha   Y    Y       R       Y      Y     Y   Y
alpha.lead      beta    Y    R       Y       R      R     R   R
alpha.lead      alpha   Y    Y       Y       Y      Y     Y   Y
alpha.steward   beta    Y    R       Y       R      R     R   R
alpha.steward   alpha   Y    R       Y       R      R     R   R
alpha.ops       beta    Y    R       R       R      R     R   R
alpha.ops       alpha   Y    Y       R       Y      Y     Y   Y
alpha.viewer    beta    Y    R       R       R      R     R   R
alpha.viewer    alpha   Y    R       R       R      R     R   R
beta.lead       beta    Y    Y       Y       Y      Y     Y   Y
beta.lead       alpha   Y    R       Y       R      R     R   R
beta.steward    beta    Y    R       Y       R      R     R   R
beta.steward    alpha   Y    R       Y       R      R     R   R
beta.ops        beta    Y    Y       R       Y      Y     Y   Y
beta.ops        alpha   Y    R       R       R      R     R   R
outsider        beta    N    N       N       N      N     N   N
outsider        alpha   N    N       N       N      N     N   N
"""
EXPECT = parse_table(EXPECT_TABLE)
ACTORS = list(dict.fromkeys(actor for actor, _target in EXPECT))
OPS = {BETA: "beta.ops", ALPHA: "alpha.ops"}  # who requested the target's runs


def test_the_table_is_complete():
    assert set(EXPECT) == {(a, t) for a in ACTORS for t in TARGETS}
    for (actor, _target), row in EXPECT.items():
        assert (actor == ANONYMOUS) == (set(row.values()) == {"L"})
        assert (actor == "outsider") == (set(row.values()) == {"N"})


# --- the organization ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineTarget:
    key: str
    slug: str
    name: str
    team_name: str
    pending_run_id: int  # awaiting approval
    approval_id: int  # its approval request
    failed_run_id: int  # approved, then failed
    index_id: int  # a candidate index of the failed run


@dataclass
class RecsysOrg:
    org: object
    targets: dict[str, PipelineTarget]

    def user(self, name: str):
        return None if name == ANONYMOUS else self.org.user(name)


def _run(org, pipeline: Pipeline, ops: str) -> PipelineRun:
    return services.run_request(
        actor=org.user(ops),
        pipeline=pipeline,
        kind="full_retrain",
        inputs=[org.catalog_v, org.labels_v],
        parameters={},
        reason="weekly retrain",
    )


def _candidate_index(pipeline: Pipeline, run: PipelineRun, catalog) -> IndexVersion:
    model = ModelVersion.objects.create(run=run, base_model="tiny", path="/m", checksum="0" * 64)
    return IndexVersion.objects.create(
        pipeline=pipeline,
        run=run,
        model_version=model,
        catalog_version=catalog,
        path=f"/nowhere/index-{run.pk}",
        checksum="0" * 64,
        kind="flat",
        n_items=160,
        dim=32,
        metrics={"fine_tuned": {"ndcg@10": 0.5}},
    )


def build_recsys(org, tiny_model_path: str) -> RecsysOrg:
    org = build_pipeline_org(org, tiny_model_path)
    alpha_pipeline = services.pipeline_create(
        actor=org.admin,
        name="Alpha Search",
        owning_team=org.alpha,
        input_assets=list(org.pipeline.input_assets.all()),
        default_parameters=org.pipeline.default_parameters,
    )
    pipelines = {BETA: org.pipeline, ALPHA: alpha_pipeline}
    targets = {}
    for key, pipeline in pipelines.items():
        pending = _run(org, pipeline, OPS[key])
        failed = _run(org, pipeline, OPS[key])
        approve_run(org, failed)
        PipelineRun.objects.filter(pk=failed.pk).update(state="failed", attempt=1, error="boom")
        index = _candidate_index(pipeline, failed, org.catalog_v)
        targets[key] = PipelineTarget(
            key=key,
            slug=pipeline.slug,
            name=pipeline.name,
            team_name=pipeline.owning_team.name,
            pending_run_id=pending.pk,
            approval_id=run_approval(pending).pk,
            failed_run_id=failed.pk,
            index_id=index.pk,
        )
    return RecsysOrg(org=org, targets=targets)


@pytest.fixture(scope="module")
def recsys_org(django_db_setup, django_db_blocker, tmp_path_factory, tiny_model_path):
    folder = tmp_path_factory.mktemp("recsys-matrix")
    media = override_settings(MEDIA_ROOT=folder / "media", ARTIFACT_ROOT=folder / "artifacts")
    with media, shared_org(django_db_blocker) as m:
        yield build_recsys(m.org, tiny_model_path)


@pytest.fixture
def r(recsys_org, db) -> RecsysOrg:
    return recsys_org


def snapshot() -> dict:
    """What a refused request must leave alone (and the audit trail)."""
    return helpers.snapshot(
        {
            "runs": PipelineRun.objects.values_list(
                "id", "state", "attempt", "cancel_requested", "error", "requested_by_id"
            ),
            "approvals": ApprovalRequest.objects.values_list("id", "kind", "subject_id", "state"),
            "decisions": Decision.objects.values_list("id", "request_id", "approver_id"),
            "indexes": IndexVersion.objects.values_list("id", "status", "activated_at"),
            "active": ActiveIndex.objects.values_list("id", "pipeline_id", "index_id"),
        },
        counted=("runs", "approvals", "decisions"),
    )


# --- the requests --------------------------------------------------------------------------------


def perform(r: RecsysOrg, actor: str, t: PipelineTarget, action: str):
    user, api = r.user(actor), action.endswith("_api")
    client = api_client(user) if api else ui_client(user)
    org = r.org
    if action == "request_api":
        body = {"pipeline": t.slug, "inputs": [org.catalog_v.pk, org.labels_v.pk], "reason": "x"}
        return client.post("/api/v1/runs/", body, format="json")
    if action == "request_ui":
        return client.post(
            f"/recsys/pipelines/{t.slug}/runs/new/",
            {
                "kind": "full_retrain",
                "reason": "matrix",
                f"input_{org.asset.slug}": org.catalog_v.pk,
                "input_labels": org.labels_v.pk,
                "param_epochs": 1,
            },
        )
    if action == "approve_api":
        url = f"/api/v1/approvals/{t.approval_id}/decide/"
        return client.post(url, {"verdict": "approve"}, format="json")
    if action == "approve_ui":
        return client.post(
            f"/governance/approvals/{t.approval_id}/decide/",
            {"verdict": "approve", "comment": "", "next": "/governance/approvals/"},
        )
    what, _ = action.rsplit("_", 1)
    run_url = {"cancel": t.pending_run_id, "retry": t.failed_run_id}.get(what)
    if run_url is not None:
        prefix = "/api/v1/runs" if api else "/recsys/runs"
        return client.post(f"{prefix}/{run_url}/{what}/")
    path = {"ask": "request-activation", "activate": "activate"}[what]
    prefix = "/api/v1/indexes" if api else "/recsys/indexes"
    return client.post(f"{prefix}/{t.index_id}/{path}/")


ACTIONS = [f"{what}_{kind}" for what in EXPECT_TABLE.split()[3:9] for kind in ("api", "ui")]


def refusal(action: str, actor: str, t: PipelineTarget) -> str:
    what = action.rsplit("_", 1)[0]
    if what == "approve":
        if actor == OPS[t.key]:
            return "You cannot decide on your own request."
        return "You cannot decide on this request: it needs approvers of"
    doing = {
        # the API says "this pipeline", the trigger form names it
        "request": "request runs of this pipeline"
        if action.endswith("_api")
        else f"request runs of {t.name}",
        "cancel": "cancel runs of this pipeline",
        "retry": "retry runs of this pipeline",
        "ask": "request the activation of this index",
        "activate": "activate indexes of this pipeline",
    }[what]
    return f"You cannot {doing}: only ops and leads of {t.team_name} can."


def check_refusal(r, actor, t, action, outcome, response) -> None:
    api, message = action.endswith("_api"), refusal(action, actor, t)
    if outcome == "R" and not api and not action.startswith("request"):
        # The UI's POST actions refuse with a flash message and a redirect.
        assert response.status_code == 302, response.status_code
        ((level, text),) = flashes(response)
        assert level == "error" and text.startswith(message), text
    elif outcome == "R" and message.endswith(" of"):
        assert response.status_code == 403, response.status_code
        assert response.json()["detail"].startswith(message), response.json()
    else:
        assert_refused(response, outcome, api=api, message=message)


# what a success writes: audit verbs (in order) and row-count changes
SUCCESS = {
    "request": (["pipelinerun.requested", "approval.requested"], {"runs": 1, "approvals": 1}),
    "approve": (["approval.approved"], {"decisions": 1}),
    "cancel": (["pipelinerun.cancelled", "approval.cancelled"], {}),
    "retry": (["pipelinerun.retried"], {}),
    "ask": (["approval.requested"], {"approvals": 1}),
}


def check_success(r, actor, t, action, response, before) -> None:
    what, api = action.rsplit("_", 1)[0], action.endswith("_api")
    if what == "activate":
        # Allowed: refused by the next rule, the missing approval (see the module docstring).
        message = f"Index v{t.index_id} needs an approved activation request first."
        if api:
            assert response.status_code == 403
            assert response.json() == {"detail": message, "code": "PermissionDeniedError"}
        else:
            assert response.status_code == 302 and flashes(response) == [("error", message)]
        helpers.assert_unchanged(before, snapshot())
        return
    assert response.status_code == ({"request": 201}.get(what, 200) if api else 302), (
        response.content[:400]
    )
    verbs, counts = SUCCESS[what]
    after = snapshot()
    assert audit_since(before) == [(verb, actor) for verb in verbs]
    assert count_changes(before, after) == {**counts, "audit_events": len(verbs)}
    user = r.user(actor)
    if what == "request":
        run = PipelineRun.objects.order_by("-id").first()
        assert (run.requested_by_id, run.pipeline.slug, run.state) == (
            user.pk,
            t.slug,
            "awaiting_approval",
        )
    elif what == "approve":
        assert Decision.objects.filter(request_id=t.approval_id, approver=user).exists()
    elif what == "cancel":
        assert PipelineRun.objects.get(pk=t.pending_run_id).state == "cancelled"
    elif what == "retry":
        assert PipelineRun.objects.get(pk=t.failed_run_id).state == "queued"
    elif what == "ask":
        assert ApprovalRequest.objects.get(
            kind="index_activation", subject_id=t.index_id
        ).state == ("pending")


# --- the matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_action_on_pipeline(r, actor, target, action):
    outcome = EXPECT[(actor, target)][action.rsplit("_", 1)[0]]
    t = r.targets[target]
    before = snapshot()
    response = perform(r, actor, t, action)
    if outcome == "Y":
        check_success(r, actor, t, action, response, before)
    else:
        check_refusal(r, actor, t, action, outcome, response)
        helpers.assert_unchanged(before, snapshot())


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_view_runs_and_indexes(r, actor, target):
    outcome = EXPECT[(actor, target)]["view"]
    t = r.targets[target]
    user = r.user(actor)
    api = api_client(user)
    responses = [
        ui_client(user).get(f"/recsys/runs/{t.pending_run_id}/"),
        api.get(f"/api/v1/runs/{t.pending_run_id}/"),
        api.get(f"/api/v1/runs/{t.pending_run_id}/approval/"),
        api.get(f"/api/v1/indexes/{t.index_id}/"),
    ]
    if outcome == "Y":
        assert [x.status_code for x in responses] == [200] * 4
        assert responses[1].json()["pipeline"] == t.slug
        assert responses[3].json()["id"] == t.index_id
    else:
        assert_refused(responses[0], outcome, api=False)
        for response in responses[1:]:
            assert_refused(response, outcome, api=True)
