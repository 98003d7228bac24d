"""An eval holds its estimate against the month's budget while it runs: other work cannot
take the room it was promised, two evals cannot both take the last of it, its own runs are
lent what they need so it never waits for itself, and nothing of the hold outlives it.

The first tests start evals without a worker (their advance is never sent, `db` does not
commit): the hold is read straight from the ledger. The last runs one on a real worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import BudgetMonth, BudgetReservation, Workspace
from tests.conftest import Personas
from tests.polling import wait_until
from tests.servers import WorkerProcess
from workflows import services
from workflows.billing import budget
from workflows.evals import datasets, execution
from workflows.evals.services import check_add
from workflows.llm import tokens
from workflows.models import Dataset, Eval, EvalItem, Run, StepItem, Workflow

ABOUT = {
    "name": "About",
    "inputs": [{"name": "topic", "type": "text"}],
    "steps": [
        {
            "key": "s1",
            "type": "llm",
            "prompt": "About {{ topic }} [[fake:reply=fine]]",
            "max_tokens": 20,
        }
    ],
}


def _budget(workspace: Workspace, nanousd: int) -> None:
    Workspace.objects.filter(id=workspace.id).update(budget_nanousd=nanousd)
    workspace.refresh_from_db()


def _ledger(workspace: Workspace) -> BudgetMonth:
    return BudgetMonth.objects.get(workspace=workspace, month=budget.month_of())


@pytest.fixture
def judged(personas: Personas) -> tuple[Workflow, Dataset]:
    """A published workflow with no past runs and an LLM-judge check: its eval's estimate
    is the judge's worst case per row, known without running anything."""
    workflow = services.workflow_create(workspace=personas.workspace, definition=ABOUT, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    check_add(workflow=workflow, name="judge", kind="llm_judge", config={"rubric": "Fine?"})
    dataset = datasets.dataset_create(
        workflow=workflow,
        name="Four",
        rows=[datasets.NewRow({"topic": f"t{i}"}, None) for i in range(4)],
        user=None,
    )
    return workflow, dataset


def _start(workflow: Workflow, dataset: Dataset) -> Eval:
    return execution.eval_start(
        workflow=workflow, dataset=dataset, versions=[1], concurrency=1, user=None
    )


def test_an_eval_holds_its_estimate_so_other_calls_cannot_take_it(
    personas: Personas, judged: tuple[Workflow, Dataset]
) -> None:
    workflow, dataset = judged
    _budget(personas.workspace, 100 * 10**9)  # $100
    evaluation = _start(workflow, dataset)
    assert evaluation.estimate_nanousd > 0
    ledger = _ledger(personas.workspace)
    assert ledger.reserved_nanousd == evaluation.estimate_nanousd
    assert BudgetReservation.objects.get(eval_id=evaluation.id).amount_nanousd == (
        evaluation.estimate_nanousd
    )
    # A call that fits in the budget but not beside the eval's hold waits for room.
    room = 100 * 10**9 - ledger.spent_nanousd
    with pytest.raises(budget.BudgetBusy):
        budget.reserve(
            workspace_id=personas.workspace.id,
            amount_nanousd=room - evaluation.estimate_nanousd + 1,
        )
    # One that fits beside it is held.
    fitting = budget.reserve(
        workspace_id=personas.workspace.id, amount_nanousd=room - evaluation.estimate_nanousd
    )
    budget.settle(fitting, cost_nanousd=0)


def test_two_evals_cannot_both_take_the_last_of_the_budget(
    personas: Personas, judged: tuple[Workflow, Dataset]
) -> None:
    workflow, dataset = judged
    first_estimate = execution.estimate(
        workflow=workflow, dataset=dataset, targets=execution.targets_of(workflow, [1])
    ).total_nanousd
    _budget(personas.workspace, first_estimate * 3 // 2)  # room for one, not for two
    first = _start(workflow, dataset)
    with pytest.raises(execution.EvalOverBudget, match="neither spent nor held"):
        _start(workflow, dataset)
    assert list(Eval.objects.values_list("id", flat=True)) == [first.id]
    assert _ledger(personas.workspace).reserved_nanousd == first.estimate_nanousd
    # Canceled, the first gives its hold back, and the second fits.
    assert execution.eval_cancel(evaluation=first)
    assert _ledger(personas.workspace).reserved_nanousd == 0
    assert not BudgetReservation.objects.exists()
    second = _start(workflow, dataset)
    assert _ledger(personas.workspace).reserved_nanousd == second.estimate_nanousd


def test_without_a_budget_an_eval_holds_nothing(
    personas: Personas, judged: tuple[Workflow, Dataset]
) -> None:
    workflow, dataset = judged
    evaluation = _start(workflow, dataset)
    assert evaluation.estimate_nanousd > 0
    assert not BudgetReservation.objects.exists()
    assert not BudgetMonth.objects.filter(reserved_nanousd__gt=0).exists()


def test_a_running_evals_hold_is_not_swept_however_old_but_a_deleted_ones_is(
    personas: Personas, judged: tuple[Workflow, Dataset]
) -> None:
    workflow, dataset = judged
    _budget(personas.workspace, 100 * 10**9)
    evaluation = _start(workflow, dataset)
    # Older than any single call can last: a call's hold would be swept, an eval's is not.
    BudgetReservation.objects.update(created_at=timezone.now() - timedelta(days=2))
    budget.ledger_swept(personas.workspace.id)
    assert _ledger(personas.workspace).reserved_nanousd == evaluation.estimate_nanousd
    # Its workflow deleted, the eval is gone with it: the next sweep releases the hold.
    services.workflow_delete(workflow=workflow, user=None)
    assert not Eval.objects.exists()
    budget.ledger_swept(personas.workspace.id)
    assert _ledger(personas.workspace).reserved_nanousd == 0
    assert not BudgetReservation.objects.exists()


def test_the_eval_page_and_the_api_show_what_it_holds(
    personas: Personas, judged: tuple[Workflow, Dataset]
) -> None:
    from django.test import Client

    from tests.factories import api_token, client_for
    from workflows.llm.pricing import format_usd

    workflow, dataset = judged
    _budget(personas.workspace, 100 * 10**9)
    evaluation = _start(workflow, dataset)
    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/evals/{evaluation.id}/")
    assert page.status_code == 200
    held = format_usd(evaluation.estimate_nanousd)
    assert f"{held} held of the budget" in page.content.decode()
    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    answer = api.get(f"/api/v1/evals/{evaluation.id}").json()
    assert answer["held_usd"] == answer["estimate_usd"]


# The same call as ABOUT's, made by a map step's one item: a map item waiting for budget
# is not parked (its run goes on), it says what it waits for.
ABOUT_EACH = {
    "name": "About each",
    "inputs": [{"name": "topics", "type": "json"}],
    "steps": [
        {
            "key": "each",
            "type": "map",
            "over": "{{ topics }}",
            "concurrency": 1,
            "prompt": "About {{ item }} [[fake:reply=fine]]",
            "max_tokens": 20,
        }
    ],
}


def _about(topic: str) -> dict:
    return {"topic": topic}


def _about_each(topic: str) -> dict:
    return {"topics": [topic]}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("definition", "inputs"), [(ABOUT, _about), (ABOUT_EACH, _about_each)], ids=["llm", "map"]
)
def test_an_evals_runs_are_lent_its_hold_so_it_never_waits_for_itself(
    worker: WorkerProcess, personas: Personas, fake_calls, definition, inputs
) -> None:  # type: ignore[no-untyped-def]
    """The budget has exactly the estimate left. The estimate comes from past runs with a
    long topic, so each row's share (their average cost) is below the worst case its own
    call must hold: the first row's call fits only if the eval lends it part of its hold.
    Without lending it would wait for a settle that never comes; with it, every row runs."""
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    _eval_runs_to_the_end(personas, workflow, inputs, parked=definition is ABOUT)


@pytest.mark.integration
def test_an_evals_child_runs_are_lent_its_hold_too(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    """The call is made by a child run (a workflow step): the eval's runs wait for their
    child, and the child, not the eval's run, waits for budget. It is lent room all the same."""
    called = services.workflow_create(workspace=personas.workspace, definition=ABOUT, user=None)
    services.workflow_publish(workflow=called, user=None)
    calling = {
        "name": "Calls About",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {
                "key": "call",
                "type": "workflow",
                "workflow": called.id,
                "inputs": {"topic": "{{ topic }}"},
            }
        ],
    }
    workflow = services.workflow_create(workspace=personas.workspace, definition=calling, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    _eval_runs_to_the_end(personas, workflow, _about, parked=False)
    children = Run.objects.filter(root__trigger=Run.Trigger.EVAL)
    assert children.count() == 4
    assert any(r.waited_ms > 0 for r in children)  # parked for budget, and lent room


def _eval_runs_to_the_end(personas: Personas, workflow: Workflow, inputs, *, parked: bool) -> None:  # type: ignore[no-untyped-def]
    long_topic = " ".join(f"word{i}" for i in range(15))
    for _ in range(2):
        services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs(long_topic))
    wait_until(
        lambda: Run.objects.filter(status=Run.Status.SUCCEEDED, root=None).count() == 2,
        timeout=60,
        message="the past runs never finished",
    )
    dataset = datasets.dataset_create(
        workflow=workflow,
        name="Short topics",
        rows=[datasets.NewRow(inputs(f"t{i}"), None) for i in range(4)],
        user=None,
    )
    estimate = execution.estimate(
        workflow=workflow, dataset=dataset, targets=execution.targets_of(workflow, [1])
    )
    assert estimate.known
    spent = _ledger(personas.workspace).spent_nanousd
    _budget(personas.workspace, spent + estimate.total_nanousd)
    evaluation = _start(workflow, dataset)
    assert evaluation.estimate_nanousd == estimate.total_nanousd

    wait_until(
        lambda: Eval.objects.filter(id=evaluation.id, status=Eval.Status.FINISHED).exists(),
        timeout=90,
        message="the eval waited for its own hold",
    )
    runs = Run.objects.filter(trigger=Run.Trigger.EVAL)
    assert [r.status for r in runs] == [Run.Status.SUCCEEDED] * 4, [r.error for r in runs]
    if parked:  # at least one of them was parked, and lent room
        assert any(r.waited_ms > 0 for r in runs)
    assert not Run.objects.filter(budget_needed_nanousd__isnull=False).exists()
    assert all(item.passed is not None for item in EvalItem.objects.filter(eval=evaluation))
    ledger = _ledger(personas.workspace)
    assert ledger.reserved_nanousd == 0
    assert not BudgetReservation.objects.exists()
    assert ledger.spent_nanousd == spent + sum(r.cost_nanousd for r in runs)


def test_the_reaper_nudges_an_eval_nothing_moved_so_its_hold_does_not_linger(
    personas: Personas, judged: tuple[Workflow, Dataset]
) -> None:
    workflow, dataset = judged
    evaluation = _start(workflow, dataset)  # its first message is never sent (nothing commits)
    assert execution.evals_nudge_stalled() == 0  # just started
    long_ago = timezone.now() - execution.STALLED - timedelta(seconds=1)
    Eval.objects.filter(id=evaluation.id).update(created_at=long_ago)
    assert execution.evals_nudge_stalled() == 1
    Eval.objects.filter(id=evaluation.id).update(advanced_at=timezone.now())
    assert execution.evals_nudge_stalled() == 0  # moving
    Eval.objects.filter(id=evaluation.id).update(advanced_at=long_ago)
    assert execution.evals_nudge_stalled() == 1
    Eval.objects.filter(id=evaluation.id).update(status=Eval.Status.FINISHED)
    assert execution.evals_nudge_stalled() == 0


@pytest.mark.integration
def test_a_maps_items_waiting_for_budget_at_once_say_what_they_all_still_wait_for(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    """Two items of one map wait for budget on their threads: their run says what both need,
    and once one goes on, what the other still needs (an eval lends exactly that)."""
    _budget(personas.workspace, 100 * 10**9)
    each = {**ABOUT_EACH, "steps": [{**ABOUT_EACH["steps"][0], "concurrency": 2}]}
    workflow = services.workflow_create(workspace=personas.workspace, definition=each, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    workspace_id = personas.workspace.id
    blocker = budget.reserve(workspace_id=workspace_id, amount_nanousd=100 * 10**9)
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"topics": ["same", "same"]}
    )
    wait_until(
        lambda: StepItem.objects.filter(run=run, status=StepItem.Status.RUNNING).count() == 2,
        message="the items never tried for budget",
    )
    # What one item's call holds: its prompt's worst case, as the map prices it.
    step = services.definition_parse(each).steps[0]
    messages = StepItem.objects.filter(run=run).first().messages
    one = budget.worst_case_nanousd(
        model=step.model, prompt_tokens=tokens.count_messages(messages), max_tokens=20
    )

    def needed() -> int | None:
        return Run.objects.get(id=run.id).budget_needed_nanousd

    wait_until(
        lambda: needed() == 2 * one,
        timeout=10,
        message=f"two items wait, the run says it needs {needed()} (one needs {one})",
    )
    # Room for one of them: it goes on and finishes; the other still waits, and says so.
    with transaction.atomic():
        budget.settle_in_transaction(blocker, workspace_id=workspace_id, cost_nanousd=0)
        ledger_id = _ledger(personas.workspace).id
        room, rest = (
            budget.decide(
                workspace_id=workspace_id, ledger_id=ledger_id, amount_nanousd=amount, run_id=None
            )
            for amount in (one, 100 * 10**9 - one)
        )
    assert isinstance(room, budget.Reservation) and isinstance(rest, budget.Reservation)
    budget.settle(room, cost_nanousd=0)
    wait_until(
        lambda: StepItem.objects.filter(run=run, status=StepItem.Status.SUCCEEDED).count() == 1,
        message="the item that fits never went on",
    )
    assert needed() == one
    budget.settle(rest, cost_nanousd=0)
    wait_until(
        lambda: Run.objects.get(id=run.id).status == Run.Status.SUCCEEDED,
        message="the second item never went on",
    )
    assert needed() is None


LONG = {
    "name": "Long",
    "inputs": [{"name": "text", "type": "text"}],
    "steps": [{"key": "say", "type": "template", "template": "{{ text }}"}],
}


def test_a_judge_that_waits_for_budget_does_not_make_the_rows_earlier_judges_pay_twice(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    """Two judges on one row; the second's worst case (a longer rubric) does not fit beside
    another call's hold, the first's does. The row keeps the first verdict while it waits,
    and, the hold gone, the next pass asks only the second judge."""
    from workflows.evals import judge

    workflow = services.workflow_create(workspace=personas.workspace, definition=LONG, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    text = " ".join(f"w{i}" for i in range(3000))
    short_rubric = "Pass it. [[fake:choose=pass]]"
    long_rubric = ("Pass it. [[fake:choose=pass]] " + "a " * 1980)[:4000]
    check_add(workflow=workflow, name="first", kind="llm_judge", config={"rubric": short_rubric})
    check_add(workflow=workflow, name="second", kind="llm_judge", config={"rubric": long_rubric})
    dataset = datasets.dataset_create(
        workflow=workflow, name="One", rows=[datasets.NewRow({"text": text}, None)], user=None
    )
    estimate = execution.estimate(
        workflow=workflow, dataset=dataset, targets=execution.targets_of(workflow, [1])
    ).total_nanousd
    first, second = (
        judge.worst_case_nanousd(
            judge.messages(rubric=rubric, inputs={"text": text}, expected=None, output=text)
        )
        for rubric in (short_rubric, long_rubric)
    )
    free = max(estimate, first) + 1000
    assert second > free  # the second judge cannot fit beside the other call's hold
    other_call = 10 * second
    _budget(personas.workspace, free + other_call)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=other_call)

    evaluation = _start(workflow, dataset)  # runs its row and scores it, in this process
    item = EvalItem.objects.get(eval=evaluation)
    assert item.status == EvalItem.Status.STARTED  # waiting for the second judge
    assert [r["name"] for r in item.results] == ["first"]
    assert item.judge_cost_nanousd > 0
    assert fake_calls() == 1

    budget.settle(held, cost_nanousd=0)
    execution.eval_advance(evaluation.id)
    item.refresh_from_db()
    assert item.status == EvalItem.Status.SCORED
    assert [(r["name"], r["passed"]) for r in item.results] == [("first", True), ("second", True)]
    assert item.passed is True
    assert fake_calls() == 2  # the first judge was not asked again
    spent = _ledger(personas.workspace).spent_nanousd
    assert spent == item.judge_cost_nanousd


def test_a_canceled_eval_starts_no_more_rows(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    """A pass that claims rows after the eval was canceled starts none (the claim is
    conditional on a running eval)."""
    workflow = services.workflow_create(workspace=personas.workspace, definition=LONG, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    dataset = datasets.dataset_create(
        workflow=workflow,
        name="Three",
        rows=[datasets.NewRow({"text": f"t{i}"}, None) for i in range(3)],
        user=None,
    )
    evaluation = execution.eval_start(
        workflow=workflow, dataset=dataset, versions=[1], concurrency=1, user=None
    )
    evaluation.refresh_from_db()
    assert evaluation.status == Eval.Status.FINISHED
    # Another eval, canceled before any pass: a late pass starts nothing.
    Eval.objects.filter(id=evaluation.id).update(status=Eval.Status.RUNNING)
    EvalItem.objects.filter(eval=evaluation).update(status=EvalItem.Status.PENDING, run=None)
    evaluation.refresh_from_db()
    assert execution.eval_cancel(evaluation=evaluation)
    runs_before = Run.objects.count()
    assert execution._start_pending(evaluation) == 0
    assert Run.objects.count() == runs_before
