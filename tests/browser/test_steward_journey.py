"""Journey 2, data steward: sees an incident on the SLA dashboard and acknowledges it; opens the
approvals inbox, inspects a dataset version (profile, schema check, SLA results), approves it,
and rejects another with a comment. Approving the full catalog clears the volume incident."""

import pytest
from django.core.management import call_command

from governance.models import DatasetVersion, Incident
from teams.demo import DEMO_PASSWORD
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_steward_reviews_inbox_and_handles_incident(chromium, live_server, screenshot):
    # Uploads stay under the real MEDIA_ROOT: they are committed, so the session's worker may
    # profile them too, and it reads files from there.
    call_command("seed_demo", "--quiet-logins", "--i-know-this-is-a-demo")
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = log_in(context, live_server.url, "catalog.steward", DEMO_PASSWORD)

    # The SLA dashboard shows the catalog's volume breach; the steward acknowledges it.
    page.click("text=SLAs")
    row = page.locator("#sla-assets tr", has_text="Product catalog")
    assert "1 open incident" in row.inner_text()
    screenshot(page, "steward-01-sla-dashboard")
    page.click("text=v1: 900 rows (minimum 1,000)")
    assert "Minimum rows breach on Product catalog" in page.locator("h1").inner_text()
    page.fill("#id_note", "Full export is on its way (v2).")
    page.click("button:has-text('Acknowledge')")
    assert "Incident acknowledged." in page.locator(".messages").inner_text()
    assert "acknowledged" in page.locator("h1").inner_text()
    screenshot(page, "steward-02-incident-acknowledged")

    # The inbox lists both pending catalog versions with their profile and SLA results.
    page.click("text=Approvals")
    inbox = page.locator("main")
    assert "Product catalog v2" in inbox.inner_text()
    assert "Product catalog v3" in inbox.inner_text()
    v3_card = page.locator(".request", has_text="Product catalog v3")
    assert "does not match" in v3_card.inner_text()
    assert "missing: brand" in v3_card.inner_text()
    screenshot(page, "steward-03-inbox")

    # Inspect v2: profile table, schema check and SLA on one page; approve it.
    page.click("text=Product catalog v2")
    main = page.locator("#version-main")
    assert "2020 rows" in main.inner_text()
    assert "matches the contract" in main.inner_text()
    assert "all checks pass" in main.inner_text()
    assert main.locator("td code", has_text="price").is_visible()
    screenshot(page, "steward-04-version-profile")
    page.fill("textarea[name=comment]", "Full December catalog, checks pass.")
    page.click("button[value=approve]")
    assert "now approved" in page.locator(".messages").inner_text()
    v2 = DatasetVersion.objects.get(asset__slug="product-catalog", number=2)
    assert v2.status == "approved"
    assert DatasetVersion.objects.get(asset__slug="product-catalog", number=1).status == (
        "superseded"
    )

    # Reject v3 from the inbox: without a comment it is refused, with one it is rejected.
    page.click("text=Approvals")
    card = page.locator(".request", has_text="Product catalog v3")
    card.locator("button[value=reject]").click()
    assert "A rejection needs a comment" in page.locator(".messages").inner_text()
    assert DatasetVersion.objects.get(asset__slug="product-catalog", number=3).status == (
        "submitted"
    )
    card = page.locator(".request", has_text="Product catalog v3")
    card.locator("textarea[name=comment]").fill("The brand column is missing; re-export.")
    card.locator("button[value=reject]").click()
    assert "now rejected" in page.locator(".messages").inner_text()
    assert "Nothing waits for your decision." in page.content()
    screenshot(page, "steward-05-inbox-empty")
    assert DatasetVersion.objects.get(asset__slug="product-catalog", number=3).status == (
        "rejected"
    )

    # Approving the full catalog cleared the volume breach automatically, with a note.
    incident = Incident.objects.get(asset__slug="product-catalog", rule="volume")
    assert incident.status == "resolved"
    assert "cleared" in incident.resolution_note
    page.click("text=Decided by me")
    assert page.locator("table tr").count() == 4  # header + v1 (seeded) + v2 + v3
    screenshot(page, "steward-06-decided-by-me")
    context.close()
