"""Two people share a workspace, in two browsers, with a hard budget.

The owner invites a new person as an editor; the editor signs up through the
emailed link, builds and runs a workflow; the owner sees it in the audit log
and the spend on the usage chart, sets a budget, and the budget stops the
editor's runs at its limit. Live server, real Celery worker, fake OpenAI
server (tests/browser/conftest.py).
"""

from __future__ import annotations

import re
import time

from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import BudgetMonth, Membership, Role, User
from tests.browser.conftest import log_in_through_form, new_page
from tests.polling import wait_for_run
from workflows.billing.budget import month_of
from workflows.llm.pricing import format_usd
from workflows.models import Run, Workflow

# About 11,000 prompt tokens at $0.40 per million plus 16 output tokens: a
# run costs about $0.0045, so a $0.01 budget holds two runs (90%, a warning)
# and refuses the third. The fake server answers more than 16 tokens, so
# each call costs exactly its worst case; a new first word per run keeps the
# fake's prompt cache from discounting it.
FILLER = " ".join(["tide"] * 11_000)


def test_two_people_share_a_workspace_and_the_budget_stops_runs_at_its_limit(
    page: Page, live_app, personas, browser, browser_errors
) -> None:  # type: ignore[no-untyped-def]
    slug = personas.workspace.slug
    base = f"{live_app.url}/w/{slug}"

    # --- The owner invites Dana as an editor.
    owner = page
    log_in_through_form(owner, live_app.url, "alice@example.com")
    owner.goto(f"{base}/settings/")
    owner.get_by_label("Email address", exact=True).fill("dana@example.com")
    owner.get_by_label("Role", exact=True).select_option("editor")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.locator("#invitations")).to_contain_text("Invitation sent to dana@example.com.")
    expect(owner.locator("#invitations .invitations-table")).to_contain_text("dana@example.com")
    link = re.search(r"http://\S+/invitations/\S+/", mail.outbox[-1].body).group(0)  # type: ignore[union-attr]
    assert mail.outbox[-1].to == ["dana@example.com"]
    token_path = link.split("://", 1)[1].split("/", 1)[1]
    expect(owner.locator("#new-invitation-link")).to_have_value(
        re.compile(re.escape(token_path) + "$")
    )

    # --- Dana, in another browser, signs up through the link and joins.
    editor = new_page(browser, browser_errors)
    editor.goto(f"{live_app.url}/{token_path}")
    expect(editor.get_by_role("heading", name=f"Join {personas.workspace.name}")).to_be_visible()
    editor.locator("#id_name").fill("Dana")
    editor.locator("#id_password").fill("a long enough passphrase 42")
    editor.get_by_role("button", name="Create account and join").click()
    expect(editor).to_have_url(f"{base}/")
    expect(
        editor.get_by_text(f"You joined {personas.workspace.name} as an editor.")
    ).to_be_visible()
    dana = User.objects.get(email="dana@example.com")
    assert Membership.objects.get(user=dana).role == Role.EDITOR

    # --- Dana builds a workflow in the editor and runs it.
    editor.get_by_role("link", name="New workflow").first.click()
    editor.get_by_role("button", name=re.compile("Blank workflow")).click()
    expect(editor.locator("#id_max_tokens")).to_be_visible()
    editor.locator("#id_max_tokens").fill("16")
    expect(editor.locator("#save-state")).to_have_text("All changes saved", timeout=10_000)
    workflow = Workflow.objects.get(workspace=personas.workspace, created_by=dana)
    assert workflow.definition["steps"][0]["max_tokens"] == 16

    def run_it(n: int, expected: str) -> Run:
        previous = (
            Run.objects.filter(workflow=workflow)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
            or 0
        )
        editor.goto(f"{base}/workflows/{workflow.id}/?panel=run")
        editor.get_by_label("text").fill(f"Run{n} {FILLER}")
        editor.get_by_role("button", name="Run", exact=True).click()
        # Until the new run starts, the panel still shows the previous one.
        deadline = time.monotonic() + 10
        while not (new := Run.objects.filter(workflow=workflow, id__gt=previous).first()):
            assert time.monotonic() < deadline, "the Run button started no run"
            time.sleep(0.1)
        expect(editor.locator("#run-status")).to_contain_text(f"Test run #{new.id}")
        run = wait_for_run(new.id)
        expect(editor.locator("#run-status")).to_contain_text(expected, timeout=15_000)
        return run

    first = run_it(1, "Succeeded")
    assert first.created_by == dana and first.cost_nanousd > 4_000_000

    # --- The owner sees Dana's work in the audit log and the spend on the usage chart.
    owner.goto(f"{base}/audit/")
    owner.get_by_label("Who", exact=True).select_option("dana@example.com")
    owner.get_by_role("button", name="Filter").click()
    rows = owner.locator(".audit-table tbody")
    expect(rows).to_contain_text("Created a workflow: Untitled workflow")
    expect(rows).to_contain_text("Edited a workflow")
    expect(rows).to_contain_text("Accepted an invitation: dana@example.com")

    owner.goto(f"{base}/usage/")
    expect(owner.locator("svg.chart-svg rect.chart-bar")).to_have_count(1)
    expect(owner.locator("svg.chart-svg .chart-day title").last).to_contain_text(
        format_usd(first.cost_nanousd)
    )
    by_person = owner.locator("section[aria-labelledby='by-member-title']")
    expect(by_person).to_contain_text("Dana")
    expect(by_person).to_contain_text(format_usd(first.cost_nanousd))

    # --- The owner sets a $0.01 monthly budget.
    owner.goto(f"{base}/settings/")
    owner.get_by_label("Monthly budget (USD)").fill("0.01")
    owner.get_by_role("button", name="Save budget").click()
    expect(owner.get_by_text("The monthly budget is now $0.01.")).to_be_visible()

    # A second run fits; it takes the month past 80%, and everyone sees a warning.
    second = run_it(2, "Succeeded")
    editor.goto(f"{base}/")
    expect(
        editor.locator(".banner-warning").filter(has_text="of the monthly budget is spent")
    ).to_be_visible()

    # The third does not fit: it fails before anything is sent.
    third = run_it(3, "Failed")
    expect(editor.locator("#run-status")).to_contain_text("workspace budget exhausted")
    assert third.cost_nanousd == 0

    spent = first.cost_nanousd + second.cost_nanousd
    ledger = BudgetMonth.objects.get(workspace=personas.workspace, month=month_of())
    assert (ledger.spent_nanousd, ledger.reserved_nanousd) == (spent, 0)
    assert spent <= 10_000_000 < spent + second.cost_nanousd

    owner.goto(f"{base}/usage/")
    expect(owner.locator("progress.meter.meter-warning")).to_have_attribute(
        "value", re.compile(r"^(8\d|9\d)$")
    )
    expect(owner.locator(".banner-warning")).to_contain_text("of the monthly budget is spent")
    editor.context.close()
