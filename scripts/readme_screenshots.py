"""Take the README's screenshots from a running demo (`make run`), as its demo users see it.

    .venv/bin/python scripts/readme_screenshots.py [--base-url http://127.0.0.1:8000]

Read-only: it logs in, opens pages and runs one console query (recorded in the admin's recent
queries; compared with the newest other index version when there is one), and writes
docs/screenshots/{org-chart,inbox,run-page,console,provenance}.png.
Needs Debian's Chromium (scripts/install_browser.sh) and a demo whose load_demo has finished.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from teams.demo import DEMO_PASSWORD  # noqa: E402  (plain constants: no Django set-up)
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402

QUERY = "wireless headphones"


def _log_in(browser, base: str, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    return log_in(context, base, username, DEMO_PASSWORD)


def _shoot(page, out: Path, name: str, *, full_page: bool = False) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def take(base: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = _log_in(browser, base, "ops.lead")
        _shoot(page, out, "org-chart")

        page = _log_in(browser, base, "catalog.steward")
        page.goto(f"{base}/governance/approvals/")
        _shoot(page, out, "inbox")

        page = _log_in(browser, base, "ops.ops")
        page.goto(f"{base}/recsys/pipelines/product-search/")
        runs = page.locator("a[href^='/recsys/runs/']")
        if not runs.count():
            sys.exit("no pipeline run yet: wait for load_demo to finish (make run prints it)")
        hrefs = {runs.nth(i).get_attribute("href") for i in range(runs.count())}
        newest = max(hrefs, key=lambda h: int(re.search(r"/runs/(\d+)", h).group(1)))
        page.goto(base + newest)
        _shoot(page, out, "run-page", full_page=True)  # down to the metrics and loss chart

        page = _log_in(browser, base, "admin")
        page.goto(f"{base}/recsys/console/")
        page.fill("#q", QUERY)
        others = [
            option.get_attribute("value")
            for option in page.locator("#compare option:not([value=''])").all()
            if "active" not in option.inner_text()
        ]
        if others:  # another index version than the active one: compare with the newest
            page.select_option("#compare", others[0])
        with page.expect_navigation():
            page.click("button:has-text('Search')")
        page.locator("table.hits").first.wait_for()
        _shoot(page, out, "console")
        page.locator("table.hits a:has-text('why?')").first.click()
        page.locator(".provenance").wait_for()
        page.locator(".provenance").scroll_into_view_if_needed()
        _shoot(page, out, "provenance")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    print(f"Screenshots of {args.base_url}:")
    take(args.base_url.rstrip("/"), args.out)


if __name__ == "__main__":
    main()
