"""Each function of workflows/sql.py on the database the suite runs against
(SQLite by default, PostgreSQL in CI): the statements are written by hand, so
each is run here for real."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import BudgetMonth, Workspace
from workflows import sql
from workflows.models import (
    FailureAlert,
    Run,
    RunCallback,
    StepRun,
    Trigger,
    Workflow,
    WorkflowVersion,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace() -> Workspace:
    return Workspace.objects.create(name="Acme", slug="acme", budget_nanousd=5_000)


@pytest.fixture
def workflow(workspace: Workspace) -> Workflow:
    return Workflow.objects.create(workspace=workspace, name="Triage", definition={"steps": []})


def a_run(workflow: Workflow, **fields: object) -> Run:
    return Run.objects.create(
        workspace=workflow.workspace,
        workflow=workflow,
        definition={"steps": []},
        trigger=Run.Trigger.MANUAL,
        **fields,
    )


def test_update_sets_values_adds_to_counters_and_counts_the_rows(workflow: Workflow) -> None:
    run = a_run(workflow, tokens_in=10)
    other = a_run(workflow, tokens_in=10)

    updated = sql.update(
        Run,
        where={"id": run.id},
        values={"error": "boom", "output": {"a": 1}},
        add={"tokens_in": 5},
    )

    assert updated == 1
    run.refresh_from_db()
    other.refresh_from_db()
    assert (run.error, run.output, run.tokens_in) == ("boom", {"a": 1}, 15)
    assert (other.error, other.tokens_in) == ("", 10)


def test_update_matches_none_as_null_and_a_list_as_any_of_its_items(workflow: Workflow) -> None:
    now = timezone.now()
    queued = a_run(workflow)
    running = a_run(workflow, status=Run.Status.RUNNING)
    sent = a_run(workflow, enqueued_at=now)

    updated = sql.update(
        Run,
        where={"status": [Run.Status.QUEUED, Run.Status.RUNNING], "enqueued_at": None},
        values={"enqueued_at": now},
    )

    assert updated == 2
    assert Run.objects.filter(id__in=[queued.id, running.id], enqueued_at=now).count() == 2
    assert sql.update(Run, where={"id": sent.id, "enqueued_at": None}, values={"error": "x"}) == 0


def test_run_claim_takes_a_queued_run_and_sets_its_first_start(workflow: Workflow) -> None:
    run = a_run(workflow)
    now = timezone.now()

    claimed = sql.run_claim(
        run_id=run.id,
        token="t1",
        now=now,
        lease_expires_at=now + timedelta(seconds=30),
        deadline_at=now + timedelta(hours=1),
    )

    assert claimed is not None and claimed.id == run.id
    assert claimed.status == Run.Status.RUNNING
    assert claimed.lease_owner == "t1"
    assert claimed.started_at == now
    assert claimed.lease_expires_at == now + timedelta(seconds=30)
    assert claimed.deadline_at == now + timedelta(hours=1)
    assert claimed.definition == {"steps": []}  # the whole row is loaded


def test_run_claim_refuses_a_live_lease_and_takes_an_expired_one(workflow: Workflow) -> None:
    started = timezone.now() - timedelta(minutes=5)
    run = a_run(
        workflow,
        status=Run.Status.RUNNING,
        lease_owner="t1",
        lease_expires_at=timezone.now() + timedelta(seconds=30),
        started_at=started,
        deadline_at=started + timedelta(hours=1),
    )
    now = timezone.now()
    lease, deadline = now + timedelta(seconds=30), now + timedelta(hours=2)

    assert (
        sql.run_claim(
            run_id=run.id, token="t2", now=now, lease_expires_at=lease, deadline_at=deadline
        )
        is None
    )

    later = now + timedelta(minutes=1)
    claimed = sql.run_claim(
        run_id=run.id, token="t2", now=later, lease_expires_at=lease, deadline_at=deadline
    )
    assert claimed is not None and claimed.lease_owner == "t2"
    # A resumed claim keeps the first start and deadline.
    assert claimed.started_at == started
    assert claimed.deadline_at == started + timedelta(hours=1)


def test_run_claim_forgets_what_the_dead_workers_map_items_waited_for(
    workflow: Workflow,
) -> None:
    # A map item waiting for budget on its thread says so on its running run; the worker
    # died, and an eval would go on lending that room to a call nobody makes.
    run = a_run(
        workflow,
        status=Run.Status.RUNNING,
        lease_owner="t1",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        budget_needed_nanousd=38_400,
    )
    now = timezone.now()
    claimed = sql.run_claim(
        run_id=run.id,
        token="t2",
        now=now,
        lease_expires_at=now + timedelta(seconds=30),
        deadline_at=now + timedelta(hours=1),
    )
    assert claimed is not None and claimed.budget_needed_nanousd is None
    run.refresh_from_db()
    assert run.budget_needed_nanousd is None


def test_run_claim_refuses_a_finished_run(workflow: Workflow) -> None:
    run = a_run(workflow, status=Run.Status.SUCCEEDED)
    now = timezone.now()

    claimed = sql.run_claim(
        run_id=run.id, token="t", now=now, lease_expires_at=now, deadline_at=now
    )

    assert claimed is None
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_run_fence_reading_budget_extends_the_lease_and_reads_the_budget(
    workflow: Workflow,
) -> None:
    run = a_run(workflow, status=Run.Status.RUNNING, lease_owner="t1")
    until = timezone.now() + timedelta(seconds=30)

    assert sql.run_fence_reading_budget(run_id=run.id, token="t1", lease_expires_at=until) == (
        5_000,
    )
    run.refresh_from_db()
    assert run.lease_expires_at == until
    assert sql.run_fence_reading_budget(run_id=run.id, token="t2", lease_expires_at=until) is None

    Workspace.objects.filter(id=workflow.workspace_id).update(budget_nanousd=None)
    assert sql.run_fence_reading_budget(run_id=run.id, token="t1", lease_expires_at=until) == (
        None,
    )


def test_run_park_says_whether_runs_wait_for_a_slot(workflow: Workflow) -> None:
    run = a_run(workflow, status=Run.Status.RUNNING, lease_owner="t1")
    values = {"status": Run.Status.WAITING, "lease_owner": ""}

    assert sql.run_park(run_id=run.id, token="t2", values=values) is None
    assert sql.run_park(run_id=run.id, token="t1", values=values) is False
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING

    a_run(workflow)  # queued, not sent to the broker
    second = a_run(workflow, status=Run.Status.RUNNING, lease_owner="t3")
    assert sql.run_park(run_id=second.id, token="t3", values=values) is True


def test_run_finish_says_whether_a_callback_is_pending_and_runs_wait(
    workflow: Workflow,
) -> None:
    values = {"status": Run.Status.SUCCEEDED, "output": {"ok": True}, "lease_expires_at": None}
    plain = a_run(workflow, status=Run.Status.RUNNING, lease_owner="t1")
    assert sql.run_finish(run_id=plain.id, token="t1", values=values) == (False, False)
    plain.refresh_from_db()
    assert (plain.status, plain.output) == (Run.Status.SUCCEEDED, {"ok": True})
    assert sql.run_finish(run_id=plain.id, token="t1", values=values) is None  # not running now

    called = a_run(workflow, status=Run.Status.RUNNING, lease_owner="t2")
    RunCallback.objects.create(run=called, url="https://example.com/done")
    a_run(workflow)  # queued, not sent to the broker
    assert sql.run_finish(run_id=called.id, token="t2", values=values) == (True, True)

    delivered = a_run(workflow, status=Run.Status.RUNNING, lease_owner="t3")
    RunCallback.objects.create(
        run=delivered, url="https://example.com/done", status=RunCallback.Status.DELIVERED
    )
    assert sql.run_finish(run_id=delivered.id, token="t3", values=values) == (False, True)


def test_run_slots_counts_the_workspaces_sent_unfinished_and_waiting_runs(
    workflow: Workflow, workspace: Workspace
) -> None:
    now = timezone.now()
    a_run(workflow, enqueued_at=now)  # queued in the broker
    a_run(workflow, enqueued_at=now, status=Run.Status.RUNNING)
    a_run(workflow)  # waits in the database for a slot
    a_run(workflow, enqueued_at=now, status=Run.Status.SUCCEEDED)
    a_run(workflow, enqueued_at=now, status=Run.Status.WAITING)  # parked
    other_workspace = Workspace.objects.create(name="Other", slug="other")
    Run.objects.create(
        workspace=other_workspace,
        workflow=Workflow.objects.create(workspace=other_workspace, name="X", definition={}),
        definition={},
        trigger=Run.Trigger.MANUAL,
        enqueued_at=now,
    )

    assert sql.run_slots(workspace_id=workspace.id) == (2, 1)
    assert sql.run_slots(workspace_id=other_workspace.id) == (1, 0)


def test_workflow_latest_version_is_the_highest_numbered_one(workflow: Workflow) -> None:
    assert sql.workflow_latest_version(workflow_id=workflow.id) is None
    for number in (2, 3, 1):
        WorkflowVersion.objects.create(
            workflow=workflow, number=number, definition={"steps": [], "n": number}
        )

    latest = sql.workflow_latest_version(workflow_id=workflow.id)

    assert latest is not None
    assert (latest.number, latest.definition) == (3, {"steps": [], "n": 3})
    assert latest == WorkflowVersion.objects.get(workflow=workflow, number=3)


def test_run_take_oldest_waiting_takes_each_waiting_run_once_oldest_first(
    workflow: Workflow, workspace: Workspace
) -> None:
    now = timezone.now()
    a_run(workflow, enqueued_at=now)  # already sent
    a_run(workflow, status=Run.Status.WAITING)  # parked, not queued
    first = a_run(workflow)
    second = a_run(workflow)
    other_workspace = Workspace.objects.create(name="Other", slug="other")
    Run.objects.create(
        workspace=other_workspace,
        workflow=Workflow.objects.create(workspace=other_workspace, name="X", definition={}),
        definition={},
        trigger=Run.Trigger.MANUAL,
    )

    taken = [sql.run_take_oldest_waiting(workspace_id=workspace.id, now=now) for _ in range(3)]

    assert taken == [first.id, second.id, None]
    assert Run.objects.get(id=first.id).enqueued_at == now


def test_runs_failed_claim_takes_each_recent_failure_once_where_the_alert_is_on(
    workflow: Workflow, workspace: Workspace
) -> None:
    now = timezone.now()
    FailureAlert.objects.create(workspace=workspace, email=True, since=now - timedelta(hours=2))
    failed = a_run(workflow, status=Run.Status.FAILED, finished_at=now - timedelta(seconds=5))
    a_run(workflow, status=Run.Status.FAILED, finished_at=now - timedelta(hours=1, seconds=1))
    a_run(workflow, status=Run.Status.CANCELED, finished_at=now)
    a_run(workflow, status=Run.Status.FAILED, finished_at=now, parent=failed)  # a child
    other = Workspace.objects.create(name="Other", slug="other")  # no alert set
    a_run(
        Workflow.objects.create(workspace=other, name="X", definition={}),
        status=Run.Status.FAILED,
        finished_at=now,
    )
    hour_ago = now - timedelta(hours=1)

    first = sql.runs_failed_claim(now=now, finished_since=hour_ago)
    again = sql.runs_failed_claim(now=now, finished_since=hour_ago)

    assert first == [(failed.id, workspace.id)]
    assert again == []
    assert Run.objects.get(id=failed.id).failure_notified_at == now


def test_runs_failed_claim_skips_failures_from_before_the_alert_was_turned_on(
    workflow: Workflow, workspace: Workspace
) -> None:
    now = timezone.now()
    FailureAlert.objects.create(workspace=workspace, url="https://example.com/h", since=now)
    a_run(workflow, status=Run.Status.FAILED, finished_at=now - timedelta(seconds=1))
    FailureAlert.objects.filter(workspace=workspace).update(url="")  # off: nothing taken either
    a_run(workflow, status=Run.Status.FAILED, finished_at=now)

    assert sql.runs_failed_claim(now=now, finished_since=now - timedelta(hours=1)) == []


def test_budget_month_settle_moves_a_hold_into_the_spend(workspace: Workspace) -> None:
    month = BudgetMonth.objects.create(
        workspace=workspace, month=dt.date(2026, 12, 1), reserved_nanousd=700, spent_nanousd=100
    )

    settled = sql.budget_month_settle(ledger_id=month.id, release_nanousd=300, spent_nanousd=250)

    assert settled == (workspace.id, 350, 400, 5_000)
    assert (
        sql.budget_month_settle(ledger_id=month.id + 1, release_nanousd=0, spent_nanousd=1) is None
    )


def test_trigger_rate_window_count_counts_within_a_window_and_restarts_in_the_next(
    workflow: Workflow,
) -> None:
    trigger = Trigger.objects.create(
        workspace=workflow.workspace, workflow=workflow, public_id="p", secret_encrypted="s"
    )
    minute = timezone.now().replace(second=0, microsecond=0)

    counts = [sql.trigger_rate_window_count(trigger_id=trigger.id, window=minute) for _ in range(3)]
    next_minute = sql.trigger_rate_window_count(
        trigger_id=trigger.id, window=minute + timedelta(minutes=1)
    )

    assert counts == [1, 2, 3]
    assert next_minute == 1
    assert sql.trigger_rate_window_count(trigger_id=trigger.id + 1, window=minute) is None


def test_update_of_a_step_run_by_its_run_and_key(workflow: Workflow) -> None:
    run = a_run(workflow)
    StepRun.objects.create(run=run, key="a", position=0, type="llm", status="running", attempts=2)

    assert (
        sql.update(
            StepRun,
            where={"run_id": run.id, "key": "a"},
            values={"status": "waiting"},
            add={"attempts": -1},
        )
        == 1
    )
    assert StepRun.objects.values_list("status", "attempts").get() == ("waiting", 1)


def test_output_write_if_leased_writes_only_while_the_run_is_held_by_the_token(
    workflow: Workflow,
) -> None:
    run = a_run(workflow, status=Run.Status.RUNNING, lease_owner="mine")
    StepRun.objects.create(run=run, key="a", position=0, type="llm", status="running")
    where = {"run_id": run.id, "key": "a", "status": "running"}

    assert (
        sql.output_write_if_leased(StepRun, where=where, run_id=run.id, token="mine", output="He")
        == 1
    )
    assert StepRun.objects.get().output == "He"
    assert (
        sql.output_write_if_leased(
            StepRun, where=where, run_id=run.id, token="theirs", output="Hello"
        )
        == 0
    )
    assert StepRun.objects.get().output == "He"


@pytest.mark.django_db(transaction=True)
def test_connection_release_gives_a_pooled_connection_back_outside_a_transaction() -> None:
    Run.objects.exists()
    pooled = bool(connection.settings_dict.get("OPTIONS", {}).get("pool"))
    with transaction.atomic():
        sql.connection_release()
        assert connection.connection is not None  # a transaction keeps its connection
    sql.connection_release()
    assert (connection.connection is None) is pooled  # without a pool, kept for the next query


def test_run_descendants_add_counts_up_to_the_cap_and_no_further(workflow: Workflow) -> None:
    root = a_run(workflow)
    assert sql.run_descendants_add(root_id=root.id, count=3, cap=5)
    assert not sql.run_descendants_add(root_id=root.id, count=3, cap=5)
    assert sql.run_descendants_add(root_id=root.id, count=2, cap=5)
    assert not sql.run_descendants_add(root_id=root.id, count=1, cap=5)
    root.refresh_from_db()
    assert root.descendants == 5
    # 0: no cap.
    assert sql.run_descendants_add(root_id=root.id, count=100, cap=0)
    root.refresh_from_db()
    assert root.descendants == 105
