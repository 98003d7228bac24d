"""The hard monthly budget: reserved before each LLM call, settled after, never exceeded."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import BudgetMonth, BudgetReservation, Membership, Role, Workspace
from tests.conftest import Personas, WorkerProcess, wait_for_run
from workflows import budget, fake_openai, services, tokens
from workflows.budget import BudgetExhausted
from workflows.models import Run, StepRun

MODEL = "gpt-4.1-mini"


def set_budget(workspace: Workspace, nanousd: int | None) -> None:
    workspace.budget_nanousd = nanousd
    workspace.save(update_fields=["budget_nanousd"])


def ledger(workspace: Workspace) -> BudgetMonth:
    return BudgetMonth.objects.get(workspace=workspace, month=budget.month_of())


# --- The ledger ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reservation_that_fits_is_held_then_settled_to_the_real_cost(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=600, run_id=7)
    row = ledger(personas.workspace)
    assert (row.reserved_nanousd, row.spent_nanousd) == (600, 0)
    assert BudgetReservation.objects.get().run_id == 7
    budget.settle(held, cost_nanousd=250)
    row.refresh_from_db()
    assert (row.reserved_nanousd, row.spent_nanousd) == (0, 250)
    assert not BudgetReservation.objects.exists()


@pytest.mark.django_db
def test_a_call_that_does_not_fit_is_refused_and_changes_nothing(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=700)
    with pytest.raises(BudgetExhausted) as refused:
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=301)
    assert (refused.value.needed_nanousd, refused.value.left_nanousd) == (301, 300)
    assert "workspace budget exhausted" in refused.value.message
    assert ledger(personas.workspace).reserved_nanousd == 700
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=300)  # exactly what is left fits


@pytest.mark.django_db
def test_a_failed_call_without_usage_releases_its_hold(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=1000)
    budget.settle(held, cost_nanousd=0)
    assert (ledger(personas.workspace).reserved_nanousd, ledger(personas.workspace).spent_nanousd) == (0, 0)
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=1000)


@pytest.mark.django_db
def test_without_a_budget_every_call_is_granted_and_still_metered(personas: Personas) -> None:
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=10**15)
    budget.settle(held, cost_nanousd=42)
    assert ledger(personas.workspace).spent_nanousd == 42
    # A budget set mid-month starts from what the month already spent.
    set_budget(personas.workspace, 50)
    with pytest.raises(BudgetExhausted):
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=9)


@pytest.mark.django_db
def test_a_budget_of_zero_refuses_everything(personas: Personas) -> None:
    set_budget(personas.workspace, 0)
    with pytest.raises(BudgetExhausted):
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=1)


@pytest.mark.django_db
def test_holds_left_by_a_crashed_worker_are_released_once_no_call_can_still_run(personas: Personas, settings) -> None:  # type: ignore[no-untyped-def]
    set_budget(personas.workspace, 1000)
    crashed = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=900)
    with pytest.raises(BudgetExhausted):
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=500)
    too_old = settings.RUN_TIME_LIMIT_SECONDS + settings.STEP_TIMEOUT_SECONDS + 61
    BudgetReservation.objects.filter(id=crashed.id).update(created_at=timezone.now() - timedelta(seconds=too_old))
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=500)
    assert ledger(personas.workspace).reserved_nanousd == 500
    # The crashed call settling very late does not release its hold twice.
    budget.settle(crashed, cost_nanousd=10)
    assert (ledger(personas.workspace).reserved_nanousd, ledger(personas.workspace).spent_nanousd) == (500, 10)


@pytest.mark.django_db
def test_each_month_has_its_own_ledger(personas: Personas) -> None:
    set_budget(personas.workspace, 100)
    BudgetMonth.objects.create(
        workspace=personas.workspace, month=budget.month_of() - timedelta(days=1), spent_nanousd=100
    )
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=100)
    assert BudgetMonth.objects.filter(workspace=personas.workspace).count() == 2


@pytest.mark.django_db
def test_the_worst_case_covers_what_the_api_counts(personas: Personas) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Summarise tides."}]
    counted = tokens.count_messages(messages)
    worst = budget.worst_case_nanousd(model=MODEL, prompt_tokens=counted, max_tokens=10)
    billed = fake_openai.prompt_tokens(tuple(fake_openai.Message(m["role"], m["content"]) for m in messages)).count
    assert worst >= billed * 400 + 10 * 1600


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_overbook(personas: Personas) -> None:
    set_budget(personas.workspace, 5 * 1000)
    granted: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(20)

    def call(n: int) -> None:
        try:
            start.wait()
            budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=1000)
            granted.append(n)
        except BudgetExhausted:
            refused.append(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert (len(granted), len(refused)) == (5, 15)
    assert ledger(personas.workspace).reserved_nanousd == 5000


# --- With real workers -----------------------------------------------------------------------------


def one_call(name: str, prompt: str, max_tokens: int = 8) -> dict:
    return {"name": name, "inputs": [{"name": "topic", "type": "text"}],
            "steps": [{"key": "s1", "type": "llm", "prompt": prompt, "max_tokens": max_tokens}]}


def worst_case(prompt: str, max_tokens: int = 8) -> int:
    messages = [{"role": "user", "content": prompt}]
    return budget.worst_case_nanousd(
        model=MODEL, prompt_tokens=tokens.count_messages(messages), max_tokens=max_tokens
    )


@pytest.mark.integration
def test_a_call_past_the_budget_fails_its_step_and_is_never_sent(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    set_budget(personas.workspace, 1000)
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=one_call("Pricey", "Describe {{ topic }}"), user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    run = wait_for_run(services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "walruses"}).id)
    assert run.status == Run.Status.FAILED
    assert "workspace budget exhausted" in run.error
    assert "Nothing was sent or paid" in run.error
    assert fake_calls("walruses") == 0
    step = run.steps.get()
    assert (step.status, step.cost_nanousd) == (StepRun.Status.FAILED, 0)
    assert ledger(personas.workspace).reserved_nanousd == 0


@pytest.mark.integration
def test_a_failed_call_releases_its_hold_and_a_paid_one_is_metered(
    worker: WorkerProcess, personas: Personas
) -> None:
    set_budget(personas.workspace, 10**12)
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=one_call("Flaky", "About {{ topic }} [[fake:500 times=9]]", max_tokens=20),
        user=None,
    )
    services.workflow_publish(workflow=workflow, user=None)
    failed = wait_for_run(services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "x"}).id)
    assert failed.status == Run.Status.FAILED, failed.error
    assert (ledger(personas.workspace).reserved_nanousd, ledger(personas.workspace).spent_nanousd) == (0, 0)

    paid = services.workflow_create(
        workspace=personas.workspace, definition=one_call("Fine", "About {{ topic }}", max_tokens=20), user=None
    )
    services.workflow_publish(workflow=paid, user=None)
    run = wait_for_run(services.run_start(workflow=paid, trigger="manual", inputs={"topic": "y"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert ledger(personas.workspace).spent_nanousd == run.cost_nanousd > 0
    assert ledger(personas.workspace).reserved_nanousd == 0


@pytest.mark.integration
def test_fifty_concurrent_runs_spend_no_more_than_a_budget_that_fits_ten(
    worker: WorkerProcess, worker_env: dict[str, str], personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    # A second worker process: the ledger must hold across processes, not just threads.
    second = WorkerProcess(worker_env, worker_env["CELERY_QUEUE"])
    second.start()
    try:
        prompt = "Summarise the history of {{ topic }} in one line. [[fake:latency=300]]"
        rendered = prompt.replace("{{ topic }}", "lighthouses")
        # The fake server answers every allowed token (the answer is longer
        # than max_tokens), so each call costs exactly its worst case.
        per_call = worst_case(rendered)
        set_budget(personas.workspace, 10 * per_call)
        workflow = services.workflow_create(
            workspace=personas.workspace, definition=one_call("Burst", prompt), user=personas.bob
        )
        services.workflow_publish(workflow=workflow, user=personas.bob)
        run_ids = [
            services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "lighthouses"}).id
            for _ in range(50)
        ]
        runs = [wait_for_run(run_id, timeout=120) for run_id in run_ids]
    finally:
        second.stop()

    succeeded = [r for r in runs if r.status == Run.Status.SUCCEEDED]
    refused = [r for r in runs if r.status == Run.Status.FAILED and "workspace budget exhausted" in r.error]
    assert (len(succeeded), len(refused)) == (10, 40), {r.status + ": " + r.error for r in runs}
    spent = sum(r.cost_nanousd for r in runs)
    assert spent == 10 * per_call <= personas.workspace.budget_nanousd  # type: ignore[operator]
    assert fake_calls("lighthouses") == 10
    row = ledger(personas.workspace)
    assert (row.spent_nanousd, row.reserved_nanousd) == (spent, 0)
    assert not BudgetReservation.objects.exists()


# --- The owner's form and the banner -------------------------------------------------------------


@pytest.mark.django_db
def test_the_owner_sets_and_removes_the_budget_in_dollars(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    url = f"/w/{personas.workspace.slug}/settings/budget/"
    response = client.post(url, {"monthly_budget_usd": "12.50"}, follow=True)
    assert "The monthly budget is now $12.50." in response.content.decode()
    personas.workspace.refresh_from_db()
    assert personas.workspace.budget_nanousd == 12_500_000_000
    client.post(url, {"monthly_budget_usd": ""})
    personas.workspace.refresh_from_db()
    assert personas.workspace.budget_nanousd is None


@pytest.mark.django_db
def test_a_negative_or_garbled_budget_is_a_form_error(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    url = f"/w/{personas.workspace.slug}/settings/budget/"
    for value in ("-1", "ten dollars", "1.234"):
        response = client.post(url, {"monthly_budget_usd": value})
        assert response.status_code == 422, value
        assert 'aria-invalid="true"' in response.content.decode()
    personas.workspace.refresh_from_db()
    assert personas.workspace.budget_nanousd is None


@pytest.mark.django_db
def test_only_owners_set_the_budget(client: Client, personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(role=Role.ADMIN)
    client.force_login(personas.bob)
    response = client.post(f"/w/{personas.workspace.slug}/settings/budget/", {"monthly_budget_usd": "1000"})
    assert response.status_code == 403
    page = client.get(f"/w/{personas.workspace.slug}/settings/").content.decode()
    assert "Only owners change the budget." in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("spent", "banner"),
    [(79, None), (80, "80% of the monthly budget is spent."), (100, "Budget exhausted:")],
)
def test_a_banner_warns_every_member_from_80_percent(
    client: Client, personas: Personas, spent: int, banner: str | None
) -> None:
    set_budget(personas.workspace, 100_000_000)
    BudgetMonth.objects.create(workspace=personas.workspace, month=budget.month_of(), spent_nanousd=spent * 1_000_000)
    client.force_login(personas.vera)
    page = client.get(f"/w/{personas.workspace.slug}/").content.decode()
    if banner is None:
        assert "of the monthly budget is spent" not in page and "Budget exhausted" not in page
    else:
        assert banner in page
        assert ("banner-danger" if spent >= 100 else "banner-warning") in page


@pytest.mark.django_db
def test_the_banner_never_shows_to_outsiders(client: Client, personas: Personas) -> None:
    set_budget(personas.workspace, 100)
    BudgetMonth.objects.create(workspace=personas.workspace, month=budget.month_of(), spent_nanousd=100)
    client.force_login(personas.charlie)
    response = client.get(f"/w/{personas.workspace.slug}/")
    assert response.status_code == 404
    assert "Budget exhausted" not in response.content.decode()
