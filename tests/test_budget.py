"""The hard monthly budget: reserved before each LLM call, settled after, never exceeded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import BudgetMonth, BudgetReservation, Membership, Role, Workspace
from dev import fake_openai
from tests.conftest import Personas
from tests.polling import wait_for_run
from tests.servers import WorkerProcess
from workflows import services
from workflows.billing import budget
from workflows.billing.budget import BudgetBusy, BudgetExhausted
from workflows.llm import tokens
from workflows.models import Run, StepRun, Workflow
from workflows.runtime import engine

MODEL = "gpt-4.1-mini"


def set_budget(workspace: Workspace, nanousd: int | None) -> None:
    workspace.budget_nanousd = nanousd
    workspace.save(update_fields=["budget_nanousd"])


def ledger(workspace: Workspace) -> BudgetMonth:
    return BudgetMonth.objects.get(workspace=workspace, month=budget.month_of())


# --- The ledger -----------------------------------------------------------------------------------


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
def test_a_call_that_can_never_fit_is_refused_and_changes_nothing(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=700)
    budget.settle(held, cost_nanousd=700)
    with pytest.raises(BudgetExhausted) as refused:
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=301)
    assert (refused.value.needed_nanousd, refused.value.left_nanousd) == (301, 300)
    assert "workspace budget exhausted" in refused.value.message
    assert (
        ledger(personas.workspace).reserved_nanousd,
        ledger(personas.workspace).spent_nanousd,
    ) == (0, 700)
    budget.reserve(
        workspace_id=personas.workspace.id, amount_nanousd=300
    )  # exactly what is left fits


@pytest.mark.django_db
def test_a_call_kept_out_only_by_other_calls_holds_must_wait_not_fail(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=700)
    with pytest.raises(BudgetBusy):
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=301)
    assert ledger(personas.workspace).reserved_nanousd == 700
    # Once the hold settles to its real (smaller) cost, the same call fits.
    budget.settle(held, cost_nanousd=100)
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=301)
    assert (
        ledger(personas.workspace).reserved_nanousd,
        ledger(personas.workspace).spent_nanousd,
    ) == (301, 100)


@pytest.mark.django_db
def test_a_failed_call_without_usage_releases_its_hold(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=1000)
    budget.settle(held, cost_nanousd=0)
    assert (
        ledger(personas.workspace).reserved_nanousd,
        ledger(personas.workspace).spent_nanousd,
    ) == (0, 0)
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
def test_holds_left_by_a_crashed_worker_are_released_once_no_call_can_still_run(
    personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    set_budget(personas.workspace, 1000)
    crashed = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=900)
    with pytest.raises(BudgetBusy):
        budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=500)
    too_old = settings.RUN_TIME_LIMIT_SECONDS + settings.STEP_TIMEOUT_SECONDS + 61
    BudgetReservation.objects.filter(id=crashed.id).update(
        created_at=timezone.now() - timedelta(seconds=too_old)
    )
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=500)
    assert ledger(personas.workspace).reserved_nanousd == 500
    # The crashed call settling very late does not release its hold twice.
    budget.settle(crashed, cost_nanousd=10)
    assert (
        ledger(personas.workspace).reserved_nanousd,
        ledger(personas.workspace).spent_nanousd,
    ) == (500, 10)


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
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarise tides."},
    ]
    counted = tokens.count_messages(messages)
    worst = budget.worst_case_nanousd(model=MODEL, prompt_tokens=counted, max_tokens=10)
    billed = fake_openai.prompt_tokens(
        tuple(fake_openai.Message(m["role"], m["content"]) for m in messages)
    ).count
    assert worst >= billed * 400 + 10 * 1600


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_overbook(personas: Personas) -> None:
    set_budget(personas.workspace, 5 * 1000)
    granted: list[int] = []
    waiting: list[int] = []
    start = threading.Barrier(20)

    def call(n: int) -> None:
        try:
            start.wait()
            budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=1000)
            granted.append(n)
        except BudgetBusy:
            waiting.append(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert (len(granted), len(waiting)) == (5, 15)
    assert ledger(personas.workspace).reserved_nanousd == 5000


# --- Waiting for budget ---------------------------------------------------------------------------


def parked_run(workspace: Workspace, needed: int, *, waited_s: float = 0, **fields: object) -> Run:
    """A run as the engine parks it: waiting for budget, unleased, its LLM step waiting."""
    workflow = Workflow.objects.filter(workspace=workspace).first() or services.workflow_create(
        workspace=workspace, definition=one_call("Parked", "Describe {{ topic }}"), user=None
    )
    now = timezone.now()
    run = Run.objects.create(
        workspace=workspace,
        workflow=workflow,
        definition=workflow.definition,
        trigger=Run.Trigger.MANUAL,
        inputs={"topic": "otters"},
        status=Run.Status.WAITING,
        waiting_for=Run.WaitingFor.BUDGET,
        waiting_since=now - timedelta(seconds=waited_s),
        budget_needed_nanousd=needed,
        started_at=now - timedelta(seconds=waited_s + 1),
        deadline_at=now + timedelta(hours=1),
        enqueued_at=now - timedelta(seconds=waited_s + 1),
        **fields,
    )
    StepRun.objects.create(run=run, key="s1", position=0, type="llm", status=StepRun.Status.WAITING)
    return run


def statuses(*runs: Run) -> list[str]:
    return [Run.objects.get(id=run.id).status for run in runs]


@pytest.mark.django_db
def test_a_settle_wakes_the_oldest_waiting_runs_that_fit_and_those_that_never_will(
    personas: Personas,
) -> None:
    set_budget(personas.workspace, 1000)
    held = budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=600)
    first, big, small, hopeless = (parked_run(personas.workspace, n) for n in (300, 600, 100, 900))
    assert statuses(first, big, small, hopeless) == ["waiting"] * 4
    budget.settle(held, cost_nanousd=200)  # 800 free: 300 fits, then 600 does not
    # Oldest first: `small` would fit but does not overtake `big`. `hopeless`
    # can never fit (200 spent + 900 > 1000): woken to fail, not to wait forever.
    assert statuses(first, big, small, hopeless) == ["queued", "waiting", "waiting", "queued"]
    woken = Run.objects.get(id=first.id)
    assert (woken.waiting_for, woken.waiting_since, woken.budget_needed_nanousd) == ("", None, None)
    assert woken.enqueued_at is not None and woken.lease_owner == ""


@pytest.mark.django_db
def test_a_run_is_woken_once_however_many_wake_it(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    run = parked_run(personas.workspace, 300, waited_s=5)
    deadline = Run.objects.get(id=run.id).deadline_at
    assert budget.recheck_waiting() == [run.id]
    assert budget.recheck_waiting() == []
    assert (
        budget.wake_waiting(
            workspace_id=personas.workspace.id,
            budget_nanousd=1000,
            spent_nanousd=0,
            reserved_nanousd=0,
        )
        == []
    )
    run.refresh_from_db()
    # Waiting is not running: not in the run's time, and not against its time limit.
    assert 5000 <= run.waited_ms < 10_000
    assert timedelta(seconds=5) <= run.deadline_at - deadline < timedelta(seconds=10)


@pytest.mark.django_db
def test_a_removed_or_raised_budget_lets_the_reaper_wake_waiting_runs(personas: Personas) -> None:
    set_budget(personas.workspace, 1000)
    budget.reserve(workspace_id=personas.workspace.id, amount_nanousd=900)  # a call in flight
    run = parked_run(personas.workspace, 300)
    assert budget.recheck_waiting() == []
    set_budget(personas.workspace, 2000)
    assert budget.recheck_waiting() == [run.id]


@pytest.mark.django_db
def test_the_running_time_of_a_run_leaves_out_its_waits(personas: Personas) -> None:
    run = parked_run(personas.workspace, 300, waited_s=60)
    run.refresh_from_db()
    assert run.running_ms(timezone.now()) < 2000  # started 61 s ago, waiting for 60 s
    run.waited_ms = 30_000
    run.waiting_since = None
    run.finished_at = run.started_at + timedelta(seconds=40)
    assert run.duration_ms == 10_000


@pytest.mark.django_db
def test_a_waiting_run_can_be_canceled(client: Client, personas: Personas) -> None:
    run = parked_run(personas.workspace, 300)
    client.force_login(personas.bob)
    page = client.get(f"/w/{personas.workspace.slug}/runs/{run.id}/").content.decode()
    assert "Waiting for budget" in page and "Cancel run" in page
    client.post(f"/w/{personas.workspace.slug}/runs/{run.id}/cancel/")
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELED
    step = run.steps.get()
    assert (step.status, step.cost_nanousd) == (StepRun.Status.FAILED, 0)
    assert "nothing was sent" in step.error
    assert budget.recheck_waiting() == []


@pytest.mark.django_db
def test_the_runs_list_says_what_a_run_waits_for(client: Client, personas: Personas) -> None:
    parked_run(personas.workspace, 300)
    client.force_login(personas.vera)
    page = client.get(f"/w/{personas.workspace.slug}/runs/").content.decode()
    assert "Waiting for budget" in page
    filtered = client.get(f"/w/{personas.workspace.slug}/runs/?status=waiting").content.decode()
    assert "Waiting for budget" in filtered


# --- On the engine (real workers where runs meet concurrently or a wake-up is lost) -------------


def one_call(name: str, prompt: str, max_tokens: int = 8) -> dict:
    return {
        "name": name,
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [{"key": "s1", "type": "llm", "prompt": prompt, "max_tokens": max_tokens}],
    }


def worst_case(prompt: str, max_tokens: int = 8) -> int:
    messages = [{"role": "user", "content": prompt}]
    return budget.worst_case_nanousd(
        model=MODEL, prompt_tokens=tokens.count_messages(messages), max_tokens=max_tokens
    )


def test_a_call_past_the_budget_fails_its_step_and_is_never_sent(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    set_budget(personas.workspace, 1000)
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=one_call("Pricey", "Describe {{ topic }}"),
        user=None,
    )
    services.workflow_publish(workflow=workflow, user=None)
    run = wait_for_run(
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "walruses"}).id
    )
    assert run.status == Run.Status.FAILED
    assert "workspace budget exhausted" in run.error
    assert "Nothing was sent or paid" in run.error
    assert fake_calls("walruses") == 0
    step = run.steps.get()
    assert (step.status, step.cost_nanousd) == (StepRun.Status.FAILED, 0)
    assert ledger(personas.workspace).reserved_nanousd == 0


def test_a_failed_call_releases_its_hold_and_a_paid_one_is_metered(
    engine_in_process: None, personas: Personas
) -> None:
    set_budget(personas.workspace, 10**12)
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=one_call("Flaky", "About {{ topic }} [[fake:500 times=9]]", max_tokens=20),
        user=None,
    )
    services.workflow_publish(workflow=workflow, user=None)
    failed = wait_for_run(
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "x"}).id
    )
    assert failed.status == Run.Status.FAILED, failed.error
    assert (
        ledger(personas.workspace).reserved_nanousd,
        ledger(personas.workspace).spent_nanousd,
    ) == (0, 0)

    paid = services.workflow_create(
        workspace=personas.workspace,
        definition=one_call("Fine", "About {{ topic }}", max_tokens=20),
        user=None,
    )
    services.workflow_publish(workflow=paid, user=None)
    run = wait_for_run(
        services.run_start(workflow=paid, trigger="manual", inputs={"topic": "y"}).id
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert ledger(personas.workspace).spent_nanousd == run.cost_nanousd > 0
    assert ledger(personas.workspace).reserved_nanousd == 0


@pytest.mark.integration
def test_runs_kept_out_by_a_hold_wait_without_a_worker_thread_and_go_on_when_it_settles(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    prompt = "Tag {{ topic }} in one word. [[fake:reply=ok]]"
    slow_topic = "gannets [[fake:latency=5000]]"
    slow, quick = (
        worst_case(prompt.replace("{{ topic }}", t), max_tokens=100)
        for t in (slow_topic, "gannets")
    )
    # The slow call's hold leaves no room for another next to it; once it
    # settles (a one-token answer), the others fit one after the other.
    set_budget(personas.workspace, slow + quick - 1)
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=one_call("Held up", prompt, max_tokens=100),
        user=None,
    )
    services.workflow_publish(workflow=workflow, user=None)
    holder = services.run_start(workflow=workflow, trigger="manual", inputs={"topic": slow_topic})
    deadline = time.monotonic() + 30
    # Its call has reached the model (the fake server counted it), not only been recorded.
    while not (
        StepRun.objects.filter(run=holder, status=StepRun.Status.RUNNING).exists()
        and fake_calls("gannets") == 1
    ):
        assert time.monotonic() < deadline, "the slow call never started"
        time.sleep(0.05)
    # More waiting runs than the worker has threads (8): a wait holds none.
    waiters = [
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "gannets"})
        for _ in range(10)
    ]
    while (
        Run.objects.filter(id__in=[w.id for w in waiters], status=Run.Status.WAITING).count() < 10
    ):
        assert time.monotonic() < deadline, (
            "the runs did not all park while the slow call was in flight"
        )
        time.sleep(0.05)
    assert Run.objects.get(id=holder.id).status == Run.Status.RUNNING
    parked = Run.objects.get(id=waiters[0].id)
    assert (parked.waiting_for, parked.lease_owner, parked.lease_expires_at) == ("budget", "", None)
    step = parked.steps.get()
    assert (step.status, step.attempts) == (StepRun.Status.WAITING, 0)
    assert fake_calls("gannets") == 1

    done = [wait_for_run(run.id, timeout=90) for run in [holder, *waiters]]
    assert [run.status for run in done] == [Run.Status.SUCCEEDED] * 11, {run.error for run in done}
    assert fake_calls("gannets") == 11
    waited = done[1]
    assert waited.steps.get().attempts == 1
    # It waited for most of the slow call: that is not running time.
    assert waited.waited_ms > 2000
    assert (
        waited.duration_ms < (waited.finished_at - waited.started_at).total_seconds() * 1000 - 2000
    )
    assert ledger(personas.workspace).reserved_nanousd == 0


@pytest.mark.integration
def test_the_reaper_wakes_a_run_whose_wake_up_was_lost_and_it_finishes_once(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    set_budget(personas.workspace, 10**12)
    # Parked while a call was in flight, whose settle's wake-up never came.
    run = parked_run(personas.workspace, 10**6, waited_s=2)
    assert engine.reap() == [run.id]
    assert engine.reap() == []
    run = wait_for_run(run.id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert fake_calls("otters") == 1
    assert run.steps.get().attempts == 1
    assert run.waited_ms >= 2000


@pytest.fixture(scope="module")
def second_worker(worker_env: dict[str, str]) -> Iterator[WorkerProcess]:
    """A second worker process on the session worker's queue, for the module's last two
    tests (after the ones that count on one worker's threads): the ledger must hold
    across processes, not just threads."""
    second = WorkerProcess(worker_env, worker_env["CELERY_QUEUE"])
    second.start()
    yield second
    second.stop()


@pytest.mark.integration
def test_fifty_concurrent_runs_spend_no_more_than_a_budget_that_fits_ten(
    worker: WorkerProcess, second_worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
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

    succeeded = [r for r in runs if r.status == Run.Status.SUCCEEDED]
    refused = [
        r for r in runs if r.status == Run.Status.FAILED and "workspace budget exhausted" in r.error
    ]
    assert (len(succeeded), len(refused)) == (10, 40), {r.status + ": " + r.error for r in runs}
    spent = sum(r.cost_nanousd for r in runs)
    assert spent == 10 * per_call <= personas.workspace.budget_nanousd  # type: ignore[operator]
    assert fake_calls("lighthouses") == 10
    row = ledger(personas.workspace)
    assert (row.spent_nanousd, row.reserved_nanousd) == (spent, 0)
    assert not BudgetReservation.objects.exists()


@pytest.mark.integration
def test_a_burst_of_runs_waits_for_holds_and_spends_most_of_a_tiny_budget(
    worker: WorkerProcess, second_worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    # Each call holds its worst case (30 output tokens) but costs far less
    # (a one-token answer), so holds in flight are several times the real spend:
    # the budget pays for 14 to 18 calls, and 40 runs ask for more than that.
    # A call blocked only by other calls' holds must wait for them, not fail.
    prompt = "Tag {{ topic }} in one word. [[fake:reply=ok]] [[fake:latency=500]]"
    per_call = worst_case(prompt.replace("{{ topic }}", "puffins"), max_tokens=30)
    budget_nanousd = 4 * per_call  # about $0.00024: at most four calls can be held at once
    set_budget(personas.workspace, budget_nanousd)
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=one_call("Burst of tags", prompt, max_tokens=30),
        user=None,
    )
    services.workflow_publish(workflow=workflow, user=None)
    run_ids = [
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "puffins"}).id
        for _ in range(40)
    ]
    runs = [wait_for_run(run_id, timeout=180) for run_id in run_ids]

    succeeded = [r for r in runs if r.status == Run.Status.SUCCEEDED]
    refused = [
        r for r in runs if r.status == Run.Status.FAILED and "workspace budget exhausted" in r.error
    ]
    assert len(succeeded) + len(refused) == 40, {r.status + ": " + r.error for r in runs}
    row = ledger(personas.workspace)
    spent = sum(r.cost_nanousd for r in runs)
    assert (row.spent_nanousd, row.reserved_nanousd) == (spent, 0)
    assert fake_calls("puffins") == len(succeeded)
    # Never above the budget, and used up to the last call's worst case (not 22 %).
    assert budget_nanousd - per_call < spent <= budget_nanousd, (
        spent,
        budget_nanousd,
        len(succeeded),
    )
    # A run failed for budget only when what was spent before it, plus its worst
    # case, did not fit: every call whose cost was settled before it counts.
    paid = list(
        StepRun.objects.filter(run__in=succeeded).values_list("finished_at", "cost_nanousd")
    )
    for run in refused:
        spent_before = sum(cost for finished_at, cost in paid if finished_at <= run.finished_at)
        assert spent_before + per_call > budget_nanousd, (
            run.id,
            spent_before,
            per_call,
            budget_nanousd,
        )
    assert not BudgetReservation.objects.exists()


# --- The owner's form and the banner -------------------------------------------------------------


@pytest.mark.django_db
def test_the_owner_sets_and_removes_the_budget_in_dollars(
    client: Client, personas: Personas
) -> None:
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
    for value in ("-1", "ten dollars", "0", "0.00009", "0.0000000001"):
        response = client.post(url, {"monthly_budget_usd": value})
        assert response.status_code == 422, value
        assert 'aria-invalid="true"' in response.content.decode()
    personas.workspace.refresh_from_db()
    assert personas.workspace.budget_nanousd is None
    below = client.post(url, {"monthly_budget_usd": "0.00009"}).content.decode()
    assert "The smallest budget is $0.0001." in below


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entered", "nanousd", "shown"),
    [
        ("0.0001", 100_000, "$0.0001"),
        ("1.234", 1_234_000_000, "$1.234"),
        ("0.012345678", 12_345_678, "$0.012345678"),
    ],
)
def test_any_budget_from_a_tenth_of_a_cent_is_kept_to_the_nano_dollar(
    client: Client, personas: Personas, entered: str, nanousd: int, shown: str
) -> None:
    client.force_login(personas.alice)
    url = f"/w/{personas.workspace.slug}/settings/budget/"
    page = client.post(url, {"monthly_budget_usd": entered}, follow=True).content.decode()
    assert f"The monthly budget is now {shown}." in page
    personas.workspace.refresh_from_db()
    assert personas.workspace.budget_nanousd == nanousd
    # The form shows the amount as it is, so saving it again changes nothing.
    assert (
        f'value="{entered}"'
        in client.get(f"/w/{personas.workspace.slug}/settings/").content.decode()
    )


@pytest.mark.django_db
def test_only_owners_set_the_budget(client: Client, personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    client.force_login(personas.bob)
    response = client.post(
        f"/w/{personas.workspace.slug}/settings/budget/", {"monthly_budget_usd": "1000"}
    )
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
    BudgetMonth.objects.create(
        workspace=personas.workspace, month=budget.month_of(), spent_nanousd=spent * 1_000_000
    )
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
    BudgetMonth.objects.create(
        workspace=personas.workspace, month=budget.month_of(), spent_nanousd=100
    )
    client.force_login(personas.charlie)
    response = client.get(f"/w/{personas.workspace.slug}/")
    assert response.status_code == 404
    assert "Budget exhausted" not in response.content.decode()
