"""Run retention: the nightly prune blanks old runs' details and keeps every figure that the
usage page, the budget and the audit log read; the owner's setting, the operator's cap, and
what the run page and the API say about removed details."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from accounts.models import AuditEntry, BudgetMonth, Membership, Role, Workspace
from tests.conftest import Personas
from tests.factories import api_token, client_for
from workflows import retention, services, tasks
from workflows.billing.budget import month_of
from workflows.billing.usage import daily_usage, month_budget, usage_by_member, usage_by_workflow
from workflows.models import Run, StepItem, StepRun, Workflow

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror=alert(1)> hx-post="/w/x/settings/delete/" "quoted" \\ \u2028'


def workflow(workspace: Workspace, name: str) -> Workflow:
    definition = {"name": name, "steps": [{"key": "s", "type": "llm", "prompt": "Hi"}]}
    return services.workflow_create(workspace=workspace, definition=definition, user=None)


def days_ago(n: float) -> datetime:
    return timezone.now() - timedelta(days=n)


def paid_run(
    flow: Workflow,
    *,
    finished: datetime | None,
    status: str = "succeeded",
    user=None,  # type: ignore[no-untyped-def]
    trigger: str = "manual",
    cost: int = 1_000_000,
    parent: Run | None = None,
) -> Run:
    """A run with two paid steps and a map item, every detail filled with hostile text."""
    started = (finished or timezone.now()) - timedelta(seconds=5)
    run = Run.objects.create(
        workspace=flow.workspace,
        workflow=flow,
        definition=flow.definition,
        trigger=trigger,
        status=status,
        created_by=user,
        inputs={"topic": HOSTILE},
        payload={"body": HOSTILE},
        output={"answer": HOSTILE},
        cost_nanousd=2 * cost,
        tokens_in=200,
        tokens_out=100,
        created_at=started,
        started_at=started,
        finished_at=finished,
        parent=parent,
        error="",
    )
    for n in range(2):
        StepRun.objects.create(
            run=run,
            key=f"s{n}",
            position=n,
            type="llm",
            status="succeeded",
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": HOSTILE}],
            output=HOSTILE,
            state={"comment": HOSTILE},
            tokens_in=100,
            tokens_out=50,
            cost_nanousd=cost,
            latency_ms=1234,
            attempts=1,
            started_at=started,
            finished_at=finished or started,
        )
    StepItem.objects.create(
        run=run,
        step_key="s1",
        index=0,
        status="succeeded",
        input=HOSTILE,
        output=HOSTILE,
        messages=[{"role": "user", "content": HOSTILE}],
        cost_nanousd=0,
    )
    return run


def usage_figures(workspace: Workspace) -> object:
    """Everything the usage page shows, over a window wide enough for every run here."""
    return (
        daily_usage(workspace, days=120),
        usage_by_workflow(workspace, days=120),
        usage_by_member(workspace, days=120),
        month_budget(workspace),
        list(BudgetMonth.objects.values_list("workspace_id", "month", "spent_nanousd")),
    )


def figures_of(run: Run) -> tuple:
    """What a pruned run keeps: its row's and its steps' numbers, times and status."""
    run.refresh_from_db()
    steps = [
        (s.key, s.status, s.model, s.tokens_in, s.tokens_out, s.cost_nanousd, s.latency_ms)
        + (s.attempts, s.started_at, s.finished_at)
        for s in run.steps.order_by("position")
    ]
    return (
        run.status,
        run.cost_nanousd,
        run.tokens_in,
        run.tokens_out,
        run.created_at,
        run.finished_at,
        run.created_by_id,
        steps,
    )


@pytest.fixture
def history(personas: Personas) -> dict[str, Run]:
    triage = workflow(personas.workspace, "Triage")
    digest = workflow(personas.workspace, "Digest")
    BudgetMonth.objects.create(workspace=personas.workspace, month=month_of(), spent_nanousd=9)
    old_parent = paid_run(triage, finished=days_ago(40), user=personas.bob)
    runs = {
        "old": paid_run(triage, finished=days_ago(45), user=personas.alice),
        "old_webhook": paid_run(digest, finished=days_ago(31), trigger="webhook", cost=7),
        "old_failed": paid_run(digest, finished=days_ago(60), status="failed"),
        "old_child": paid_run(digest, finished=days_ago(40), parent=old_parent),
        "old_parent": old_parent,
        "recent": paid_run(triage, finished=days_ago(29), user=personas.bob),
        "running": paid_run(triage, finished=None, status="running"),
        "queued": paid_run(triage, finished=None, status="queued"),
        "waiting": paid_run(triage, finished=None, status="waiting"),
    }
    # A finished child of a run that still waits for it: its output is read when the parent
    # wakes, so it keeps its details however old it is.
    waiting_parent = runs["waiting"]
    runs["child_of_waiting"] = paid_run(digest, finished=days_ago(50), parent=waiting_parent)
    runs["theirs"] = paid_run(workflow(personas.other_workspace, "Theirs"), finished=days_ago(90))
    return runs


def assert_blanked(run: Run) -> None:
    run.refresh_from_db()
    assert run.details_pruned_at is not None
    assert (run.inputs, run.payload, run.output) == ({}, None, None)
    for step in run.steps.all():
        assert (step.messages, step.output, step.state) == (None, None, None)
    for item in run.items.all():
        assert (item.input, item.output, item.messages) == (None, None, None)


def assert_kept(run: Run) -> None:
    run.refresh_from_db()
    assert run.details_pruned_at is None
    assert run.inputs == {"topic": HOSTILE}
    assert run.output == {"answer": HOSTILE}
    assert all(step.output == HOSTILE for step in run.steps.all())
    assert all(item.output == HOSTILE for item in run.items.all())


def test_the_prune_keeps_the_usage_figures_identical(
    personas: Personas, history: dict[str, Run]
) -> None:
    before = usage_figures(personas.workspace)
    kept = {name: figures_of(run) for name, run in history.items()}
    audit_before = AuditEntry.objects.count()

    assert retention.runs_prune() == 6  # the old ones of both workspaces

    assert usage_figures(personas.workspace) == before
    assert {name: figures_of(run) for name, run in history.items()} == kept
    assert AuditEntry.objects.count() == audit_before
    # The figures are not trivially equal: the old runs are in them.
    by_workflow = {row.label: row.cost_nanousd for row in before[1]}  # type: ignore[index]
    assert by_workflow["Triage"] == 2_000_000 * 6
    assert by_workflow["Digest"] == 2_000_000 * 3 + 14


def test_the_prune_blanks_the_details_of_old_finished_runs(history: dict[str, Run]) -> None:
    retention.runs_prune()
    for name in ("old", "old_webhook", "old_failed", "old_child", "old_parent", "theirs"):
        assert_blanked(history[name])


def test_the_prune_leaves_unfinished_and_recent_runs_alone(history: dict[str, Run]) -> None:
    retention.runs_prune()
    for name in ("recent", "running", "queued", "waiting", "child_of_waiting"):
        assert_kept(history[name])


def test_a_second_prune_finds_nothing_to_do(history: dict[str, Run]) -> None:
    assert retention.runs_prune() == 6
    first = Run.objects.get(id=history["old"].id).details_pruned_at
    assert retention.runs_prune() == 0
    assert Run.objects.get(id=history["old"].id).details_pruned_at == first


def test_the_beat_task_prunes(history: dict[str, Run]) -> None:
    assert settings.CELERY_BEAT_SCHEDULE["runs-prune"]["task"] == "workflows.runs_prune"
    tasks.runs_prune()
    assert_blanked(history["old"])
    assert_kept(history["recent"])


def test_a_longer_setting_keeps_them_longer(personas: Personas, history: dict[str, Run]) -> None:
    personas.workspace.run_retention_days = 50
    personas.workspace.save(update_fields=["run_retention_days"])
    retention.runs_prune()
    assert_blanked(history["old_failed"])  # 60 days
    assert_blanked(history["theirs"])  # another workspace: its own 30 days
    for name in ("old", "old_webhook", "old_parent", "recent"):
        assert_kept(history[name])


@override_settings(RUN_RETENTION_MAX_DAYS=10)
def test_the_operator_cap_shortens_the_owners_setting(
    personas: Personas, history: dict[str, Run]
) -> None:
    personas.workspace.run_retention_days = 365
    personas.workspace.save(update_fields=["run_retention_days"])
    assert personas.workspace.run_retention_days_effective == 10
    recent = paid_run(history["old"].workflow, finished=days_ago(11))
    fresh = paid_run(history["old"].workflow, finished=days_ago(9))
    retention.runs_prune()
    assert_blanked(history["recent"])  # 29 days: over the cap
    assert_blanked(recent)
    assert_kept(fresh)


@override_settings(RUN_RETENTION_MAX_DAYS=0)
def test_no_cap_lets_the_owner_keep_them_a_year(
    personas: Personas, history: dict[str, Run]
) -> None:
    personas.workspace.run_retention_days = 365
    personas.workspace.save(update_fields=["run_retention_days"])
    assert personas.workspace.run_retention_days_effective == 365
    retention.runs_prune()
    assert_kept(history["old_failed"])


# The setting -----------------------------------------------------------------------------


def test_the_owner_sets_it_and_the_audit_log_says_so(personas: Personas) -> None:
    response = client_for(personas.alice).post(
        f"/w/{personas.workspace.slug}/settings/retention/", {"run_retention_days": "7"}
    )
    assert response.status_code == 302
    personas.workspace.refresh_from_db()
    assert personas.workspace.run_retention_days == 7
    entry = AuditEntry.objects.get(action="retention.change")
    assert (entry.actor, entry.before, entry.after) == (
        personas.alice,
        {"run_details_kept": "30 days"},
        {"run_details_kept": "7 days"},
    )
    page = client_for(personas.alice).get(f"/w/{personas.workspace.slug}/settings/")
    assert "Run details are kept for 7 days" in page.content.decode()


def test_an_admin_cannot_set_it(personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    response = client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/settings/retention/", {"run_retention_days": "7"}
    )
    assert response.status_code == 403
    personas.workspace.refresh_from_db()
    assert personas.workspace.run_retention_days == 30


@pytest.mark.parametrize("value", ["0", "-3", "3651", "ten", ""])
def test_it_refuses_a_value_out_of_range(personas: Personas, value: str) -> None:
    response = client_for(personas.alice).post(
        f"/w/{personas.workspace.slug}/settings/retention/", {"run_retention_days": value}
    )
    assert response.status_code == 422
    personas.workspace.refresh_from_db()
    assert personas.workspace.run_retention_days == 30
    assert not AuditEntry.objects.filter(action="retention.change").exists()


@override_settings(RUN_RETENTION_MAX_DAYS=14)
def test_the_settings_page_says_when_the_server_caps_it(personas: Personas) -> None:
    page = client_for(personas.alice).get(f"/w/{personas.workspace.slug}/settings/").content
    text = page.decode()
    assert "Run details are kept for 14 days: the server's maximum" in text
    assert "The server keeps them at most 14 days." in text


def test_the_runs_page_says_how_long_runs_are_kept(personas: Personas) -> None:
    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/runs/")
    assert "Run details are kept for 30 days" in page.content.decode()


# What pages and the API say about a pruned run --------------------------------------------


def test_the_run_page_says_the_details_were_removed(
    personas: Personas, history: dict[str, Run]
) -> None:
    retention.runs_prune()
    run = history["old"]
    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/runs/{run.id}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Details removed after 45 days" in text
    assert "This workflow takes no inputs" not in text
    assert "Run again with these inputs" not in text
    assert "$0.002" in text  # its cost is still shown
    listed = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/runs/").content
    assert listed.decode().count(">details removed</span>") == 5  # the old runs of this workspace


def test_a_pruned_run_cannot_be_run_again(personas: Personas, history: dict[str, Run]) -> None:
    retention.runs_prune()
    before = Run.objects.count()
    response = client_for(personas.alice).post(
        f"/w/{personas.workspace.slug}/runs/{history['old'].id}/rerun/"
    )
    assert response.status_code == 302
    assert Run.objects.count() == before
    history["old_failed"].refresh_from_db()
    assert not services.run_resumable(history["old_failed"])


def test_the_api_says_the_details_were_removed(personas: Personas, history: dict[str, Run]) -> None:
    retention.runs_prune()
    token = api_token(personas.workspace, personas.alice)
    client = client_for(personas.alice)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    pruned = client.get(f"/api/v1/runs/{history['old'].id}", **auth).json()
    assert pruned["details_removed"].startswith("Details removed after 45 days (")
    assert (pruned["inputs"], pruned["output"]) == (None, None)
    assert [step["output"] for step in pruned["steps"]] == [None, None]
    assert pruned["cost_nanousd"] == 2_000_000
    kept = client.get(f"/api/v1/runs/{history['recent'].id}", **auth).json()
    assert kept["details_removed"] is None
    assert kept["inputs"] == {"topic": HOSTILE}


def test_hostile_details_are_escaped_on_the_run_page(
    personas: Personas, history: dict[str, Run]
) -> None:
    page = client_for(personas.vera).get(
        f"/w/{personas.workspace.slug}/runs/{history['recent'].id}/"
    )
    text = page.content.decode()
    assert "<img src=x onerror" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert 'hx-post="/w/x/settings/delete/"' not in text


def test_a_run_finished_the_day_retention_starts_is_kept(personas: Personas) -> None:
    flow = workflow(personas.workspace, "Edge")
    edge = paid_run(flow, finished=datetime.now(UTC) - timedelta(days=30) + timedelta(minutes=5))
    retention.runs_prune()
    assert_kept(edge)
    assert json.dumps(Run.objects.get(id=edge.id).inputs)
