"""An approval in real browsers: Bob (an editor) approves a run from its page
while Vera (a viewer, in a second browser) watches the same page and sees it
go on, live. The comment Bob types survives the page's polling; the message
and the comment carry markup that must stay text."""

from __future__ import annotations

from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import log_in_through_form, new_page
from tests.factories import PASSWORD, published_workflow
from tests.polling import wait_until
from workflows import services
from workflows.models import Run, StepRun
from workflows.steps.decisions import link_token, parse_iso

PAYLOAD = '<img src=x onerror=alert(1)><span hx-get="/" hx-trigger="load">x</span>'


def test_an_editor_approves_while_a_viewer_watches_the_run_go_on(  # type: ignore[no-untyped-def]
    page, browser, browser_errors, live_app, log_in, personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Publish",
            "inputs": [{"name": "text", "type": "text"}],
            "steps": [
                {"key": "approve", "type": "approval", "message": "Publish {{ text }}?"},
                {
                    "key": "route",
                    "type": "condition",
                    "cases": [
                        {
                            "left": "{{ approve.approved }}",
                            "op": "equals",
                            "right": "true",
                            "goto": "yes",
                        }
                    ],
                    "else": "no",
                },
                {
                    "key": "yes",
                    "type": "template",
                    "template": "published by {{ approve.by }}: {{ approve.comment }}",
                    "next": "end",
                },
                {"key": "no", "type": "template", "template": "dropped"},
            ],
        },
    )
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"text": PAYLOAD}
    )
    base = f"{live_app.url}/w/{personas.workspace.slug}"

    # Vera, a viewer, watches: the banner, no buttons.
    vera = new_page(browser, browser_errors)
    try:
        log_in_through_form(vera, live_app.url, "vera@example.com")
        vera.goto(f"{base}/runs/{run.id}/")
        expect(vera.locator("#run-status")).to_have_text("Waiting for approval", timeout=30_000)
        expect(vera.locator("#decision-message")).to_have_text(f"Publish {PAYLOAD}?")
        expect(vera.locator("#decision-not-yours")).to_contain_text("Viewers cannot decide")
        expect(vera.locator("#decision-approve")).to_have_count(0)

        log_in("bob@example.com")
        page.goto(f"{base}/runs/{run.id}/")
        expect(page.locator("#decision-message")).to_have_text(f"Publish {PAYLOAD}?")
        comment = page.locator("#decision-comment")
        comment.fill(f"fine {PAYLOAD}")
        # The page keeps polling; while nothing changes nothing is swapped.
        for _ in range(2):
            with page.expect_response(
                lambda r: f"/runs/{run.id}/?shown=" in r.url and r.status == 204
            ):
                pass
        expect(comment).to_have_value(f"fine {PAYLOAD}")
        page.locator("#decision-approve").click()
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
        expect(page.locator("#decision-banner")).to_have_count(0)
        expect(page.locator("#run-output")).to_have_text(
            f"published by bob@example.com: fine {PAYLOAD}"
        )

        # Vera's page goes on by itself, without a reload.
        expect(vera.locator("#run-status")).to_have_text("Succeeded", timeout=15_000)
        expect(vera.locator("#decision-banner")).to_have_count(0)
        expect(vera.locator("#run-output")).to_have_text(
            f"published by bob@example.com: fine {PAYLOAD}"
        )
    finally:
        vera.context.close()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_the_emailed_link_signs_in_its_approver_and_decides_once(  # type: ignore[no-untyped-def]
    page, browser, browser_errors, live_app, personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Ask",
            "steps": [
                {"key": "ok", "type": "approval", "message": f"Fine? {PAYLOAD}"},
                {"key": "after", "type": "template", "template": "{{ ok.approved }} {{ ok.by }}"},
            ],
        },
    )
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={})
    wait_until(
        lambda: Run.objects.filter(id=run.id, status=Run.Status.WAITING).exists() or None,
        timeout=30,
        message="the run never parked",
    )
    step = StepRun.objects.get(run=run, key="ok")
    expires = parse_iso(step.state["timeout_at"])
    assert expires is not None

    def link_for(user_id: int) -> str:
        token = link_token(run_id=run.id, step_key="ok", user_id=user_id, expires_at=expires)
        return f"{live_app.url}{reverse('decision_link', args=[token])}"

    # Signed out: the login form first, then the link's page.
    page.goto(link_for(personas.bob.id))
    page.locator("#id_username").fill("bob@example.com")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Waiting for your approval")).to_be_visible()
    expect(page.locator("#decision-message")).to_have_text(f"Fine? {PAYLOAD}")
    page.locator("#decision-comment").fill("no")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#run-output")).to_have_text("false bob@example.com")

    # Used: it says who decided. Another member's session: refused.
    page.goto(link_for(personas.bob.id))
    expect(page.locator("[data-decision-problem]")).to_have_text(
        "Already decided: rejected by bob@example.com."
    )
    vera = new_page(browser, browser_errors)
    try:
        log_in_through_form(vera, live_app.url, "vera@example.com")
        vera.goto(link_for(personas.alice.id))
        expect(vera.locator("[data-decision-problem]")).to_contain_text("emailed to another member")
    finally:
        vera.context.close()
    # The used link's 409 and the wrong person's 403, as expected; nothing else.
    assert {error.split("status of ")[-1] for error in browser_errors} <= {
        "409 (Conflict)",
        "403 (Forbidden)",
    }, browser_errors
    browser_errors.clear()
