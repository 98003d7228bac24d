"""A new user builds, fixes, test-runs and publishes a workflow in a real browser.

Against a live server, the real Celery worker and the fake OpenAI server
(fixtures in tests/browser/conftest.py).
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from accounts.models import User
from tests.browser.conftest import sign_up_through_form
from workflows.llm.pricing import format_usd
from workflows.models import Run, StepRun, Workflow


def saved(page: Page) -> None:
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)


def add_step_at_the_end(page: Page, kind: str, number: int) -> None:
    page.get_by_label("Add a step before the output").click()
    page.get_by_role("button", name=kind).click()
    expect(page.locator("#panel-title")).to_have_text(f"Step {number} · {kind}")


def test_a_new_user_builds_fixes_runs_and_publishes_a_three_step_workflow(
    page: Page, live_app
) -> None:  # type: ignore[no-untyped-def]
    # Sign up: a workspace of one's own, and an empty state that shows the way.
    sign_up_through_form(
        page, live_app.url, "Robin Builder", "robin@example.com", "a long enough passphrase 42"
    )
    expect(page.get_by_role("heading", name="Build your first workflow")).to_be_visible()

    # From scratch: a blank workflow has one input ("text") and one step.
    page.get_by_role("link", name="New workflow").click()
    page.get_by_role("button", name=re.compile("Blank workflow")).click()
    expect(page.locator("#panel-title")).to_have_text("Step 1 · LLM prompt")
    page.locator("#id_title").fill("Outline")
    page.locator("#id_key").fill("outline")
    page.locator("#id_prompt").fill("Outline three points about ")
    page.locator("#panel").get_by_role(
        "button", name="text", exact=True
    ).click()  # the variable picker
    expect(page.locator("#id_prompt")).to_have_value("Outline three points about {{ text }}")
    saved(page)
    expect(page.locator("#card-head-0")).to_have_text("Outline")

    # Step 2, with a typo in a variable: the field and the card say so, with the fix.
    add_step_at_the_end(page, "LLM prompt", 2)
    page.locator("#id_key").fill("draft")
    page.locator("#id_prompt").fill("Write a short paragraph from this outline:\n{{ outlin }}")
    saved(page)
    problem = page.locator("#err-prompt")
    expect(problem).to_contain_text('Unknown variable "outlin". Did you mean "outline"?')
    expect(problem.locator("mark.ref-bad")).to_have_text("{{ outlin }}")
    expect(page.locator("#id_prompt")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#card-badges-1")).to_contain_text("1 problem")
    expect(page.locator("#editor-status")).to_contain_text("1 problem")
    problem.get_by_role("button", name="Use outline").click()
    expect(page.locator("#id_prompt")).to_have_value(
        "Write a short paragraph from this outline:\n{{ outline }}"
    )
    saved(page)
    expect(problem).to_be_empty()
    expect(page.locator("#card-badges-1")).not_to_contain_text("problem")
    expect(page.locator("#editor-status")).to_contain_text("Ready to run")

    # Step 3: a template, no model call.
    add_step_at_the_end(page, "Template", 3)
    page.locator("#id_key").fill("final")
    page.locator("#id_template").fill("Draft:\n{{ draft }}")
    saved(page)
    expect(page.locator("li.flow-step[data-index]")).to_have_count(3)

    # Test run: the form comes from the inputs, and the cards fill in.
    page.get_by_role("link", name="Test run").click()
    expect(page.locator("#panel-title")).to_have_text("Test run")
    page.get_by_label("text").fill("Why otters hold hands [[fake:latency=600]]")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text(re.compile("Queued|Running"))
    for index in range(3):
        expect(page.locator(f"#card-run-{index} .badge")).to_have_text("done", timeout=30_000)
    expect(page.locator("#run-status")).to_contain_text("Succeeded", timeout=15_000)
    expect(page.locator("#run-status")).not_to_have_attribute("hx-trigger", re.compile("."))
    run = Run.objects.get(workflow__name="Untitled workflow")
    assert run.status == Run.Status.SUCCEEDED and run.version is None
    first = run.steps.get(key="outline")
    expect(page.locator("#card-run-0")).to_contain_text(format_usd(first.cost_nanousd))
    expect(page.locator("#card-run-2 .card-run-output")).to_contain_text("Draft:")
    expect(page.locator("#output-run")).to_contain_text("Draft:")

    # Publish, with the summary proposed from the changes.
    page.get_by_role("link", name="Publish…").click()
    expect(page.get_by_label("Summary")).to_have_value(
        re.compile(r"^First version: 3 steps \(outline, draft, final\)")
    )
    page.get_by_role("button", name="Publish version 1").click()
    expect(page.locator("#editor-status")).to_contain_text("v1")
    workflow = Workflow.objects.get(workspace__memberships__user__email="robin@example.com")
    assert workflow.versions.get().number == 1

    # The run's page shows what each step cost.
    page.get_by_role("link", name="Open run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run.id}/$"))
    paid = list(run.steps.filter(status=StepRun.Status.SUCCEEDED, type="llm"))
    assert len(paid) == 2 and all(step.cost_nanousd > 0 for step in paid)
    for step in paid:
        expect(page.locator(f"#step-{step.key} .step-cost")).to_have_text(
            format_usd(step.cost_nanousd)
        )
    assert User.objects.filter(email="robin@example.com").exists()


def test_steps_are_reordered_by_keyboard_and_deleted_with_undo(
    page: Page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    from workflows import services
    from workflows.builder import starters

    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=starters.starter_for("outline-draft").fresh_definition(),
        user=personas.bob,
    )
    log_in("bob@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/")
    page.get_by_role("button", name="Move Draft up").click()
    expect(page.locator("#card-head-0")).to_have_text("Draft")
    expect(page.get_by_role("button", name="Move Draft down")).to_be_focused()
    expect(page.locator("#card-badges-0")).to_contain_text(
        "problem"
    )  # draft now reads a later step
    page.get_by_role("button", name="Move Draft down").press("Enter")
    expect(page.locator("#card-head-0")).to_have_text("Outline")

    page.get_by_role("button", name="Delete Outline").click()
    expect(page.locator("li.flow-step[data-index]")).to_have_count(1)
    expect(page.get_by_text("Deleted “Outline”.")).to_be_visible()
    page.get_by_role("button", name="Undo").click()
    expect(page.locator("li.flow-step[data-index]")).to_have_count(2)
    expect(page.locator("#card-head-0")).to_have_text("Outline")
    workflow.refresh_from_db()
    assert [step["key"] for step in workflow.definition["steps"]] == ["outline", "draft"]


def test_a_viewer_sees_the_editor_without_edit_controls(
    page: Page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    from workflows import services
    from workflows.builder import starters

    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=starters.starter_for("classify-route").fresh_definition(),
        user=personas.alice,
    )
    log_in("vera@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/")
    expect(page.get_by_text("Read-only: you are a viewer")).to_be_visible()
    expect(
        page.locator("#flow textarea, #flow input, #flow [draggable], form[data-autosave]")
    ).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Move|Delete|Add)"))).to_have_count(0)
    expect(page.get_by_role("link", name="Publish…")).to_have_count(0)
    page.get_by_role("link", name="Route by category").click()
    expect(page.locator("#panel-title")).to_have_text("Step 2 · Condition")
    expect(page.locator("#panel")).to_contain_text("billing_reply")
    expect(
        page.locator("#panel form, #panel input:not([type=hidden]), #panel textarea, #panel select")
    ).to_have_count(0)
    page.get_by_role("link", name="Test run").click()
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_visible()
