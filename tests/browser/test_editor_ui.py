"""The editor at phone width and from the keyboard; renaming a workflow in place.

These need no worker: a live server, a workflow made through the services,
and the real browser (fixtures in tests/browser/conftest.py).
"""

from __future__ import annotations

import copy
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, log_in_through_form, new_page
from tests.browser.seed import TRIAGE
from tests.conftest import Personas
from workflows import services
from workflows.models import Workflow

PAYLOAD = '<img src=x onerror=alert(1)><b hx-get="/" hx-trigger="load">x</b>'


@pytest.fixture
def triage(transactional_db: None, personas: Personas) -> Workflow:
    definition = copy.deepcopy(TRIAGE)
    for step in definition["steps"]:
        if "system" in step:
            step["system"] = re.sub(r"\s*\[\[fake:[^\]]*\]\]", "", step["system"])
    return services.workflow_create(
        workspace=personas.workspace, definition=definition, user=personas.alice
    )


def editor_url(live_server, personas: Personas, workflow: Workflow, query: str = "") -> str:  # type: ignore[no-untyped-def]
    return f"{live_server.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/{query}"


def in_view(page: Page, selector: str) -> bool:
    """The element's top part is inside the viewport."""
    return page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return box.top >= -1 && box.top < window.innerHeight - 40;
        }""",
        selector,
    )


def focus_is_inside(page: Page, selector: str) -> bool:
    return page.evaluate(
        "(selector) => { const el = document.querySelector(selector);"
        " return !!el && (el === document.activeElement || el.contains(document.activeElement)); }",
        selector,
    )


@pytest.fixture
def phone(browser, browser_errors):  # type: ignore[no-untyped-def]
    page = new_page(browser, browser_errors, PHONE)
    yield page
    page.context.close()


def test_it_brings_the_panel_into_view_with_focus_at_phone_width(
    phone: Page, live_server, personas: Personas, triage: Workflow
) -> None:  # type: ignore[no-untyped-def]
    log_in_through_form(phone, live_server.url, "alice@example.com")
    phone.goto(editor_url(live_server, personas, triage, "?panel=inputs"))
    phone.evaluate("window.scrollTo(0, 0)")

    # Selecting a step far from the panel.
    phone.locator("#select-step-3").click()
    expect(phone.locator("#panel-title")).to_have_text(re.compile("Step 4"))
    phone.wait_for_function(
        "() => { const b = document.querySelector('#panel').getBoundingClientRect();"
        " return b.top >= -1 && b.top < innerHeight - 40; }"
    )
    assert focus_is_inside(phone, "#panel")

    # "Test run" in the header, from the top of the page.
    phone.evaluate("window.scrollTo(0, 0)")
    phone.get_by_role("link", name="Test run").click()
    expect(phone.locator("#panel-title")).to_have_text("Test run")
    phone.wait_for_function(
        "() => { const b = document.querySelector('#panel').getBoundingClientRect();"
        " return b.top >= -1 && b.top < innerHeight - 40; }"
    )
    assert in_view(phone, "#panel")
    assert focus_is_inside(phone, "#panel")

    # "Publish…" too.
    phone.evaluate("window.scrollTo(0, 0)")
    phone.get_by_role("link", name="Publish…").click()
    expect(phone.locator("#panel-title")).to_have_text("Publish")
    phone.wait_for_function(
        "() => { const b = document.querySelector('#panel').getBoundingClientRect();"
        " return b.top >= -1 && b.top < innerHeight - 40; }"
    )
    assert focus_is_inside(phone, "#panel")


def test_it_moves_focus_into_a_panel_opened_from_the_keyboard(
    page: Page, live_server, personas: Personas, triage: Workflow
) -> None:  # type: ignore[no-untyped-def]
    log_in_through_form(page, live_server.url, "alice@example.com")
    page.goto(editor_url(live_server, personas, triage))
    page.locator("#select-step-2").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_have_text(re.compile("Step 3"))
    page.wait_for_function(
        "() => document.querySelector('#panel').contains(document.activeElement)"
    )
    page.get_by_role("link", name="Test run").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_have_text("Test run")
    page.wait_for_function(
        "() => document.querySelector('#panel').contains(document.activeElement)"
    )


def test_the_add_step_menu_answers_arrow_keys_and_escape(
    page: Page, live_server, personas: Personas, triage: Workflow
) -> None:  # type: ignore[no-untyped-def]
    log_in_through_form(page, live_server.url, "alice@example.com")
    page.goto(editor_url(live_server, personas, triage))
    summary = page.get_by_label("Add a step before the output")
    summary.focus()
    page.keyboard.press("Enter")
    menu = page.locator("li.flow-io[data-panel-card=output] details.dropdown")
    expect(menu).to_have_attribute("open", "")
    items = menu.locator(".menu-item")
    page.keyboard.press("ArrowDown")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(items.nth(1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("ArrowUp")  # wraps around
    expect(items.last).to_be_focused()
    page.keyboard.press("Home")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("End")
    expect(items.last).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()

    # ArrowDown on the closed menu's button opens it on its first item.
    page.keyboard.press("ArrowDown")
    expect(menu).to_have_attribute("open", "")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("Enter")  # adds the step of that kind
    expect(page.locator("#panel-title")).to_have_text(re.compile("Step 6"))


def test_it_renames_in_place_and_updates_breadcrumb_and_tab_title(
    page: Page, live_server, personas: Personas, triage: Workflow, browser_errors: list[str]
) -> None:  # type: ignore[no-untyped-def]
    log_in_through_form(page, live_server.url, "alice@example.com")
    page.goto(editor_url(live_server, personas, triage))
    title = page.locator("#editor-title-input")
    expect(title).to_have_value("Support triage")

    # Escape cancels.
    title.click()
    title.fill("Not this one")
    title.press("Escape")
    expect(title).to_have_value("Support triage")
    page.wait_for_timeout(300)
    triage.refresh_from_db()
    assert triage.name == "Support triage"

    # Enter saves; the breadcrumb, the tab title and the flow's label follow.
    title.click()
    title.fill("Ticket triage")
    title.press("Enter")
    expect(page.locator("#editor-breadcrumb-name")).to_have_text("Ticket triage")
    expect(page).to_have_title(re.compile(r"^Ticket triage · "))
    expect(page.locator("#flow")).to_have_accessible_name("Steps of Ticket triage")
    triage.refresh_from_db()
    assert triage.name == "Ticket triage"

    # Leaving the field saves too; markup typed in is text everywhere it shows.
    title.click()
    title.fill(PAYLOAD)
    page.locator("#select-step-0").focus()  # blur
    expect(page.locator("#editor-breadcrumb-name")).to_have_text(PAYLOAD)
    expect(page).to_have_title(PAYLOAD + " · " + personas.workspace.name)
    expect(title).to_have_value(PAYLOAD)
    assert page.locator("#editor img, #editor b[hx-get], head img, head b").count() == 0
    page.wait_for_timeout(500)  # an hx-trigger="load" would have fired by now
    triage.refresh_from_db()
    assert triage.name == PAYLOAD
    # And after a reload, the settings panel shows the same text.
    page.goto(editor_url(live_server, personas, triage, "?panel=settings"))
    expect(page.locator("#id_name")).to_have_value(PAYLOAD)
    expect(page.locator("#editor-breadcrumb-name")).to_have_text(PAYLOAD)
    assert page.locator("#editor img, #editor b[hx-get]").count() == 0

    # A name another workflow has is refused, next to the title.
    services.workflow_create(
        workspace=personas.workspace,
        user=personas.alice,
        definition={**copy.deepcopy(TRIAGE), "name": "Taken"},
    )
    title.click()
    title.fill("Taken")
    title.press("Enter")
    expect(page.locator("#err-rename")).to_contain_text("already called")
    expect(title).to_have_attribute("aria-invalid", "true")
    triage.refresh_from_db()
    assert triage.name == PAYLOAD
    assert all("422" in error for error in browser_errors), browser_errors
    browser_errors.clear()  # the refused name's 422, expected


def test_the_settings_panel_rename_updates_the_title_and_breadcrumb_without_a_reload(
    page: Page, live_server, personas: Personas, triage: Workflow
) -> None:  # type: ignore[no-untyped-def]
    log_in_through_form(page, live_server.url, "alice@example.com")
    page.goto(editor_url(live_server, personas, triage, "?panel=settings"))
    page.locator("#id_name").fill("Renamed from the panel")
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)
    expect(page.locator("#editor-breadcrumb-name")).to_have_text("Renamed from the panel")
    expect(page.locator("#editor-title-input")).to_have_value("Renamed from the panel")
    expect(page).to_have_title(re.compile(r"^Renamed from the panel · "))


def test_the_triggers_tables_stay_readable_at_phone_width(
    phone: Page, live_server, personas: Personas, triage: Workflow
) -> None:  # type: ignore[no-untyped-def]
    from workflows.integrations import schedules, triggers
    from workflows.models import WebhookDelivery

    services.workflow_publish(workflow=triage, user=personas.alice)
    hook = triggers.trigger_create(
        workflow=triage, user=personas.alice, name="Zendesk new ticket"
    ).trigger
    WebhookDelivery.objects.create(
        trigger=hook,
        status_code=422,
        result='Inputs refused: "ticket" is required and was not in the body.',
    )
    schedules.schedule_create(
        workflow=triage,
        cron="0 9 * * 1-5",
        time_zone="Europe/Paris",
        inputs={"ticket": "A daily check"},
        user=personas.alice,
    )
    log_in_through_form(phone, live_server.url, "alice@example.com")
    phone.goto(f"{live_server.url}/w/{personas.workspace.slug}/workflows/{triage.id}/triggers/")
    # Nothing pushes the page sideways, and no table hides columns off to the side.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.locator("main table").count() == 2
    hidden = phone.evaluate(
        """() => Array.from(document.querySelectorAll('main .table-wrap'))
            .filter((wrap) => wrap.scrollWidth > wrap.clientWidth + 1).length"""
    )
    assert hidden == 0
    # Each value still says which column it belongs to.
    expect(phone.locator("main table td[data-label='Time zone']")).to_contain_text("Europe/Paris")
    # No cell is squeezed into a column a few letters wide.
    narrow = phone.evaluate(
        """() => Array.from(document.querySelectorAll('main table tbody td'))
            .filter((cell) => cell.offsetParent !== null && cell.textContent.trim().length > 3)
            .filter((cell) => cell.getBoundingClientRect().width < 60)
            .map((cell) => cell.textContent.trim())"""
    )
    assert narrow == []
