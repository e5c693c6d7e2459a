"""Journey 4, admin: searches the demo catalog in the console, filters, compares two index
versions (rank changes highlighted), and opens the provenance panel of a result down to the
people who approved each dataset version, the training run and the activation."""

import pytest

from governance import services as gov
from governance.models import ApprovalRequest, DatasetVersion
from recsys import services, serving
from recsys.models import IndexVersion, PipelineRun
from teams.demo import DEMO_PASSWORD
from tests.browser.conftest import log_in
from tests.browser.test_ops_journey import _baseline, _users, demo_pipeline_with_tiny_model
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _candidate(pipeline, users):
    """A second, approved and finished retrain: a candidate index to compare with."""
    run = services.run_request(
        actor=users["ops.ops"],
        pipeline=pipeline,
        kind="full_retrain",
        inputs=list(PipelineRun.objects.filter(pipeline=pipeline).latest("id").inputs.all()),
        parameters={"seed": 7, "max_steps": 6, "lr": 5e-3},  # visibly different ranks
        reason="candidate for comparison",
    )
    request = ApprovalRequest.objects.get(kind="pipeline_run", subject_id=run.pk)
    for approver in ("catalog.steward", "relevance.steward", "ops.lead"):
        gov.approval_decide(actor=users[approver], request=request, verdict="approve")
    wait_for(
        lambda: PipelineRun.objects.get(pk=run.pk).state in ("succeeded", "failed"), timeout=240
    )
    assert PipelineRun.objects.get(pk=run.pk).state == "succeeded"
    return IndexVersion.objects.get(run=run)


def _search(page):
    with page.expect_navigation():
        page.click("button:has-text('Search')")


def test_admin_searches_compares_and_traces_a_result(
    chromium, live_server, celery_worker, screenshot, settings
):
    settings.STEWARD_ACTIVE_CHECK_SECONDS = 0
    serving.reset()
    pipeline = demo_pipeline_with_tiny_model(settings, seed=4)
    users = _users()
    active = _baseline(pipeline, users)
    candidate = _candidate(pipeline, users)
    catalog = DatasetVersion.objects.get(asset__slug="product-catalog", number=1)

    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = log_in(context, live_server.url, "admin", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("text=Search console")
    assert page.locator("h1").inner_text() == "Search console"
    assert "Your queries will appear here." in page.content()

    page.fill("#q", "wireless headphones")
    page.select_option("#mode", "dense")
    _search(page)
    latency = page.locator("#latency").inner_text()
    assert f"Index v{active.pk}" in latency and "total" in latency and "ms" in latency
    rows = page.locator("table.hits tr")
    assert rows.count() == 11  # header + 10 results
    assert "Headphones" in page.locator("table.hits").inner_text()
    screenshot(page, "admin-01-console-results")

    # Filter by a brand the index knows: every row shows that brand.
    page.click("summary:has-text('Filters')")
    brand = page.locator("#f-brand option").nth(1).inner_text()
    page.select_option("#f-brand", brand)
    _search(page)
    brands = page.locator("table.hits tr td:nth-child(4)").all_inner_texts()
    assert brands and set(brands) == {brand}
    page.select_option("#f-brand", "")

    # Compare the active index with the candidate: rank changes are labelled.
    page.select_option("#compare", str(candidate.pk))
    _search(page)
    assert f"Comparing v{active.pk} (left) with v{candidate.pk} (right)" in page.content()
    changes = page.locator(".compare .rank-change").all_inner_texts()
    assert len(changes) == 10
    assert all(c == "new" or c == "same" or c.split()[0] in ("up", "down") for c in changes)
    assert any(c != "same" for c in changes)
    screenshot(page, "admin-02-compare-index-versions")

    # The provenance panel of the first result, down to the approvers.
    page.locator(".compare table.hits").first.locator("a:has-text('why?')").first.click()
    panel = page.locator(".provenance")
    panel.wait_for()
    text = panel.inner_text()
    assert f"Why: provenance of index v{active.pk}" in text
    for person in ("catalog.steward", "relevance.steward", "ops.lead"):
        assert person in text, person
    assert "Activation approved by" in text and str(catalog) in text
    screenshot(page, "admin-03-provenance")
    panel.locator(f"a:has-text('{catalog}')").click()
    page.wait_for_url(f"**/governance/versions/{catalog.pk}/")
    assert str(catalog.number) in page.locator("h1").inner_text()
    page.go_back()

    # The recent query is listed; a viewer is refused with a message.
    page.goto(f"{live_server.url}/recsys/console/")
    assert "wireless headphones" in page.locator(".card", has_text="Recent queries").inner_text()
    context.close()
    viewer = chromium.new_context()
    page = log_in(viewer, live_server.url, "catalog.viewer", DEMO_PASSWORD)
    page.goto(f"{live_server.url}/recsys/console/?q=cable")
    assert (
        "Only admins and the ops and leads of Search ops" in page.locator(".refusal").inner_text()
    )
    viewer.close()
    serving.reset()
