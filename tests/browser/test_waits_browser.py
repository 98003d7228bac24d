"""Durable waits in a real browser: Alice builds a workflow that runs another
one and then waits; Vera (a viewer, in a second browser) watches the run
page say what it waits for, live. Names carry markup that must stay text."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in_through_form, new_page
from tests.factories import published_workflow
from workflows import services
from workflows.models import Run

PAYLOAD = '<img src=x onerror=alert(1)><span hx-get="/" hx-trigger="load">x</span>'


def saved(page: Page) -> None:
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)


def test_a_workflow_step_is_built_in_the_editor_and_its_run_is_watched_by_a_viewer(  # type: ignore[no-untyped-def]
    page: Page, browser, browser_errors, live_app, log_in, personas
) -> None:
    called = published_workflow(
        personas.workspace,
        {
            "name": f"Publish {PAYLOAD}",
            "inputs": [{"name": "text", "type": "text", "description": f"What to post {PAYLOAD}"}],
            "steps": [{"key": "post", "type": "template", "template": "Posted: {{ text }}"}],
        },
    )
    caller = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "Caller",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [{"key": "first", "type": "template", "template": "About {{ topic }}"}],
        },
        user=personas.alice,
    )
    log_in("alice@example.com")
    base = f"{live_app.url}/w/{personas.workspace.slug}"
    page.goto(f"{base}/workflows/{caller.id}/?panel=step&step=0")
    page.get_by_label("Add a step before the output").click()
    page.get_by_role("button", name="Run a workflow").click()
    expect(page.locator("#panel-title")).to_have_text("Step 2 · Run a workflow")
    expect(page.locator("#err-workflow")).to_contain_text("Pick a workflow to run.")
    page.locator("#id_workflow").select_option(label=f"Publish {PAYLOAD}")
    # Its inputs appear, described as their workflow says (as text, not markup).
    field = page.locator("#id_in-text")
    expect(field).to_be_visible()
    expect(page.locator("#help-in-text")).to_have_text(f"What to post {PAYLOAD}")
    expect(page.locator("#err-inputs")).to_contain_text("needs text")
    field.fill("{{ first }}")
    saved(page)
    expect(page.locator("#err-inputs")).to_be_empty()
    expect(page.locator("#editor-status")).to_contain_text("Ready to run")
    step = caller.__class__.objects.get(id=caller.id).definition["steps"][1]
    assert step["type"] == "workflow" and step["workflow"] == called.id
    assert step["inputs"] == {"text": "{{ first }}"}

    # A wait after it, then a test run: the run parks at the wait.
    page.get_by_label("Add a step before the output").click()
    page.get_by_role("button", name="Wait").click()
    page.locator("#id_seconds").fill("600")
    saved(page)
    page.get_by_role("link", name="Test run").click()
    page.get_by_label("topic").fill(PAYLOAD)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text("Waiting for a time", timeout=30_000)
    run = Run.objects.get(workflow=caller)
    child = Run.objects.get(parent=run)
    assert child.status == Run.Status.SUCCEEDED
    assert child.output == f"Posted: About {PAYLOAD}"

    # Vera, a viewer, watches the run page in her own browser.
    vera = new_page(browser, browser_errors)
    try:
        log_in_through_form(vera, live_app.url, "vera@example.com")
        vera.goto(f"{base}/runs/{run.id}/")
        expect(vera.locator("#run-status")).to_have_text("Waiting for a time")
        expect(vera.locator("#run-waiting-time")).to_contain_text("Waiting until")
        children = vera.locator("#step-step_2-children")
        expect(children).to_contain_text(f"Run #{child.id} of Publish {PAYLOAD}")
        vera.locator("#step-step_2-children").get_by_role("link", name=f"Run #{child.id}").click()
        expect(vera).to_have_url(re.compile(rf"/runs/{child.id}/$"))
        expect(vera.locator("#run-parent")).to_have_text(f"run #{run.id}")
        expect(vera.locator("#run-output")).to_have_text(f"Posted: About {PAYLOAD}")
        # Alice cancels; Vera's page (polling) sees it without a reload.
        vera.goto(f"{base}/runs/{run.id}/")
        services.run_cancel(run=run)
        expect(vera.locator("#run-status")).to_have_text("Canceled", timeout=10_000)
    finally:
        vera.context.close()
