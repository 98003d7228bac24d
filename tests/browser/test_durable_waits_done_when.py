"""Issue 14, tried as a new user would: a workflow extracts a list from a
document (JSON schema), maps a prompt over it ten at once, asks a teammate to
approve the result in the browser, then calls the shared "Publish" workflow.
Alice starts it and watches; Bob approves in his own browser. Every text
carries markup that must stay text."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in_through_form, new_page
from tests.factories import published_workflow
from workflows import services
from workflows.models import Run, StepItem

PAYLOAD = "<img src=x onerror=alert(1)>"
ITEMS = [f"story {i} {PAYLOAD}" for i in range(12)]


def test_extract_map_approve_and_publish_watched_live_in_two_browsers(  # type: ignore[no-untyped-def]
    page: Page, browser, browser_errors, live_app, log_in, personas
) -> None:
    publish = published_workflow(
        personas.workspace,
        {
            "name": "Publish",
            "inputs": [{"name": "headlines", "type": "json"}],
            "steps": [
                {
                    "key": "post",
                    "type": "template",
                    "template": "Published {{ headlines.0 }} and the rest",
                }
            ],
        },
    )
    reply = json.dumps({"stories": ITEMS})
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "Newsletter",
            "inputs": [{"name": "document", "type": "text"}],
            "steps": [
                {
                    "key": "extract",
                    "type": "llm",
                    "prompt": f"List the stories in: {{{{ document }}}} [[fake:reply={reply}]]",
                    "max_tokens": 2000,
                    "response_format": {
                        "type": "json_schema",
                        "name": "stories",
                        "schema": {
                            "type": "object",
                            "properties": {
                                "stories": {"type": "array", "items": {"type": "string"}}
                            },
                            "required": ["stories"],
                            "additionalProperties": False,
                        },
                    },
                },
                {
                    "key": "headlines",
                    "type": "map",
                    "over": "{{ extract.stories }}",
                    "concurrency": 10,
                    "prompt": "A headline for: {{ item }} [[fake:latency=1500]]",
                    "max_tokens": 60,
                },
                {
                    "key": "approve",
                    "type": "approval",
                    "message": "Publish {{ headlines.0 }} and {{ extract.stories.1 }}?",
                },
                {
                    "key": "publish",
                    "type": "workflow",
                    "workflow": publish.id,
                    "inputs": {"headlines": "{{ headlines }}"},
                },
            ],
        },
        user=personas.alice,
    )
    services.workflow_publish(workflow=workflow, user=personas.alice)
    base = f"{live_app.url}/w/{personas.workspace.slug}"

    # Alice starts a test run from the editor and opens its page.
    log_in("alice@example.com")
    page.goto(f"{base}/workflows/{workflow.id}/?panel=run")
    page.get_by_label("document").fill(f"This week's news {PAYLOAD}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("link", name="Open run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(workflow=workflow)
    # The map's progress shows live, while its items run ten at a time.
    done = page.locator("#step-headlines-items-done")
    expect(done).to_contain_text("/ 12 done", timeout=30_000)
    expect(done).to_have_text(re.compile(r"^(1[0-1]|[0-9]) / 12 done$"), timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("Waiting for approval", timeout=60_000)
    expect(done).to_have_text("12 / 12 done")
    items = StepItem.objects.filter(run=run, step_key="headlines")
    assert items.count() == 12 and {item.status for item in items} == {"succeeded"}
    expect(page.locator("#decision-message")).to_contain_text(f"story 1 {PAYLOAD}")

    # Bob, an editor, approves in his own browser.
    bob = new_page(browser, browser_errors)
    try:
        log_in_through_form(bob, live_app.url, "bob@example.com")
        bob.goto(f"{base}/runs/{run.id}/")
        bob.locator("#decision-comment").fill(f"Ship it {PAYLOAD}")
        bob.locator("#decision-approve").click()
        expect(bob.locator("#run-status")).to_have_text("Succeeded", timeout=60_000)
    finally:
        bob.context.close()

    # Alice's page goes on by itself: the publish run, linked, and the output.
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    child = Run.objects.get(parent=run)
    assert child.workflow_id == publish.id and child.status == Run.Status.SUCCEEDED
    expect(page.locator("#step-publish-children")).to_contain_text(f"Run #{child.id} of Publish")
    expect(page.locator("#run-output")).to_contain_text("Published ")
    run.refresh_from_db()
    approve = run.steps.get(key="approve")
    assert approve.output["approved"] is True and approve.output["by"] == "bob@example.com"
    assert run.cost_nanousd >= sum(item.cost_nanousd for item in items) > 0
