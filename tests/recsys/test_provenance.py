"""The provenance chain of a result produced by a real full retrain: index → model and its run
→ dataset versions (one produced by a cleaning run) → who approved each step, and when; the
console's "why" panel shows it with links, in a fixed number of queries."""

from __future__ import annotations

import pytest

from governance import services as gov
from governance.models import ApprovalRequest, DatasetVersion
from recsys import services, serving
from recsys.models import IndexVersion
from recsys.search.answers import search_answer
from recsys.search.provenance import index_provenance
from tests.conftest import login
from tests.recsys.pipeline_setup import approve_run, build_pipeline_org

pytestmark = pytest.mark.django_db


@pytest.fixture
def retrained(org, settings, tmp_path, tiny_model_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.STEWARD_SEARCH_PIPELINE = "search"
    serving.reset()
    org = build_pipeline_org(org, tiny_model_path)
    ops = org.user("beta.ops")
    clean = services.run_request(
        actor=ops, pipeline=org.pipeline, kind="clean", inputs=[org.catalog_v], reason="dedupe"
    )
    with django_capture_on_commit_callbacks(execute=False):
        approve_run(org, clean)
    services.run_execute(run_id=clean.pk, attempt=1)
    clean.refresh_from_db()
    assert clean.state == "succeeded", clean.error
    cleaned = DatasetVersion.objects.get(pk=clean.outputs["cleaned_version"])
    gov.dataset_version_profile(version_id=cleaned.pk)
    request = ApprovalRequest.objects.get(kind="dataset_version", subject_id=cleaned.pk)
    gov.approval_decide(
        actor=org.user("alpha.steward"), request=request, verdict="approve", comment="clean ok"
    )
    retrain = services.run_request(
        actor=ops,
        pipeline=org.pipeline,
        kind="full_retrain",
        inputs=[cleaned, org.labels_v],
        reason="retrain on the cleaned catalog",
    )
    with django_capture_on_commit_callbacks(execute=False):
        approve_run(org, retrain)
    services.run_execute(run_id=retrain.pk, attempt=1)
    retrain.refresh_from_db()
    assert retrain.state == "succeeded", retrain.error
    index = IndexVersion.objects.get(run=retrain)
    approval = services.index_request_activation(actor=ops, index=index)
    gov.approval_decide(actor=org.user("beta.lead"), request=approval, verdict="approve")
    services.index_activate(actor=ops, index=index)
    org.clean_run, org.cleaned, org.retrain, org.index = clean, cleaned, retrain, index
    yield org
    serving.reset()


def _people(approvals):
    return sorted((a["approver"], a["team"], a["verdict"]) for a in approvals)


def test_the_chain_is_complete_and_correct(retrained):
    org = retrained
    result = search_answer(user=org.user("beta.ops"), q="usb cable", k=3)
    assert result.index_id == org.index.pk
    chain = index_provenance(IndexVersion.objects.get(pk=result.index_id))
    assert chain["index"]["id"] == org.index.pk and chain["index"]["status"] == "active"
    assert _people(chain["index"]["activation_approvals"]) == [("beta.lead", "Beta", "approve")]
    assert chain["model"]["id"] == org.index.model_version_id
    assert chain["training_run"]["id"] == org.retrain.pk
    assert _people(chain["training_run"]["approvals"]) == [
        ("alpha.steward", "Alpha", "approve"),
        ("beta.lead", "Beta", "approve"),
    ]
    assert chain["cleaned_catalog"]["id"] == org.retrain.outputs["cleaned_version"]
    cleaned = DatasetVersion.objects.get(pk=org.retrain.outputs["cleaned_version"])
    assert chain["cleaned_catalog"]["label"] == f"{cleaned.asset.name} v{cleaned.number}"
    datasets = {d["id"]: d for d in chain["datasets"]}
    assert set(datasets) == {org.cleaned.pk, org.labels_v.pk}
    catalog = datasets[org.cleaned.pk]
    assert catalog["team"] == "Alpha" and catalog["status"] == "approved"
    assert _people(catalog["approvals"]) == [("alpha.steward", "Alpha", "approve")]
    assert catalog["approvals"][0]["comment"] == "clean ok"
    assert catalog["cleaned_by"]["id"] == org.clean_run.pk
    assert _people(catalog["cleaned_by"]["approvals"]) == _people(
        chain["training_run"]["approvals"]
    )
    labels = datasets[org.labels_v.pk]
    assert labels["cleaned_by"] is None
    assert _people(labels["approvals"]) == [("beta.steward", "Beta", "approve")]
    assert all(a["at"] is not None for d in datasets.values() for a in d["approvals"])


def test_the_why_panel_links_every_object(retrained, client):
    org = retrained
    login(client, org.user("beta.ops"))
    url = f"/recsys/console/indexes/{org.index.pk}/why/"
    product = search_answer(user=org.user("beta.ops"), q="cable", k=1, mode="dense").answer.hits[0]
    response = client.get(url, {"product": product.product_id}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "<html" not in page  # an htmx fragment
    assert product.title in page
    for link in (
        f"/recsys/runs/{org.retrain.pk}/",
        f"/recsys/runs/{org.clean_run.pk}/",
        f"/governance/versions/{org.cleaned.pk}/",
        f"/governance/versions/{org.labels_v.pk}/",
        f"/recsys/pipelines/{org.pipeline.slug}/#index-{org.index.pk}",
    ):
        assert link in page, link
    for person in ("alpha.steward", "beta.steward", "beta.lead"):
        assert person in page


def test_provenance_queries_do_not_grow_with_approvals(retrained, django_assert_max_num_queries):
    index = IndexVersion.objects.select_related("pipeline", "model_version", "run").get(
        pk=retrained.index.pk
    )
    with django_assert_max_num_queries(12):
        index_provenance(index)
