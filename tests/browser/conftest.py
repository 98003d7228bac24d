"""Browser tests: Debian's Chromium driven by Playwright against a live server.

Fixtures
  browser      one headless Chromium for the session (`executable_path` is
               Debian's, since `playwright install` cannot download here)
  page         a fresh context per test (1280x900); the test FAILS on any
               console error, uncaught page error or CSP violation.
               Expecting one (an intentional 403)? Call `browser_errors.clear()`.
  live_app     pytest-django's live server plus the real Celery worker of
               tests/conftest.py and the fake OpenAI server: `.url`, `.worker`.
               On SQLite the test database is a file, so the live server's
               thread, the test itself and the worker process all share it.
  log_in       `log_in(email, password=PASSWORD)` signs in through the real
               login form and waits for the workspace page.
  sign_up_through_form(page, base_url, name, email, password)
               signs up through the real form, opens the confirmation link
               from the mail the server sent, confirms, and waits for the
               workspace page (logged in).

Every test collected under tests/browser/ is marked `browser`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.factories import PASSWORD
from tests.servers import WorkerProcess

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Reported through the console too, but an explicit listener names the directive.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`);
});
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django refuses
    # ORM calls from a thread with a running loop unless told this is
    # intended. Set only once a browser test starts (they run last, see
    # tests/conftest.py), so no other test or subprocess inherits it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance):  # type: ignore[no-untyped-def]
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    browser = playwright_instance.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def browser_errors() -> list[str]:
    """Console errors, page errors and CSP violations seen by `page` during the test."""
    return []


def new_page(browser, errors: list[str], viewport: dict[str, int] = DESKTOP):  # type: ignore[no-untyped-def]
    """A page in a fresh context whose console errors land in `errors`."""
    context = browser.new_context(viewport=viewport)
    context.add_init_script(_CSP_LISTENER)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return page


@pytest.fixture
def page(browser, browser_errors: list[str]):  # type: ignore[no-untyped-def]
    page = new_page(browser, browser_errors)
    yield page
    page.context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    """Fail the test itself (not its teardown) when the browser reported errors."""
    result = yield
    errors = getattr(item, "funcargs", {}).get("browser_errors")
    if errors:
        pytest.fail("The browser reported errors:\n  " + "\n  ".join(errors), pytrace=False)
    return result


@dataclass
class LiveApp:
    url: str
    worker: WorkerProcess


@pytest.fixture
def live_app(live_server, worker: WorkerProcess, settings) -> LiveApp:  # type: ignore[no-untyped-def]
    # The web side only checks that a key exists (for its banner); the worker
    # holds the real one, pointing at the fake server.
    settings.OPENAI_API_KEY = "test-key"
    return LiveApp(url=live_server.url, worker=worker)


def log_in_through_form(page, base_url: str, email: str, password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base_url}/accounts/login/")
    page.locator("#id_username").fill(email)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def sign_up_through_form(page, base_url: str, name: str, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    from django.core import mail

    page.goto(f"{base_url}/accounts/signup/")
    page.locator("#id_name").fill(name)
    page.locator("#id_email").fill(email)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    [message] = [m for m in mail.outbox if m.to == [email]]
    link = re.search(r"https?://[^\s]+(/accounts/verify/[^\s/]+/)", message.body).group(1)  # type: ignore[union-attr]
    page.goto(base_url + link)
    page.get_by_role("button", name="Confirm my address").click()
    page.wait_for_url(lambda url: "/w/" in url)


@pytest.fixture
def log_in(page, live_app: LiveApp) -> Callable[..., None]:  # type: ignore[no-untyped-def]
    def log_in(email: str, password: str = PASSWORD) -> None:
        log_in_through_form(page, live_app.url, email, password)

    return log_in
