"""The usage page counts evals' LLM judges: in the totals, the chart and a breakdown line of
their own, on the day each row was scored; not in the production view. With them, the page's
figures for this month add up to the budget ledger's spend.

The evals run in this process (engine_in_process) against the fake OpenAI server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import BudgetMonth, Workspace
from tests.conftest import Personas
from tests.factories import client_for
from workflows import retention, services
from workflows.billing.usage import daily_usage, usage_by_member, usage_by_workflow
from workflows.evals import execution
from workflows.evals.services import check_add
from workflows.llm.pricing import format_usd
from workflows.models import Dataset, Eval, EvalItem, Run, Workflow

ROWS = 3


def answering(workspace: Workspace, name: str) -> Workflow:
    definition = {
        "name": name,
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {
                "key": "s1",
                "type": "llm",
                "prompt": "Answer about {{ topic }} [[fake:reply=an answer]]",
                "max_tokens": 20,
            }
        ],
    }
    workflow = services.workflow_create(workspace=workspace, definition=definition, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    return workflow


def judged_eval(workflow: Workflow, personas: Personas) -> Eval:
    """An eval of the draft over ROWS rows with one LLM-judge check, run to its end."""
    dataset = Dataset.objects.create(
        workspace=workflow.workspace, workflow=workflow, name="Rows", created_by=None
    )
    for position in range(1, ROWS + 1):
        dataset.rows.create(position=position, inputs={"topic": f"t{position}"})
    if not workflow.eval_checks.exists():
        check_add(
            workflow=workflow,
            name="judge",
            kind="llm_judge",
            config={"rubric": "Pass an answer. [[fake:choose=pass]]"},
        )
    execution.eval_start(
        workflow=workflow, dataset=dataset, versions=["draft"], concurrency=2, user=personas.bob
    )
    evaluation = Eval.objects.get(dataset=dataset)
    assert evaluation.status == Eval.Status.FINISHED
    return evaluation


@pytest.fixture
def judged(engine_in_process: None, personas: Personas) -> Workflow:
    """A workflow with a manual run and a finished eval whose judge was paid on every row."""
    workflow = answering(personas.workspace, "Triage")
    services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"topic": "x"})
    judged_eval(workflow, personas)
    return workflow


def judge_cost(workspace: Workspace) -> int:
    return sum(
        EvalItem.objects.filter(eval__workspace=workspace).values_list(
            "judge_cost_nanousd", flat=True
        )
    )


def stat(page: str, label: str) -> str:
    found = re.search(
        rf'<div class="stat-label">{label}[^<]*</div>\s*<div class="stat-value">([^<]*)</div>', page
    )
    assert found is not None, label
    return found.group(1)


def test_each_scored_row_is_stamped_with_its_judges_cost(judged: Workflow) -> None:
    items = list(EvalItem.objects.all())
    assert len(items) == ROWS
    for item in items:
        assert item.judge_cost_nanousd > 0 and item.judge_tokens > 0
        assert item.scored_at is not None
        assert item.scored_at >= Run.objects.get(id=item.run_id).finished_at


def test_the_usage_page_adds_up_to_the_ledgers_spend_with_judged_evals(
    judged: Workflow, personas: Personas
) -> None:
    spent = BudgetMonth.objects.get(workspace=personas.workspace).spent_nanousd
    runs = sum(Run.objects.values_list("cost_nanousd", flat=True))
    judges = judge_cost(personas.workspace)
    assert judges > 0 and spent == runs + judges

    days = daily_usage(personas.workspace)
    assert sum(d.cost_nanousd for d in days) == spent
    assert days[-1].judge_nanousd == judges
    assert days[-1].judge_tokens == sum(EvalItem.objects.values_list("judge_tokens", flat=True))
    assert sum(r.cost_nanousd for r in usage_by_workflow(personas.workspace)) == spent
    assert sum(r.cost_nanousd for r in usage_by_member(personas.workspace)) == spent

    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/usage/").content.decode()
    assert stat(page, "Last 30 days") == stat(page, "Spent in") == format_usd(spent)
    assert "eval judges" in page


def test_the_production_view_leaves_the_judges_out(judged: Workflow, personas: Personas) -> None:
    production = Run.objects.exclude(trigger=Run.Trigger.EVAL)
    expected = sum(production.values_list("cost_nanousd", flat=True))
    days = daily_usage(personas.workspace, production=True)
    assert sum(d.cost_nanousd for d in days) == expected
    assert sum(d.judge_nanousd for d in days) == 0
    assert sum(r.cost_nanousd for r in usage_by_workflow(personas.workspace, production=True)) == (
        expected
    )
    assert not any(r.judges for r in usage_by_member(personas.workspace, production=True))

    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/usage/?view=production")
    html = page.content.decode()
    assert stat(html, "Last 30 days") == format_usd(expected)
    assert "eval judges" not in html.lower()


def test_the_breakdowns_show_the_judges_on_a_line_of_their_own(
    judged: Workflow, personas: Personas
) -> None:
    judges = judge_cost(personas.workspace)
    steps = sum(Run.objects.values_list("cost_nanousd", flat=True))
    by_workflow = {r.label: r for r in usage_by_workflow(personas.workspace)}
    assert set(by_workflow) == {"Triage", "Triage — eval judges"}
    line = by_workflow["Triage — eval judges"]
    assert (line.key, line.runs, line.cost_nanousd, line.judges) == (judged.id, 0, judges, True)
    assert line.share_percent == round(judges * 100 / (steps + judges))
    assert by_workflow["Triage"].cost_nanousd == steps
    assert by_workflow["Triage"].runs == 1 + ROWS

    by_member = {r.label: r for r in usage_by_member(personas.workspace)}
    assert by_member["Eval judges"].cost_nanousd == judges
    assert by_member["Bob"].cost_nanousd == steps - Run.objects.get(trigger="manual").cost_nanousd

    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/usage/").content.decode()
    row = re.search(r"Triage — eval judges.*?</tr>", page, re.S)
    assert row is not None and format_usd(judges) in row.group(0)
    assert "Eval judges" in page


def test_judges_count_on_the_day_their_row_was_scored(judged: Workflow, personas: Personas) -> None:
    today = timezone.now().astimezone(UTC).date()
    first, second, late = EvalItem.objects.order_by("id")
    three_days_ago = datetime.combine(today - timedelta(days=3), datetime.min.time(), tzinfo=UTC)
    EvalItem.objects.filter(id=first.id).update(scored_at=three_days_ago + timedelta(hours=23))
    EvalItem.objects.filter(id=late.id).update(scored_at=three_days_ago - timedelta(days=40))
    days = daily_usage(personas.workspace)
    assert days[-4].judge_nanousd == first.judge_cost_nanousd
    assert days[-4].cost_nanousd == first.judge_cost_nanousd  # no step that day
    assert days[-1].judge_nanousd == second.judge_cost_nanousd  # 40 days ago: outside
    by_workflow = {r.label: r for r in usage_by_workflow(personas.workspace)}
    assert by_workflow["Triage — eval judges"].cost_nanousd == (
        first.judge_cost_nanousd + second.judge_cost_nanousd
    )


def test_pruning_and_deleting_runs_keep_the_judges_spend(
    judged: Workflow, personas: Personas
) -> None:
    def figures() -> tuple[object, ...]:
        return (
            daily_usage(personas.workspace),
            usage_by_workflow(personas.workspace),
            usage_by_member(personas.workspace),
        )

    before = figures()
    assert retention.runs_prune(now=timezone.now() + timedelta(days=400)) == 1 + ROWS
    eval_run = Run.objects.filter(trigger=Run.Trigger.EVAL).first()
    assert eval_run is not None
    retention.run_delete(run=eval_run)
    retention.workflow_runs_delete(workflow_id=judged.id, requested_by_id=None)
    assert figures() == before
    assert EvalItem.objects.filter(judge_cost_nanousd__gt=0).count() == ROWS

    # Deleting the workflow deletes its runs and its evals, judges' spend included: the
    # ledger keeps it.
    spent = BudgetMonth.objects.get(workspace=personas.workspace).spent_nanousd
    services.workflow_delete(workflow=judged, user=None)
    assert not EvalItem.objects.exists()
    assert sum(d.cost_nanousd for d in daily_usage(personas.workspace)) == 0
    assert BudgetMonth.objects.get(workspace=personas.workspace).spent_nanousd == spent


def test_the_page_makes_the_same_queries_for_many_judged_rows(
    judged: Workflow, personas: Personas
) -> None:
    client = client_for(personas.alice)
    url = f"/w/{personas.workspace.slug}/usage/"
    client.get(url)  # warm: the session, the site's caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    # Many more judged rows, over two workflows and several days.
    other = answering(personas.workspace, "Digest")
    judged_eval(other, personas)
    evaluation = Eval.objects.filter(workflow=judged).get()
    now = timezone.now()
    EvalItem.objects.bulk_create(
        EvalItem(
            eval=evaluation,
            position=100 + n,
            target="draft",
            status=EvalItem.Status.SCORED,
            judge_cost_nanousd=1000 + n,
            judge_tokens=50,
            scored_at=now - timedelta(days=n % 20),
        )
        for n in range(60)
    )
    with CaptureQueriesContext(connection) as many:
        page = client.get(url).content.decode()
    assert len(many) == len(few)
    assert "Digest — eval judges" in page and "Triage — eval judges" in page
