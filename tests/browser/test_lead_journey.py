"""Journey 1, team lead: opens the org chart, adds a member to their team, assigns an
accountable person for an asset, and is refused (with a message) when editing another team."""

import pytest
from django.core.management import call_command

from teams.demo import DEMO_PASSWORD
from teams.models import Membership, Responsibility
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_team_lead_builds_team_and_assigns_accountable(chromium, live_server, screenshot):
    call_command("seed_demo", "--quiet-logins", "--i-know-this-is-a-demo")
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = log_in(context, live_server.url, "ops.lead", DEMO_PASSWORD)

    # The org chart shows the tree with leads and member counts.
    assert page.locator("h1").inner_text() == "Org chart"
    tree = page.locator("ul.tree.root")
    assert "Search & Recommendations" in tree.inner_text()
    assert "Search ops" in tree.inner_text()
    ops_node = page.locator(".node", has_text="Search ops")
    assert "you manage" in ops_node.inner_text()
    assert "5 members" in ops_node.inner_text()
    screenshot(page, "lead-01-org-chart")

    # Their team page lists the asset without an accountable person as a gap.
    page.click("text=Search ops")
    page.wait_for_url(f"{live_server.url}/teams/search-ops/")
    assert "Search queries" in page.locator("#gaps ~ table").first.inner_text()
    screenshot(page, "lead-02-team-page")

    # Add a member; a mistyped username gets an inline error and nothing is added.
    page.fill("#id_username", "catalog.viewr")
    page.select_option("#id_role", "viewer")
    page.click("text=Add member")
    assert "No active user with the username 'catalog.viewr'" in page.content()
    screenshot(page, "lead-03-add-member-error")
    page.fill("#id_username", "catalog.viewer")
    page.select_option("#id_role", "engineer")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/teams/search-ops/")
    assert (
        "Added catalog.viewer to Search ops as ML engineer."
        in page.locator(".messages").inner_text()
    )
    assert page.locator("#member-catalog\\.viewer").is_visible()
    assert Membership.objects.filter(
        user__username="catalog.viewer", team__slug="search-ops"
    ).exists()

    # Assign an accountable person for the asset (from the gap's link).
    page.click("text=Assign an accountable person")
    page.select_option("#id_user", label="Ops Steward")
    page.select_option("#id_subject", label="data asset: Search queries")
    screenshot(page, "lead-04-assign-accountable")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/teams/search-ops/")
    assert (
        "ops.steward is now Accountable for Search queries."
        in page.locator(".messages").inner_text()
    )
    assert "Every subject and area of this team has an accountable person." in page.content()
    accountable = Responsibility.objects.get(
        kind="A", subject_type__model="dataasset", team__slug="search-ops"
    )
    assert accountable.user.username == "ops.steward"
    screenshot(page, "lead-05-gap-closed")

    # Another team: visible, but editing it is refused with a message, and nothing changes.
    members_before = Membership.objects.filter(team__slug="catalog-data").count()
    page.goto(f"{live_server.url}/teams/catalog-data/")
    assert page.locator("text=Add a member").count() == 0  # no edit controls shown
    page.goto(f"{live_server.url}/teams/catalog-data/members/add/")
    refusal = page.locator(".refusal").inner_text()
    assert "You cannot add members to this team" in refusal
    assert "only a lead of Catalog data" in refusal
    screenshot(page, "lead-06-refused-other-team")
    assert Membership.objects.filter(team__slug="catalog-data").count() == members_before
    context.close()
