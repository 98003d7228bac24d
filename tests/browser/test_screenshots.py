"""`make screenshots`: regenerate docs/screenshots/, every main page at desktop and phone width.

Skipped unless STEPWISE_SCREENSHOTS=1 (the Makefile target sets it). The data
is made the real way: a team signs up, workflows are created and published
through the services, and a real worker runs them against the fake OpenAI
server (tests/browser/seed.py). Every page must also load without a console
error or CSP violation, so this doubles as a smoke test of the whole UI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, reverse

from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    log_in_through_form,
    new_page,
    sign_up_through_form,
)
from tests.browser.seed import PASSWORD, seed_workspace

pytestmark = [
    pytest.mark.screenshots,
    pytest.mark.skipif(
        os.environ.get("STEPWISE_SCREENSHOTS") != "1",
        reason="regenerates docs/screenshots/; run `make screenshots`",
    ),
]

OUT = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}


def shoot(page, name: str, width: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_load_state("networkidle")
    # Fonts and the htmx swaps settle; a screenshot mid-fade would be grey.
    page.wait_for_timeout(250)
    page.evaluate("window.scrollTo(0, 0)")  # else the sticky header is drawn mid-page
    page.mouse.move(0, 0)  # no hover left over from a click
    page.screenshot(path=str(OUT / f"{name}-{width}.png"), full_page=True, animations="disabled")


def optional_url(name: str, *args: object) -> str | None:
    """Pages other issues add: shot when they exist."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def test_every_main_page_at_desktop_and_phone_width(browser, browser_errors, live_app) -> None:  # type: ignore[no-untyped-def]
    OUT.mkdir(parents=True, exist_ok=True)
    seeded = seed_workspace()
    slug = seeded.workspace.slug
    triage = seeded.workflows["Support triage"]
    billing_run = seeded.runs[0]
    failed_run = seeded.runs[-1]

    pages = [
        ("workflows", reverse("workspace_home", args=[slug])),
        ("workflow-new", optional_url("workflow_new", slug)),
        ("editor", optional_url("workflow_editor", slug, triage.id)),
        ("versions", optional_url("workflow_versions", slug, triage.id)),
        ("triggers", optional_url("workflow_triggers", slug, triage.id)),
        ("runs", reverse("run_list", args=[slug])),
        ("run-detail", reverse("run_detail", args=[slug, billing_run.id])),
        ("run-detail-failed", reverse("run_detail", args=[slug, failed_run.id])),
        ("usage", optional_url("workspace_usage", slug)),
        ("audit-log", optional_url("audit_log", slug)),
        ("workspace-settings", reverse("workspace_settings", args=[slug])),
        ("api-tokens", optional_url("api_tokens", slug)),
    ]

    for width, viewport in WIDTHS.items():
        anonymous = new_page(browser, browser_errors, viewport)
        for name, path in (
            ("landing", "/"),
            ("login", "/accounts/login/"),
            ("signup", "/accounts/signup/"),
        ):
            anonymous.goto(live_app.url + path)
            shoot(anonymous, name, width)

        # Issue 2's promise: sign up and land in a workspace of your own.
        sign_up_through_form(
            anonymous,
            live_app.url,
            f"Sam Okafor {width}",
            f"sam.{width}@example.com",
            "a long enough passphrase 42",
        )
        shoot(anonymous, "signup-landing", width)
        anonymous.context.close()

        page = new_page(browser, browser_errors, viewport)
        log_in_through_form(page, live_app.url, seeded.owner.email, PASSWORD)
        for name, path in pages:
            if path is None:
                continue
            response = page.goto(live_app.url + path)
            assert response is not None and response.ok, (
                f"{name}: {path} answered {response and response.status}"
            )
            if name == "run-detail":
                # Show what a step sent: open the first step's user message.
                page.locator("#step-triage details").nth(1).locator("summary").click()
            shoot(page, name, width)
        page.context.close()
