"""The runs pages in a real browser, against a live server and a real worker."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from accounts.models import User
from tests.browser.conftest import sign_up_through_form
from tests.polling import wait_for_run
from workflows import services
from workflows.llm.pricing import format_usd
from workflows.models import Run


def test_a_new_user_signs_up_and_lands_in_their_workspace(page, live_app) -> None:  # type: ignore[no-untyped-def]
    sign_up_through_form(
        page, live_app.url, "Dana Reyes", "dana@example.com", "a long enough passphrase 42"
    )

    workspace = User.objects.get(email="dana@example.com").memberships.get().workspace
    expect(page).to_have_url(re.compile(rf"/w/{workspace.slug}/$"))
    expect(page.get_by_text("Welcome to Stepwise!")).to_be_visible()


def published_chain(workspace, prompts: list[str], name: str = "Chain"):  # type: ignore[no-untyped-def]
    definition = {
        "name": name,
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {"key": f"s{i}", "title": f"Step {i}", "type": "llm", "prompt": p, "max_tokens": 60}
            for i, p in enumerate(prompts, start=1)
        ],
    }
    workflow = services.workflow_create(workspace=workspace, definition=definition, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    return workflow


def test_the_run_detail_fills_in_live_and_shows_each_steps_cost(
    page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_chain(
        personas.workspace,
        [
            "Facts about {{ topic }} [[fake:latency=1200]]",
            "Summarise {{ s1 }} [[fake:latency=2500]]",
        ],
    )
    log_in("alice@example.com")
    run = services.run_start(
        workflow=workflow,
        trigger=Run.Trigger.MANUAL,
        inputs={"topic": "otters"},
        user=personas.alice,
    )
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/runs/{run.id}/")
    status = page.locator("#run-status")
    expect(status).to_have_text(re.compile("Queued|Running"))
    # The page polls: step 1 finishes while step 2 still
    # runs, then the run succeeds, without a reload.
    expect(page.locator("#step-s1 .badge-succeeded")).to_be_visible(timeout=15_000)
    # What the reader opened stays open while the page keeps polling.
    page.locator("#step-s1 details summary").first.click()
    expect(status).to_have_text("Succeeded", timeout=20_000)
    expect(page.locator("#step-s1 details").first).to_have_attribute("open", "")
    expect(page.locator("#step-s1 details pre").first).to_have_text(
        "Facts about otters [[fake:latency=1200]]"
    )
    expect(page.locator("#run-live")).not_to_have_attribute("hx-trigger", re.compile("."))

    run = wait_for_run(run.id)
    for step in run.steps.all():
        assert step.cost_nanousd > 0
        expect(page.locator(f"#step-{step.key} .step-cost")).to_have_text(
            format_usd(step.cost_nanousd)
        )
    expect(page.locator("#run-cost")).to_have_text(format_usd(run.cost_nanousd))


def test_run_again_from_the_detail_starts_a_new_run_that_finishes(
    page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_chain(personas.workspace, ["Describe {{ topic }}"])
    first = wait_for_run(
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "kelp"}).id
    )
    log_in("vera@example.com")  # a viewer may run
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/runs/{first.id}/")
    page.get_by_role("button", name="Run again with these inputs").click()
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=20_000)
    again = Run.objects.exclude(id=first.id).get()
    assert page.url.endswith(f"/runs/{again.id}/")
    assert again.inputs == {"topic": "kelp"} and again.created_by == personas.vera
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)


def test_the_runs_list_filters_without_a_reload_and_keeps_the_address(
    page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_chain(
        personas.workspace, ["Describe {{ topic }}", "Fail {{ s1 }} [[fake:400]]"]
    )
    runs = [
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": t})
        for t in ("a", "b")
    ]
    for run in runs:
        wait_for_run(run.id)
    ok = published_chain(personas.workspace, ["Fine {{ topic }}"], name="Fine")
    good = wait_for_run(services.run_start(workflow=ok, trigger="api", inputs={"topic": "c"}).id)
    log_in("bob@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/runs/")
    rows = page.locator("#run-results tbody tr")
    expect(rows).to_have_count(3)
    page.evaluate("document.body.dataset.marker = 'same page'")

    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    page.get_by_label("Status").select_option("")
    page.get_by_label("Trigger").select_option("api")
    expect(rows).to_have_count(1)
    assert page.evaluate("document.body.dataset.marker") == "same page"  # swapped, not reloaded

    # Back goes through the earlier filters, with the form showing them.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/runs/$"))
    expect(page.get_by_label("Trigger")).to_have_value("")
    expect(rows).to_have_count(3)
    page.go_back()
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    expect(page.get_by_label("Status")).to_have_value("failed")
    expect(rows).to_have_count(2)
    page.go_forward()
    expect(page).to_have_url(re.compile(r"/runs/$"))
    expect(rows).to_have_count(3)
    page.go_forward()
    expect(page).to_have_url(re.compile(r"trigger=api"))
    expect(page.get_by_label("Trigger")).to_have_value("api")

    rows.first.locator("td").nth(2).click()  # anywhere in a row opens the run
    expect(page).to_have_url(re.compile(rf"/runs/{good.id}/$"))
    page.go_back()
    expect(page.get_by_label("Trigger")).to_have_value("api")
    expect(rows).to_have_count(1)


def test_the_run_detail_poll_keeps_an_open_message_and_the_focus(
    page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    """The poll is morphed in (idiomorph): elements stay, so do <details open> and focus."""
    workflow = published_chain(
        personas.workspace, ["Facts about {{ topic }}", "More {{ s1 }} [[fake:latency=2500]]"]
    )
    log_in("alice@example.com")
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"topic": "kelp"}, user=personas.alice
    )
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/runs/{run.id}/")
    expect(page.locator("#step-s1 .badge-succeeded")).to_be_visible(timeout=15_000)
    summary = page.locator("#step-s1 details summary").first
    summary.click()
    page.evaluate("window.kept = document.querySelector('#step-s1 details summary')")
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=20_000)
    expect(page.locator("#step-s1 details").first).to_have_attribute("open", "")
    assert page.evaluate("document.activeElement === window.kept && window.kept.isConnected")


def test_delete_run_opens_its_confirmation_under_its_button_without_moving_the_header(
    page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import published_workflow, run_row

    workflow = published_workflow(personas.workspace)
    run = run_row(workflow, workflow.versions.get())
    log_in("alice@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/runs/{run.id}/")
    again = page.get_by_role("button", name="Run again with these inputs")
    before = again.bounding_box()
    page.locator("#run-delete summary").click()
    confirm = page.get_by_role("button", name=f"Delete run #{run.id}")
    expect(confirm).to_be_visible()
    assert again.bounding_box() == before  # the header's actions stay on their line
    panel = page.locator("#run-delete > form").bounding_box()
    assert panel is not None and before is not None and panel["y"] > before["y"]
    confirm.click()
    expect(page.get_by_text(f"Run #{run.id} deleted.")).to_be_visible()
