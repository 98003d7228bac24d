"""Secrets and the http step in a real browser: Alice saves a secret on the Secrets page,
adds an HTTP request step that sends it in a header, and is told at once when she
tries to use it anywhere else. The value never comes back into any page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from accounts.models import WorkspaceSecret
from tests.polling import wait_until
from workflows import services
from workflows.models import Workflow

VALUE = "sk-browser-test-9a8b7c6d5e4f"


def draft_step(workflow: Workflow, index: int = 1) -> dict:
    return Workflow.objects.get(id=workflow.id).definition["steps"][index]


def saved(page: Page) -> None:
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)


def test_a_secret_is_saved_and_an_http_step_sends_it(  # type: ignore[no-untyped-def]
    page: Page, live_app, log_in, personas
) -> None:
    log_in("alice@example.com")
    base = f"{live_app.url}/w/{personas.workspace.slug}"
    page.goto(f"{base}/settings/")
    page.get_by_role("link", name="Manage secrets").click()
    page.get_by_label("Name").fill("CRM_KEY")
    page.get_by_label("Value").fill(VALUE)
    page.get_by_label("Hosts it may be sent to").fill("api.example.com")
    page.get_by_role("button", name="Save secret").click()
    expect(
        page.locator("#secret-" + str(WorkspaceSecret.objects.get(name="CRM_KEY").id))
    ).to_contain_text("CRM_KEY")
    assert VALUE not in page.content()

    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "Lookup",
            "inputs": [{"name": "email", "type": "text"}],
            "steps": [{"key": "first", "type": "template", "template": "{{ email }}"}],
        },
        user=personas.alice,
    )
    page.goto(f"{base}/workflows/{workflow.id}/?panel=step&step=0")
    page.get_by_label("Add a step before the output").click()
    page.get_by_role("button", name="HTTP request").click()
    expect(page.locator("#panel-title")).to_have_text("Step 2 · HTTP request")
    page.locator("#id_url").fill("https://api.example.com/contacts")
    page.locator("#id_query").fill("email={{ email }}")
    page.locator("#id_headers").fill("Authorization: Bearer {{ secrets.CRM_KEY }}")
    page.locator("#id_headers").blur()
    saved(page)
    wait_until(lambda: bool(draft_step(workflow).get("headers")))
    expect(page.locator("#err-headers")).to_be_empty()
    expect(page.locator("#editor-status")).to_contain_text("Ready to run")
    step = draft_step(workflow)
    assert step["type"] == "http"
    assert step["headers"] == {"Authorization": "Bearer {{ secrets.CRM_KEY }}"}
    assert step["query"] == {"email": "{{ email }}"}

    # A secret in a template step is refused where it is typed.
    page.locator("#select-step-0").click()
    page.locator("#id_template").fill("{{ secrets.CRM_KEY }}")
    page.locator("#id_template").blur()
    saved(page)
    expect(page.locator("#err-template")).to_contain_text(
        "secrets can be used only in an http step"
    )
    assert VALUE not in page.content()
