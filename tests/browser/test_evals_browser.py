"""Evals as a new user would try them, in a real browser against a live server and a real
worker: from the last webhook runs of a workflow, make a dataset (the runs list's link), add
an LLM-judge check, change the prompt in the draft, run an eval of the draft against the live
version, see where they differ and what it cost, and publish once the workspace's rule is met."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from accounts.models import Workspace
from tests.polling import wait_for_run
from workflows import services
from workflows.models import Run


def _definition(reply: str, verdict: str) -> dict:
    return {
        "name": "Replies",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {
                "key": "s1",
                "type": "llm",
                "prompt": f"Reply about {{{{ topic }}}} [[fake:reply={reply}]]",
                "max_tokens": 20,
            },
            # The judge reads the output last: its directive scripts the verdict.
            {
                "key": "s2",
                "type": "template",
                "template": f"{{{{ s1 }}}} [[fake:choose={verdict}]]",
            },
        ],
    }


def test_a_new_user_compares_a_changed_prompt_with_the_live_version_and_publishes(
    page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    workspace = personas.workspace
    workflow = services.workflow_create(
        workspace=workspace, definition=_definition("old reply", "fail"), user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    runs = [
        services.run_start(workflow=workflow, trigger=Run.Trigger.WEBHOOK, inputs={"topic": t})
        for t in ("otters", "owls", "orcas")
    ]
    for run in runs:
        wait_for_run(run.id)
    Workspace.objects.filter(id=workspace.id).update(publish_eval_min_percent=100)
    log_in("alice@example.com")

    # The runs list, filtered, makes a dataset of what it shows.
    page.goto(f"{live_app.url}/w/{workspace.slug}/runs/?workflow={workflow.id}&trigger=webhook")
    page.locator("#run-dataset").click()
    expect(page.locator("#runs_name")).to_have_value("Last 50 webhook runs")
    page.get_by_role("button", name="Make the dataset").click()
    expect(page.get_by_role("heading", name="Last 50 webhook runs")).to_be_visible()
    expect(page.get_by_text("3 rows.")).to_be_visible()

    # An LLM-judge check.
    page.goto(f"{live_app.url}/w/{workspace.slug}/workflows/{workflow.id}/evals/")
    page.locator("#check_name").fill("helpful")
    page.locator("#check_kind").select_option("llm_judge")
    page.locator("#check_config").fill(json.dumps({"rubric": "Pass a helpful reply."}))
    page.get_by_role("button", name="Add the check").click()
    expect(page.get_by_text("helpful · LLM judge")).to_be_visible()

    # The prompt changes in the draft, typed in the editor; publishing needs an eval first.
    changed = _definition("new reply", "pass")["steps"]
    editor = f"{live_app.url}/w/{workspace.slug}/workflows/{workflow.id}/"
    page.goto(f"{editor}?panel=step&step=0")
    page.locator("#id_prompt").fill(changed[0]["prompt"])
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)
    page.goto(f"{editor}?panel=step&step=1")
    page.locator("#id_template").fill(changed[1]["template"])
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)
    workflow.refresh_from_db()
    assert [step.get("prompt", step.get("template")) for step in workflow.definition["steps"]] == [
        changed[0]["prompt"],
        changed[1]["template"],
    ]
    page.goto(f"{live_app.url}/w/{workspace.slug}/workflows/{workflow.id}/evals/")
    page.get_by_role("button", name="Estimate…").click()
    expect(page.locator("#eval-estimate")).to_be_visible()
    expect(page.get_by_text("6 runs, 4 at a time")).to_be_visible()
    page.get_by_role("button", name="Start the eval").click()

    # The result page follows the eval live, then stops polling.
    expect(page.locator("#eval-status")).to_have_text("Finished", timeout=60_000)
    expect(page.locator("#eval-comparison")).to_contain_text("v1 0.0 % → draft 100.0 %")
    expect(page.locator('[data-target="draft"]')).to_contain_text("3 / 3")
    expect(page.locator("#eval-rows ins.diff-add").first).to_have_text("new")
    expect(page.locator("#eval-live")).not_to_have_attribute("hx-trigger", re.compile("."))

    # The publish panel shows it, and publishing goes through.
    page.goto(f"{live_app.url}/w/{workspace.slug}/workflows/{workflow.id}/?panel=publish")
    expect(page.locator("#publish-eval")).to_contain_text("0.0 % → 100.0 %")
    page.locator("#publish-button").click()
    expect(page.get_by_text("Published version 2.")).to_be_visible()
    assert workflow.versions.count() == 2
