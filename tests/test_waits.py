"""Durable waits: a run parks (status `waiting`, no lease, no thread, no
message) and resumes at its step when what it waits for arrives: a time
(`wait`), a child run (`workflow`). The engine runs in this process; the
crash and restart cases, with a real worker, are in test_waits_integration.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import Personas
from tests.factories import published_workflow, steps_of
from tests.polling import wait_until
from workflows import services, sql
from workflows.llm.pricing import cost_nanousd
from workflows.models import Run, StepRun, Workflow
from workflows.runtime import engine, waking

SHOUT = {
    "name": "Shout",
    "inputs": [{"name": "text", "type": "text"}],
    "steps": [{"key": "loud", "type": "llm", "prompt": "Shout: {{ text }}", "max_tokens": 20}],
}


def caller(target: Workflow, name: str = "Caller", **step: object) -> dict:
    return {
        "name": name,
        "inputs": [{"name": "text", "type": "text"}],
        "steps": [
            {
                "key": "call",
                "type": "workflow",
                "workflow": target.id,
                "inputs": {"text": "{{ text }}"},
                **step,
            },
            {"key": "after", "type": "template", "template": "got: {{ call }}"},
        ],
    }


def start(workflow: Workflow, inputs: dict | None = None) -> Run:
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs or {})
    run.refresh_from_db()
    return run


# --- wait -----------------------------------------------------------------------------


def test_a_wait_parks_the_run_holding_nothing_and_beat_wakes_it_when_its_time_comes(
    engine_in_process: None, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Later",
            "steps": [
                {"key": "pause", "type": "wait", "seconds": 1},
                {"key": "done", "type": "template", "template": "woke at {{ pause }}"},
            ],
        },
    )
    before = timezone.now()
    run = start(workflow)
    assert run.status == Run.Status.WAITING
    assert run.waiting_for == Run.WaitingFor.TIME and run.status_label == "Waiting for a time"
    assert run.lease_owner == "" and run.lease_expires_at is None
    assert run.wake_at is not None and before + timedelta(seconds=1) <= run.wake_at
    pause = steps_of(run)["pause"]
    assert pause.status == StepRun.Status.WAITING and "until" in (pause.state or {})
    assert "done" not in steps_of(run)

    # Beat before the time: nothing to wake.
    assert run.id not in engine.reap()
    wait_until(lambda: run.id in engine.reap() or None, timeout=5, message="beat never woke it")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == f"woke at {pause.state['until']}"
    assert run.waited_ms >= 900
    # Waiting is not running time.
    assert run.duration_ms is not None and run.duration_ms < run.waited_ms


def test_a_wake_up_before_its_time_parks_it_again(
    engine_in_process: None, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {"name": "Tomorrow", "steps": [{"key": "pause", "type": "wait", "seconds": 86400}]},
    )
    run = start(workflow)
    # A wake-up that comes early (a clock skew, a duplicate): it looks, and parks again.
    Run.objects.filter(id=run.id).update(wake_at=timezone.now() - timedelta(seconds=1))
    assert run.id in engine.reap()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING and run.wake_at is not None
    assert run.wake_at > timezone.now() + timedelta(hours=23)
    assert steps_of(run)["pause"].status == StepRun.Status.WAITING


def test_wait_until_a_time_from_variables_and_the_bad_ones(
    engine_in_process: None, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Until",
            "inputs": [{"name": "when", "type": "text"}],
            "steps": [{"key": "pause", "type": "wait", "until": "{{ when }}"}],
        },
    )
    past = start(workflow, {"when": "2020-01-02T03:04:05Z"})
    assert past.status == Run.Status.SUCCEEDED and past.output == "2020-01-02T03:04:05Z"

    later = (timezone.now() + timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
    naive = start(workflow, {"when": later.isoformat()})  # no zone: UTC
    assert naive.status == Run.Status.WAITING
    assert naive.wake_at == later.replace(tzinfo=timezone.UTC)

    bad = start(workflow, {"when": "next tuesday <b>"})
    assert bad.status == Run.Status.FAILED
    assert "is not a time in ISO 8601" in bad.error and "next tuesday <b>" in bad.error

    far = start(workflow, {"when": (timezone.now() + timedelta(days=45)).isoformat()})
    assert far.status == Run.Status.FAILED and "30 days" in far.error


def test_a_wait_needs_seconds_or_a_time_but_not_both(personas: Personas) -> None:
    for step, message in (
        ({"key": "w", "type": "wait"}, "either a number of seconds or a time"),
        ({"key": "w", "type": "wait", "seconds": 5, "until": "x"}, "not both"),
        ({"key": "w", "type": "wait", "seconds": 31 * 86400}, "less than or equal"),
    ):
        _, issues = services.definition_check({"name": "W", "steps": [step]})
        assert any(message in issue.message for issue in issues), issues


def test_cancel_works_on_a_waiting_run(engine_in_process: None, personas: Personas) -> None:
    workflow = published_workflow(
        personas.workspace,
        {"name": "Long", "steps": [{"key": "pause", "type": "wait", "seconds": 3600}]},
    )
    run = start(workflow)
    assert services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELED
    assert steps_of(run)["pause"].status == StepRun.Status.FAILED
    Run.objects.filter(id=run.id).update(wake_at=timezone.now())
    assert run.id not in engine.reap()


# --- workflow ---------------------------------------------------------------------------


def test_a_workflow_step_runs_the_called_workflow_as_a_child_and_uses_its_output(
    engine_in_process: None, personas: Personas
) -> None:
    shout = published_workflow(personas.workspace, SHOUT)
    parent_workflow = published_workflow(personas.workspace, caller(shout))
    run = start(parent_workflow, {"text": "hello"})
    assert run.status == Run.Status.SUCCEEDED, run.error
    child = Run.objects.get(parent=run)
    assert child.trigger == Run.Trigger.WORKFLOW and child.depth == 1
    assert child.parent_step == "call" and child.inputs == {"text": "hello"}
    assert child.status == Run.Status.SUCCEEDED and child.workflow_id == shout.id
    assert run.output == f"got: {child.output}"
    call = steps_of(run)["call"]
    assert call.status == StepRun.Status.SUCCEEDED and call.output == child.output
    assert call.state is not None and call.state["children"] == [child.id]
    # Its cost rolls up into the parent's totals, and is counted once in spend.
    loud = steps_of(child)["loud"]
    assert loud.cost_nanousd == cost_nanousd(
        model=loud.model,
        prompt_tokens=loud.tokens_in,
        cached_tokens=loud.tokens_cached,
        completion_tokens=loud.tokens_out,
    )
    assert run.cost_nanousd == child.cost_nanousd == loud.cost_nanousd > 0
    assert run.tokens_in == child.tokens_in and call.cost_nanousd == 0
    assert run.waiting_for == "" and run.waited_ms >= 0


def test_json_inputs_pass_as_json_and_a_pinned_version_is_the_one_run(
    engine_in_process: None, personas: Personas
) -> None:
    echo = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "Count",
            "inputs": [{"name": "items", "type": "json"}],
            "steps": [{"key": "n", "type": "template", "template": "v1 {{ items.1 }}"}],
        },
        user=None,
    )
    services.workflow_publish(workflow=echo, user=None)
    echo.definition["steps"][0]["template"] = "v2 {{ items.0 }}"
    echo.save()
    services.workflow_publish(workflow=echo, user=None)
    parent_workflow = published_workflow(
        personas.workspace,
        {
            "name": "Pinned",
            "inputs": [{"name": "list", "type": "json"}],
            "steps": [
                {
                    "key": "call",
                    "type": "workflow",
                    "workflow": echo.id,
                    "version": 1,
                    "inputs": {"items": "{{ list }}"},
                }
            ],
        },
    )
    run = start(parent_workflow, {"list": ["a", "b"]})
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == "v1 b"
    assert Run.objects.get(parent=run).version.number == 1


def test_a_failed_child_fails_the_step_with_its_error(
    engine_in_process: None, personas: Personas
) -> None:
    failing = published_workflow(
        personas.workspace,
        {
            "name": "Fails",
            "inputs": [{"name": "text", "type": "text"}],
            "steps": [{"key": "pause", "type": "wait", "until": "{{ text }}"}],
        },
    )
    run = start(published_workflow(personas.workspace, caller(failing)), {"text": "never"})
    assert run.status == Run.Status.FAILED
    child = Run.objects.get(parent=run)
    assert child.status == Run.Status.FAILED
    assert f"run #{child.id} failed" in run.error and "ISO 8601" in run.error


def test_cancel_cascades_to_children_and_a_canceled_child_fails_its_parent(
    engine_in_process: None, personas: Personas
) -> None:
    slow = published_workflow(
        personas.workspace,
        {
            "name": "Slow",
            "inputs": [{"name": "text", "type": "text"}],
            "steps": [{"key": "pause", "type": "wait", "seconds": 3600}],
        },
    )
    parent_workflow = published_workflow(personas.workspace, caller(slow))
    run = start(parent_workflow, {"text": "x"})
    assert run.status == Run.Status.WAITING and run.waiting_for == Run.WaitingFor.CHILDREN
    assert run.status_label == "Waiting for sub-workflows"
    child = Run.objects.get(parent=run)
    assert child.status == Run.Status.WAITING
    services.run_cancel(run=run)
    child.refresh_from_db()
    assert child.status == Run.Status.CANCELED

    other = start(parent_workflow, {"text": "y"})
    other_child = Run.objects.get(parent=other)
    services.run_cancel(run=other_child)
    other.refresh_from_db()
    assert other.status == Run.Status.FAILED
    assert f"run #{other_child.id} was canceled" in other.error


def test_a_called_workflow_gone_at_run_time_fails_the_step_clearly(
    engine_in_process: None, personas: Personas
) -> None:
    shout = published_workflow(personas.workspace, SHOUT)
    parent_workflow = published_workflow(personas.workspace, caller(shout))
    services.workflow_archive(workflow=shout, user=None)
    run = start(parent_workflow, {"text": "x"})
    assert run.status == Run.Status.FAILED
    assert "not a workflow of this workspace" in run.error
    assert not Run.objects.filter(parent=run).exists()
    assert steps_of(run)["call"].status == StepRun.Status.FAILED


# --- validation -------------------------------------------------------------------------


def _issues(workflow: Workflow) -> list[str]:
    _, issues = services.definition_check(workflow.definition, workflow=workflow)
    return [issue.message for issue in issues]


def test_validation_refuses_cycles_through_versions_and_depth_over_five(
    personas: Personas,
) -> None:
    a = published_workflow(personas.workspace, SHOUT | {"name": "A"})
    b = published_workflow(personas.workspace, caller(a, "B") | {"name": "B"})
    # A's draft now calls B, which calls A's published version: a cycle.
    a.definition = caller(b, "A")
    a.save()
    assert any("cycle: A → B → A" in message for message in _issues(a))
    with pytest.raises(services.WorkflowInvalid, match="cycle"):
        services.workflow_publish(workflow=a, user=None)
    a.definition = caller(a, "A")
    a.save()
    assert "A workflow cannot run itself." in _issues(a)

    # L5 runs L4 ... runs L0: five levels, the most a run may go.
    chain = [published_workflow(personas.workspace, SHOUT | {"name": "L0"})]
    for level in range(1, 6):
        chain.append(published_workflow(personas.workspace, caller(chain[-1], f"L{level}")))
    too_deep = services.workflow_create(
        workspace=personas.workspace, definition=caller(chain[-1], "L6"), user=None
    )
    with pytest.raises(services.WorkflowInvalid, match="more than 5 levels"):
        services.workflow_publish(workflow=too_deep, user=None)
    top = services.workflow_create(
        workspace=personas.workspace, definition=caller(chain[-1], "Top"), user=None
    )
    assert any("more than 5 levels" in message for message in _issues(top))
    fine = services.workflow_create(
        workspace=personas.workspace, definition=caller(chain[4], "Fine"), user=None
    )
    assert _issues(fine) == []


def test_validation_checks_the_called_workflow_and_its_inputs(personas: Personas) -> None:
    shout = published_workflow(personas.workspace, SHOUT)
    draft_only = services.workflow_create(
        workspace=personas.workspace, definition=SHOUT | {"name": "Draft only"}, user=None
    )
    theirs = published_workflow(personas.other_workspace, SHOUT | {"name": "Theirs"})
    parent = services.workflow_create(
        workspace=personas.workspace, definition=caller(shout), user=None
    )
    for step, expected in (
        ({"workflow": theirs.id}, f"Workflow #{theirs.id} is not in this workspace."),
        ({"workflow": draft_only.id}, "has no published version yet"),
        ({"version": 7}, "“Shout” has no version 7."),
        ({"inputs": {"txt": "{{ text }}"}}, "“Shout” has no input “txt”."),
        ({"inputs": {}}, "“Shout” needs text"),
        ({"workflow": 0}, "Pick a workflow to run."),
    ):
        parent.definition = caller(shout) | {}
        parent.definition["steps"][0].update(step)
        parent.save()
        assert any(expected in message for message in _issues(parent)), (step, _issues(parent))


# --- the wake-up that comes while the run decides to park ----------------------------------


def test_a_wake_up_while_running_makes_the_park_look_again(personas: Personas) -> None:
    workflow = published_workflow(personas.workspace, SHOUT)
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"text": "x"})
    claimed = engine.claim(run.id)
    assert claimed is not None
    _, token, _ = claimed
    # A child finishes while the run is still running: the flag is set, nothing woken.
    assert not waking.wake(run.id, waiting_for=[Run.WaitingFor.CHILDREN])
    park = {"status": Run.Status.WAITING, "waiting_for": Run.WaitingFor.CHILDREN}
    assert sql.run_park(run_id=run.id, token=token, values=park, unless_woken=True) is None
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.wake_pending
    # A claim clears it (the claimer looks at everything afresh).
    Run.objects.filter(id=run.id).update(
        status=Run.Status.QUEUED, lease_owner="", lease_expires_at=None
    )
    claimed = engine.claim(run.id)
    assert claimed is not None and not claimed[0].wake_pending
    assert sql.run_park(run_id=run.id, token=claimed[1], values=park, unless_woken=True) is not None


# --- what the pages and the API say ------------------------------------------------------


def test_the_run_page_and_the_api_say_what_a_run_waits_for_and_link_parent_and_child(
    engine_in_process: None, personas: Personas
) -> None:
    from django.urls import reverse

    from tests.factories import api_token, client_for

    hostile = '<img src=x onerror=alert(1)> hx-post="/x"'
    slow = published_workflow(
        personas.workspace,
        {
            "name": hostile,
            "inputs": [{"name": "text", "type": "text"}],
            "steps": [{"key": "pause", "type": "wait", "seconds": 3600}],
        },
    )
    run = start(published_workflow(personas.workspace, caller(slow)), {"text": hostile})
    child = Run.objects.get(parent=run)
    slug = personas.workspace.slug
    page = client_for(personas.vera).get(reverse("run_detail", args=[slug, run.id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="run-waiting-children"' in html and "Waiting for sub-workflows" in html
    assert f"Waiting for run #{child.id}" in html
    assert reverse("run_detail", args=[slug, child.id]) in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html

    child_page = client_for(personas.vera).get(reverse("run_detail", args=[slug, child.id]))
    child_html = child_page.content.decode()
    assert 'id="run-waiting-time"' in child_html and 'id="run-parent"' in child_html
    assert "Sub-workflow" in child_html

    token = api_token(personas.workspace, personas.alice)
    answer = client_for(personas.alice).get(
        f"/api/v1/runs/{run.id}", headers={"Authorization": f"Bearer {token}"}
    )
    body = answer.json()
    assert body["status"] == "waiting" and body["waiting_for"] == "children"
    assert body["children"] == [
        {"id": child.id, "workflow_id": slow.id, "step": "call", "item": None, "status": "waiting"}
    ]
    child_body = (
        client_for(personas.alice)
        .get(f"/api/v1/runs/{child.id}", headers={"Authorization": f"Bearer {token}"})
        .json()
    )
    assert child_body["parent_id"] == run.id and child_body["waiting_for"] == "time"
    assert child_body["wake_at"] is not None and child_body["trigger"] == "workflow"

    # Another workspace sees neither.
    assert (
        client_for(personas.charlie).get(reverse("run_detail", args=[slug, child.id])).status_code
        == 404
    )
    listed = client_for(personas.vera).get(reverse("run_list", args=[slug]) + "?status=waiting")
    assert f"#{run.id}" in listed.content.decode() and f"#{child.id}" in listed.content.decode()


def test_a_later_step_reads_the_fields_of_what_the_called_workflow_outputs(
    engine_in_process: None, personas: Personas
) -> None:
    schema = {
        "type": "object",
        "properties": {"verdict": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["verdict", "score"],
        "additionalProperties": False,
    }
    judge = published_workflow(
        personas.workspace,
        {
            "name": "Judge",
            "inputs": [{"name": "text", "type": "text"}],
            "steps": [
                {
                    "key": "rate",
                    "type": "llm",
                    "prompt": 'Rate {{ text }} [[fake:reply={"verdict": "fine", "score": 7}]]',
                    "max_tokens": 50,
                    "response_format": {"type": "json_schema", "name": "rating", "schema": schema},
                }
            ],
        },
    )
    definition = caller(judge)
    parent = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    definition["steps"][1]["template"] = "{{ call.verdict }} ({{ call.score }})"
    assert [i.message for i in services.definition_check(definition, workflow=parent)[1]] == []
    definition["steps"][1]["template"] = "{{ call.verdcit }}"
    messages = [i.message for i in services.definition_check(definition, workflow=parent)[1]]
    assert any('has no field "verdcit"' in m and 'Did you mean "verdict"' in m for m in messages)
    definition["steps"][1]["template"] = "{{ call.verdict }} ({{ call.score }})"
    parent.definition = definition
    parent.save()
    services.workflow_publish(workflow=parent, user=None)
    run = start(parent, {"text": "a poem"})
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == "fine (7)"
