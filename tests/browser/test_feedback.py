"""Feedback without custom timers: toasts and alerts leave by CSS, a failed request's toast comes
from the server (config/lib/htmx_errors.py), and a dragged step takes the place of the one it is
dropped on."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from workflows.models import Workflow


def open_editor(page: Page, live_app, log_in, personas) -> Workflow:  # type: ignore[no-untyped-def]
    from workflows import services
    from workflows.builder import starters

    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=starters.starter_for("outline-draft").fresh_definition(),
        user=personas.bob,
    )
    log_in("bob@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/")
    return workflow


def test_a_step_dragged_onto_another_takes_its_place(
    page: Page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = open_editor(page, live_app, log_in, personas)
    page.locator("#step-1").drag_to(page.locator("#step-0"))
    expect(page.locator("#card-head-0")).to_have_text("Draft")
    expect(page.locator(".is-drop-before, .is-drop-after, .is-dragging")).to_have_count(0)
    workflow.refresh_from_db()
    assert [step["key"] for step in workflow.definition["steps"]] == ["draft", "outline"]


def test_a_failed_request_shows_the_servers_error_toast_until_dismissed(
    page: Page, live_app, log_in, personas, browser_errors
) -> None:  # type: ignore[no-untyped-def]
    workflow = open_editor(page, live_app, log_in, personas)
    Workflow.objects.filter(id=workflow.id).delete()  # by someone else, meanwhile
    page.get_by_role("link", name="Inputs", exact=True).click()
    toast = page.locator("#toasts .toast-error").first  # the editor's sync poll fails too, later
    expect(toast).to_contain_text("That no longer exists. Reload the page.")
    first = toast.element_handle()
    page.wait_for_timeout(6_500)
    assert first.evaluate("toast => toast.isConnected")  # an error stays until dismissed
    first.query_selector("[data-dismiss]").click()
    page.wait_for_function("toast => !toast.isConnected", arg=first)
    browser_errors.clear()  # the 404s, as expected


def test_a_success_toast_and_message_leave_on_their_own(
    page: Page, live_app, log_in, personas
) -> None:  # type: ignore[no-untyped-def]
    log_in("alice@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/settings/")
    page.get_by_label("Workspace name").fill("Renamed Space")
    page.get_by_role("button", name="Rename").click()
    page.mouse.move(1, 1)  # a hovered alert waits
    alert = page.locator(".alert-success", has_text="Renamed Space")
    expect(alert).to_be_visible()
    page.evaluate("htmx.trigger(document.body, 'toast', {level: 'success', message: 'Done'})")
    expect(page.locator("#toasts .toast-success")).to_have_text("Done")
    expect(alert).to_have_count(0, timeout=10_000)
    expect(page.locator("#toasts .toast")).to_have_count(0, timeout=10_000)


def test_a_toast_waits_while_hovered(page: Page, live_app, log_in, personas) -> None:  # type: ignore[no-untyped-def]
    log_in("alice@example.com")
    page.evaluate("htmx.trigger(document.body, 'toast', {level: 'info', message: 'Read me'})")
    toast = page.locator("#toasts .toast-info")
    toast.hover()
    page.wait_for_timeout(7_000)  # past its 6 s
    expect(toast).to_be_visible()
    page.mouse.move(1, 1)
    expect(toast).to_have_count(0, timeout=10_000)
