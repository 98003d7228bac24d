"""Alice and Bob edit the same workflow in two browsers: no edit is ever lost.

Two browser contexts (two people, each logged in), the live server and the
real worker (tests/browser/conftest.py).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in_through_form, new_page
from workflows import services
from workflows.models import Workflow

PAYLOAD = '<img src=x onerror=alert(1)><span hx-get="/" hx-trigger="load">x</span>'
DEFINITION = {
    "name": "Together",
    "description": "",
    "inputs": [{"name": "ticket", "type": "text", "required": True}],
    "steps": [
        {
            "key": "triage",
            "type": "llm",
            "title": "Classify",
            "system": "",
            "prompt": "Classify {{ ticket }}",
        },
        {"key": "reply", "type": "template", "title": "Reply", "template": "Thanks: {{ triage }}"},
    ],
}


def saved(page: Page) -> None:
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)


def step(workflow: Workflow, index: int = 0) -> dict:
    workflow.refresh_from_db()
    return workflow.definition["steps"][index]


@pytest.fixture
def workflow(personas) -> Workflow:  # type: ignore[no-untyped-def]
    import json

    return services.workflow_create(
        workspace=personas.workspace,
        definition=json.loads(json.dumps(DEFINITION)),
        user=personas.alice,
    )


@pytest.fixture
def bob_page(browser, browser_errors, live_app, personas):  # type: ignore[no-untyped-def]
    page = new_page(browser, browser_errors)
    log_in_through_form(page, live_app.url, "bob@example.com")
    yield page
    page.context.close()


def editor_url(live_app, personas, workflow: Workflow, query: str = "?panel=step&step=0") -> str:  # type: ignore[no-untyped-def]
    return f"{live_app.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/{query}"


def test_two_people_editing_one_step_at_once_lose_nothing_and_see_each_other(  # type: ignore[no-untyped-def]
    page: Page, bob_page: Page, live_app, log_in, personas, workflow: Workflow, browser_errors
) -> None:
    alice, bob = page, bob_page
    log_in("alice@example.com")
    alice.goto(editor_url(live_app, personas, workflow))
    bob.goto(editor_url(live_app, personas, workflow))
    expect(alice.locator("#editor-sync")).to_contain_text("Bob is here too", timeout=8_000)
    expect(bob.locator("#editor-sync")).to_contain_text("Alice is here too", timeout=8_000)

    # Alice changes the title; Bob, whose form still shows the old one, changes the system message.
    alice.locator("#id_title").fill(PAYLOAD)
    saved(alice)
    bob.locator("#id_system").fill("Be brief.")
    saved(bob)
    assert (step(workflow)["title"], step(workflow)["system"]) == (PAYLOAD, "Be brief.")
    # Each sees the other's change within 5 s, as text (markup stays inert).
    expect(bob.locator("#id_title")).to_have_value(PAYLOAD, timeout=5_000)
    expect(bob.locator("#card-head-0")).to_have_text(PAYLOAD, timeout=5_000)
    expect(alice.locator("#id_system")).to_have_value("Be brief.", timeout=5_000)
    expect(bob.locator("#card-head-0 img, #card-head-0 span[hx-get], #panel img")).to_have_count(0)

    # Bob's editor misses the next updates (as if both typed within the same seconds).
    bob.route("**/sync/**", lambda route: route.fulfill(status=204))
    alice.locator("#id_title").fill("Alice's title")
    saved(alice)
    bob.locator("#id_title").fill("Bob's title")
    conflict = bob.locator("#conflicts .conflict")
    expect(conflict).to_contain_text(re.compile(r"Alice changed Title \d+ s ago"))
    expect(bob.locator("#save-state")).to_have_text("Not saved: someone else changed it")
    assert step(workflow)["title"] == "Alice's title"
    conflict.get_by_role("button", name="Keep mine").click()
    expect(conflict).to_have_count(0)
    saved(bob)
    assert step(workflow)["title"] == "Bob's title"

    alice.locator("#id_prompt").fill("Alice's prompt {{ ticket }}")
    saved(alice)
    bob.locator("#id_prompt").fill("Bob's prompt {{ ticket }}")
    expect(conflict).to_contain_text("Alice changed Prompt")
    conflict.get_by_role("button", name="Use theirs").click()
    expect(bob.locator("#id_prompt")).to_have_value("Alice's prompt {{ ticket }}")
    assert step(workflow)["prompt"] == "Alice's prompt {{ ticket }}"

    # Back in sync: Alice sees Bob's title, nothing was lost on the way.
    bob.unroute("**/sync/**")
    expect(alice.locator("#id_title")).to_have_value("Bob's title", timeout=5_000)
    final = step(workflow)
    assert (final["title"], final["system"], final["prompt"]) == (
        "Bob's title",
        "Be brief.",
        "Alice's prompt {{ ticket }}",
    )
    expect(alice.locator(".toast-error")).to_have_count(0)
    # Alice only ever saved her own changes: leaving a field she had saved sends nothing more.
    expect(alice.locator("#conflicts .conflict")).to_have_count(0)
    # The refused saves were expected: Chromium logs every 409 answer as a console error.
    browser_errors[:] = [error for error in browser_errors if "status of 409" not in error]


def test_back_and_forward_never_bring_back_a_stale_form(  # type: ignore[no-untyped-def]
    page: Page, live_app, log_in, personas, workflow: Workflow
) -> None:
    log_in("bob@example.com")
    page.goto(editor_url(live_app, personas, workflow))
    page.locator("#id_title").fill("New title")
    saved(page)
    page.locator("#select-step-1").click()
    expect(page.locator("#panel-title")).to_have_text("Step 2 · Template")
    page.go_back()
    expect(page.locator("#panel-title")).to_have_text("Step 1 · LLM prompt")
    expect(page.locator("#id_title")).to_have_value("New title")
    expect(page.locator("#card-head-0")).to_have_text("New title")
    page.locator("#id_title").press("End")
    page.locator("#id_title").press_sequentially("!")
    saved(page)
    assert step(workflow)["title"] == "New title!"
    page.go_forward()
    expect(page.locator("#panel-title")).to_have_text("Step 2 · Template")
    page.go_back()
    expect(page.locator("#id_title")).to_have_value("New title!")
    page.locator("#id_system").fill("Kept")
    saved(page)
    assert (step(workflow)["title"], step(workflow)["system"]) == ("New title!", "Kept")


def test_a_step_added_right_after_typing_keeps_the_typing_and_gets_its_kind(  # type: ignore[no-untyped-def]
    page: Page, live_app, log_in, personas, workflow: Workflow
) -> None:
    log_in("bob@example.com")
    page.goto(editor_url(live_app, personas, workflow))
    page.locator("#id_title").fill("Typed just now")
    page.get_by_label("Add a step before the output").click()
    page.get_by_role("button", name="Template").click()
    expect(page.locator("#panel-title")).to_have_text("Step 3 · Template")
    expect(page.locator("#card-head-0")).to_have_text("Typed just now")
    expect(page.locator(".toast-error")).to_have_count(0)
    workflow.refresh_from_db()
    steps = workflow.definition["steps"]
    assert [s["type"] for s in steps] == ["llm", "template", "template"]
    assert steps[0]["title"] == "Typed just now"
