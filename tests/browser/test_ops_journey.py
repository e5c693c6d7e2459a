"""Journey 3, ops: triggers a retrain and sees it wait, naming the teams that must approve;
the stewards and the ops lead approve (each in their own browser context); a real worker runs
it while the run page's progress bar climbs to done; zero-shot vs fine-tuned metrics are shown;
the new index is activated after its approval, then rolled back to the one served before."""

import pytest
from django.core.management import call_command

from governance import services as gov
from governance.models import ApprovalRequest, DatasetVersion
from recsys import services
from recsys.models import ActiveIndex, IndexVersion, Pipeline, PipelineRun
from recsys.pipelines.encoding import tiny_encoder
from teams.demo import DEMO_PASSWORD
from tests.browser.conftest import log_in
from tests.conftest import tiny_models_dir, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def demo_pipeline_with_tiny_model(settings, *, seed: int) -> Pipeline:
    """The demo organization, its "product-search" pipeline training a tiny model (built from
    a config with `seed`) for a few steps so that a run takes seconds."""
    call_command("seed_demo", "--quiet-logins", "--i-know-this-is-a-demo")
    pipeline = Pipeline.objects.get(slug="product-search")
    model = tiny_encoder(str(tiny_models_dir()), seed=seed)
    pipeline.default_parameters = {
        "base_model": model,
        "max_steps": 4,
        "batch_size": 16,
        "max_length": 32,
    }
    pipeline.save(update_fields=["default_parameters"])
    return pipeline


def _users():
    from django.contrib.auth import get_user_model

    return {u.username: u for u in get_user_model().objects.all()}


def _baseline(pipeline, users):
    """An index already served before the journey, so there is something to roll back to."""
    labels = DatasetVersion.objects.get(asset__slug="relevance-labels", number=1)
    gov.approval_decide(
        actor=users["relevance.steward"],
        comment="ok",
        verdict="approve",
        request=ApprovalRequest.objects.get(subject_id=labels.pk, kind="dataset_version"),
    )
    catalog = DatasetVersion.objects.get(asset__slug="product-catalog", number=1)
    run = services.run_request(
        actor=users["ops.ops"],
        pipeline=pipeline,
        kind="full_retrain",
        inputs=[catalog, labels],
        reason="baseline",
    )
    request = ApprovalRequest.objects.get(kind="pipeline_run", subject_id=run.pk)
    for approver in ("catalog.steward", "relevance.steward", "ops.lead"):
        gov.approval_decide(actor=users[approver], request=request, verdict="approve")
    # Approved: the worker runs it (enqueued on commit).
    wait_for(
        lambda: PipelineRun.objects.get(pk=run.pk).state in ("succeeded", "failed"), timeout=240
    )
    assert PipelineRun.objects.get(pk=run.pk).state == "succeeded", PipelineRun.objects.get(
        pk=run.pk
    ).log
    index = IndexVersion.objects.get(run=run)
    activation = services.index_request_activation(actor=users["ops.ops"], index=index)
    gov.approval_decide(actor=users["ops.lead"], request=activation, verdict="approve")
    services.index_activate(actor=users["ops.ops"], index=index)
    return index


def _approve_in_inbox(chromium, base_url, username, card_text, screenshot, shot):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = log_in(context, base_url, username, DEMO_PASSWORD)
    page.click("text=Approvals")
    card = page.locator(".request", has_text=card_text)
    card.locator("textarea[name=comment]").fill(f"{username} approves")
    if shot:
        screenshot(page, shot)
    card.locator("button[value=approve]").click()
    assert "Approved request" in page.locator(".messages").inner_text()
    context.close()


def test_ops_retrains_activates_and_rolls_back(
    chromium, live_server, celery_worker, screenshot, settings
):
    # Tiny random models: the gate is tested in the services; here, the journey.
    settings.STEWARD_QUALITY_GATE_TOLERANCE = 1.0
    pipeline = demo_pipeline_with_tiny_model(settings, seed=2)
    users = _users()
    baseline = _baseline(pipeline, users)

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = log_in(context, live_server.url, "ops.ops", DEMO_PASSWORD)
    page.click("text=Pipelines")
    page.click("text=Product search")
    assert f"index v{baseline.pk}" in page.locator("#serving").inner_text()
    page.click("text=Trigger retrain")
    page.fill("#id_reason", "New December catalog and labels")
    screenshot(page, "ops-01-trigger-form")
    page.click("button:has-text('Request run')")
    assert "it waits for approvals" in page.locator(".messages").inner_text()
    run = PipelineRun.objects.latest("id")
    blockers = page.locator("#blockers").inner_text()
    for team in ("Catalog data", "Relevance ML", "Search ops"):
        assert f"waiting for {team}" in blockers
    assert "catalog.steward" in blockers and "ops.lead" in blockers
    screenshot(page, "ops-02-waiting-for-approvals")

    # The run page polls (htmx, every 2 s): its progress bar is watched, without a reload, from
    # "Awaiting approval" to done while the stewards approve in their own browsers; every value
    # the page showed is recorded.
    page.evaluate(
        """() => {
            window.seenProgress = [];
            const record = () => {
                const bar = document.getElementById("run-progress");
                const state = document.getElementById("run-state");
                if (bar && state) window.seenProgress.push(
                    [Number(bar.getAttribute("value")), state.innerText.trim()]);
            };
            new MutationObserver(record).observe(document.body, {childList: true, subtree: true});
            window.notReloaded = true;
        }"""
    )
    for i, approver in enumerate(("catalog.steward", "relevance.steward", "ops.lead")):
        _approve_in_inbox(
            chromium,
            live_server.url,
            approver,
            "Pipeline run",
            screenshot,
            "ops-03-steward-inbox" if i == 0 else "",
        )

    page.wait_for_selector("#run-state:has-text('Succeeded')", timeout=240_000)
    assert page.evaluate("window.notReloaded") is True  # the same document: it was polled
    seen = page.evaluate("window.seenProgress")
    values = [value for value, _state in seen]
    assert values == sorted(values) and values[-1] == 100, seen  # it only moves forward
    assert {state for _value, state in seen} - {"Awaiting approval"}, seen
    assert page.locator("#run-progress").get_attribute("value") == "100"
    metrics = page.locator("table.metrics").inner_text()
    assert "Zero-shot base model" in metrics and "Fine-tuned" in metrics
    assert "Active index (before)" in metrics
    screenshot(page, "ops-04-run-succeeded")
    run.refresh_from_db()
    assert run.state == "succeeded" and run.worker_host

    # Activation needs the ops lead's approval, then passes the gate; rollback restores v1.
    page.click(f"text={pipeline.name}")
    new_index = IndexVersion.objects.get(run=run)
    card = page.locator(f"#index-{new_index.pk}")
    card.locator("button:has-text('Request activation')").click()
    assert "to approve serving index" in page.locator(".messages").inner_text()
    _approve_in_inbox(
        chromium,
        live_server.url,
        "ops.lead",
        "Index activation",
        screenshot,
        "ops-05-lead-approves-activation",
    )
    page.reload()
    page.locator(f"#index-{new_index.pk} button:has-text('Activate')").click()
    assert f"Index v{new_index.pk} is now served." in page.locator(".messages").inner_text()
    assert f"index v{new_index.pk}" in page.locator("#serving").inner_text()
    screenshot(page, "ops-06-activated")
    # The rollback asks first (data-confirm, static/js/steward.js): dismissed, nothing is sent.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click(f"button:has-text('Roll back to v{baseline.pk}')")
    assert asked == [f"Serve index v{baseline.pk} again?"]
    assert ActiveIndex.objects.get(pipeline=pipeline).index_id == new_index.pk
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"button:has-text('Roll back to v{baseline.pk}')")
    assert "Rolled back" in page.locator(".messages").inner_text()
    assert ActiveIndex.objects.get(pipeline=pipeline).index_id == baseline.pk
    screenshot(page, "ops-07-rolled-back")
    context.close()
