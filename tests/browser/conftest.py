"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright against a live server.

Without a browser the journeys skip with the reason, except under CI, where they fail. Every
journey runs with the production login lockout on and fails when a page it opened violated the
Content Security Policy (an inline script, handler or style the policy blocked)."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("STEWARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_browser():
    reason = os.environ.get("STEWARD_BROWSER_UNAVAILABLE", "")
    if not reason and not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not found (scripts/install_browser.sh installs it)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run under CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    # Playwright's sync API runs an event loop in this thread; Django must allow ORM calls here.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Registered in every page before its own scripts: each CSP violation is reported to Python.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__stewardCspViolation({
    directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile,
    line: e.lineNumber, sample: e.sample, page: e.documentURI,
  });
});
"""


class CspWatchingBrowser:
    """The session's browser; each context it opens records the CSP violations of its pages
    (the `securitypolicyviolation` events, and the browser's console reports of them)."""

    def __init__(self, browser):
        self._browser = browser
        self.violations: list = []

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.expose_binding(
            "__stewardCspViolation", lambda _source, violation: self.violations.append(violation)
        )
        context.add_init_script(CSP_LISTENER)
        context.on("console", self._console)
        return context

    def _console(self, message):
        if "Content Security Policy" in message.text:
            self.violations.append({"console": message.text})

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture
def chromium(chromium_browser, settings):
    """The browser of one journey: the login lockout on (as in production), and no CSP
    violation on any page the journey opened (checked when it ends)."""
    settings.AXES_ENABLED = True
    browser = CspWatchingBrowser(chromium_browser)
    yield browser
    assert not browser.violations, f"Content Security Policy violations: {browser.violations}"


@pytest.fixture
def screenshot():
    """screenshot(page, name): save a full-page PNG under test-artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def log_in(context, base_url: str, username: str, password: str):
    page = context.new_page()
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/teams/")
    return page
