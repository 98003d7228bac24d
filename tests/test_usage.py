"""The usage page: daily spend and tokens as an SVG chart, breakdowns, the month's budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import BudgetMonth, Workspace
from tests.conftest import Personas
from workflows import services
from workflows.billing.budget import month_of
from workflows.billing.charts import usage_chart
from workflows.billing.usage import daily_usage, month_budget, usage_by_member, usage_by_workflow
from workflows.models import Run, StepRun, Workflow

pytestmark = pytest.mark.django_db


def workflow(workspace: Workspace, name: str) -> Workflow:
    definition = {"name": name, "steps": [{"key": "s", "type": "llm", "prompt": "Hi"}]}
    return services.workflow_create(workspace=workspace, definition=definition, user=None)


def paid_run(
    flow: Workflow,
    *,
    user,
    when: datetime,
    cost: int,
    tokens_in: int = 100,
    tokens_out: int = 50,  # type: ignore[no-untyped-def]
    steps: int = 1,
    trigger: str = "manual",
) -> Run:
    run = Run.objects.create(
        workspace=flow.workspace,
        workflow=flow,
        definition=flow.definition,
        trigger=trigger,
        status="succeeded",
        created_by=user,
        cost_nanousd=cost * steps,
        created_at=when,
    )
    for n in range(steps):
        StepRun.objects.create(
            run=run,
            key=f"s{n}",
            position=n,
            type="llm",
            status="succeeded",
            model="gpt-4.1-mini",
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_nanousd=cost,
            started_at=when,
            finished_at=when,
        )
    return run


def days_ago(n: int, hour: int = 12) -> datetime:
    today = timezone.now().astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=n), datetime.min.time(), tzinfo=UTC).replace(
        hour=hour
    )


@pytest.fixture
def spending(personas: Personas) -> Personas:
    triage = workflow(personas.workspace, "Triage")
    digest = workflow(personas.workspace, "Digest")
    paid_run(triage, user=personas.bob, when=days_ago(0), cost=3_000_000, steps=2)
    paid_run(triage, user=personas.alice, when=days_ago(2), cost=1_000_000)
    paid_run(digest, user=None, when=days_ago(2, hour=23), cost=4_000_000, trigger="webhook")
    paid_run(
        digest, user=None, when=days_ago(40), cost=99_000_000, trigger="webhook"
    )  # outside the 30 days
    # Another workspace's spend never shows here.
    paid_run(
        workflow(personas.other_workspace, "Theirs"),
        user=personas.charlie,
        when=days_ago(0),
        cost=7_000_000,
    )
    return personas


def test_daily_usage_sums_steps_by_utc_day_and_fills_empty_days(spending: Personas) -> None:
    days = daily_usage(spending.workspace)
    assert len(days) == 30
    assert days[-1].day == timezone.now().astimezone(UTC).date()
    assert (days[-1].cost_nanousd, days[-1].tokens, days[-1].runs) == (6_000_000, 300, 1)
    assert (days[-3].cost_nanousd, days[-3].tokens_in, days[-3].runs) == (5_000_000, 200, 2)
    assert sum(d.cost_nanousd for d in days) == 11_000_000
    assert days[-2].cost_nanousd == 0


def test_breakdowns_by_workflow_and_by_person_with_triggers_apart(spending: Personas) -> None:
    by_workflow = usage_by_workflow(spending.workspace)
    assert [(r.label, r.runs, r.cost_nanousd, r.share_percent) for r in by_workflow] == [
        ("Triage", 2, 7_000_000, 64),
        ("Digest", 1, 4_000_000, 36),
    ]
    by_member = usage_by_member(spending.workspace)
    assert [(r.label, r.detail, r.runs, r.cost_nanousd) for r in by_member] == [
        ("Bob", "bob@example.com", 1, 6_000_000),
        ("Webhook", "signed requests to a webhook URL", 1, 4_000_000),
        ("Alice", "alice@example.com", 1, 1_000_000),
    ]


def test_the_chart_scales_bars_to_spend_and_the_line_to_tokens(spending: Personas) -> None:
    chart = usage_chart(daily_usage(spending.workspace))
    today, two_days_ago = chart.columns[-1], chart.columns[-3]
    assert today.bar_height > two_days_ago.bar_height > 0
    assert chart.columns[-2].bar_height == 0
    assert today.bar_y + today.bar_height == pytest.approx(chart.bottom)
    assert [t.left for t in chart.ticks] == ["$0", "$0.002", "$0.004", "$0.006", "$0.008"]
    assert chart.ticks[-1].right == "400"
    assert "$0.006000 spent, 300 tokens (200 in, 100 out), 1 run" in today.title
    assert chart.columns[-1].label and chart.columns[-8].label and not chart.columns[-2].label


def test_an_empty_chart_still_has_sensible_axes() -> None:
    chart = usage_chart(daily_usage(Workspace.objects.create(name="Empty", slug="empty")))
    assert chart.empty
    assert [t.left for t in chart.ticks] == ["$0", "$0.0025", "$0.005", "$0.0075", "$0.01"]
    assert all(c.bar_height == 0 for c in chart.columns)


def test_any_member_sees_the_usage_page_with_an_accessible_svg_chart(
    client: Client, spending: Personas
) -> None:
    client.force_login(spending.vera)
    response = client.get(f"/w/{spending.workspace.slug}/usage/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<svg class="chart-svg"' in page and 'role="img"' in page
    assert '<title id="usage-chart-title">Daily spend and tokens, last 30 days</title>' in page
    assert page.count('<rect class="chart-bar"') == 2
    assert "Webhook" in page and "Triage" in page and "Digest" in page
    assert "Theirs" not in page
    assert 'style="' not in page and "<style" not in page


def test_the_usage_page_is_404_for_outsiders(client: Client, personas: Personas) -> None:
    client.force_login(personas.charlie)
    assert client.get(f"/w/{personas.workspace.slug}/usage/").status_code == 404


def test_the_page_makes_the_same_few_queries_for_many_runs(
    client: Client, personas: Personas, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    flows = [workflow(personas.workspace, f"Flow {n}") for n in range(5)]
    for n in range(60):
        paid_run(
            flows[n % 5],
            user=[personas.alice, personas.bob, None][n % 3],
            when=days_ago(n % 30),
            cost=1000 + n,
        )
    client.force_login(personas.alice)
    with django_assert_max_num_queries(12):
        page = client.get(f"/w/{personas.workspace.slug}/usage/").content.decode()
    assert page.count('<rect class="chart-bar"') == 30


def test_this_month_reads_the_budget_ledger(client: Client, personas: Personas) -> None:
    personas.workspace.budget_nanousd = 10_000_000_000
    personas.workspace.save(update_fields=["budget_nanousd"])
    BudgetMonth.objects.create(
        workspace=personas.workspace,
        month=month_of(),
        spent_nanousd=4_200_000_000,
        reserved_nanousd=100_000_000,
    )
    month = month_budget(personas.workspace)
    assert (month.percent, month.level, month.left_nanousd) == (42, "ok", 5_800_000_000)
    client.force_login(personas.bob)
    page = client.get(f"/w/{personas.workspace.slug}/usage/").content.decode()
    assert re.search(r'<progress class="meter" value="42" max="100"', page)
    assert "$4.20" in page and "$10.00" in page


def test_without_a_budget_the_page_says_calls_are_not_limited(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    page = client.get(f"/w/{personas.workspace.slug}/usage/").content.decode()
    assert "no monthly budget, so LLM calls are not limited" in page
    assert "Set a budget" in page  # alice owns it
