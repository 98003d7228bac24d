"""The engine with real parts: the database and the fake OpenAI server, and a real
Celery worker process where a crash, a duplicate or lost message or a cancel in
flight is involved; the other tests run the engine in this process."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.conftest import Personas
from tests.factories import chain, run_started, steps_of
from tests.polling import wait_for_run, wait_until
from tests.servers import WorkerProcess
from workflows import broker, services
from workflows.llm.pricing import cost_nanousd
from workflows.models import Run, StepRun
from workflows.runtime import engine

TRIAGE = {
    "name": "Support triage",
    "description": "Classify a ticket and draft a reply",
    "inputs": [
        {"name": "ticket", "type": "text", "required": True},
        {"name": "tone", "type": "text", "required": False, "default": "friendly"},
    ],
    "steps": [
        {
            "key": "triage",
            "type": "llm",
            "system": "You triage support tickets.",
            "prompt": "Classify this ticket:\n{{ ticket }}",
            "temperature": 0,
            "max_tokens": 200,
            "response_format": {
                "type": "json_schema",
                "name": "triage",
                "schema": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string", "enum": ["billing", "bug", "other"]}
                    },
                    "required": ["category"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "key": "route",
            "type": "condition",
            "cases": [
                {
                    "left": "{{ triage.category }}",
                    "op": "equals",
                    "right": "billing",
                    "goto": "billing_reply",
                }
            ],
            "else": "reply",
        },
        {
            "key": "billing_reply",
            "type": "llm",
            "prompt": "Write a {{ tone }} reply about billing to:\n{{ ticket }}",
            "next": "end",
        },
        {"key": "reply", "type": "llm", "prompt": "Write a {{ tone }} reply to:\n{{ ticket }}"},
    ],
    "output": "{{ billing_reply }}{{ reply }}",
}


def test_a_three_step_chain_sends_each_output_to_the_next_step(
    engine_in_process: None, personas: Personas
) -> None:
    definition = chain(
        "Chain",
        [
            "Give three facts about {{ topic }}.",
            "Summarise these facts:\n{{ s1 }}",
            "Write a title for:\n{{ s2 }}",
        ],
    )
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "otters"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["s1"].output in steps["s2"].messages[-1]["content"]
    assert steps["s2"].output in steps["s3"].messages[-1]["content"]
    assert run.output == steps["s3"].output
    assert all(s.status == StepRun.Status.SUCCEEDED and s.attempts == 1 for s in steps.values())


def test_run_totals_are_the_sum_of_the_steps_priced_to_the_nano_dollar(
    engine_in_process: None, personas: Personas
) -> None:
    definition = chain("Priced", ["Describe {{ topic }}.", "Shorten:\n{{ s1 }}"])
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "tides"}).id)
    steps = list(run.steps.all())
    for step in steps:
        assert step.tokens_in > 0 and step.tokens_out > 0
        assert step.cost_nanousd == cost_nanousd(
            model="gpt-4.1-mini",
            prompt_tokens=step.tokens_in,
            cached_tokens=step.tokens_cached,
            completion_tokens=step.tokens_out,
        )
    assert run.cost_nanousd == sum(s.cost_nanousd for s in steps)
    assert run.tokens_in == sum(s.tokens_in for s in steps)
    assert run.tokens_out == sum(s.tokens_out for s in steps)


def test_a_json_schema_step_feeds_a_condition(engine_in_process: None, personas: Personas) -> None:
    ticket = "I was charged twice this month. [[fake:choose=billing]]"
    run = wait_for_run(run_started(personas.workspace, TRIAGE, {"ticket": ticket}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["triage"].output == {"category": "billing"}
    assert steps["route"].output["goto"] == "billing_reply"
    assert steps["billing_reply"].status == StepRun.Status.SUCCEEDED
    assert steps["reply"].status == StepRun.Status.SKIPPED
    assert run.output == steps["billing_reply"].output
    assert "friendly" in steps["billing_reply"].messages[-1]["content"]


def test_the_other_branch_is_taken_when_the_case_does_not_match(
    engine_in_process: None, personas: Personas
) -> None:
    ticket = "The app crashes on start. [[fake:choose=bug]]"
    run = wait_for_run(
        run_started(personas.workspace, TRIAGE, {"ticket": ticket, "tone": "formal"}).id
    )
    steps = steps_of(run)
    assert steps["triage"].output == {"category": "bug"}
    assert steps["billing_reply"].status == StepRun.Status.SKIPPED
    assert run.output == steps["reply"].output
    assert "formal" in steps["reply"].messages[-1]["content"]


def test_the_classify_and_route_starter_routes_by_what_the_ticket_says_on_the_simulated_model(
    engine_in_process: None, personas: Personas
) -> None:
    from workflows.builder.starters import starter_for

    starter = starter_for("classify-route")
    assert starter is not None
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=starter.fresh_definition(), user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    tickets = {
        "billing": "I was charged twice for my subscription this month.",
        "bug": "The app crashes every time I open a report.",
    }
    runs = {
        category: services.run_start(
            workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"ticket": ticket}
        )
        for category, ticket in tickets.items()
    }
    billing, bug = (wait_for_run(runs[c].id) for c in ("billing", "bug"))
    assert billing.status == bug.status == Run.Status.SUCCEEDED, (billing.error, bug.error)
    assert steps_of(billing)["triage"].output["category"] == "billing"
    assert steps_of(billing)["billing_reply"].status == StepRun.Status.SUCCEEDED
    assert steps_of(billing)["reply"].status == StepRun.Status.SKIPPED
    assert steps_of(bug)["triage"].output["category"] == "bug"
    assert steps_of(bug)["billing_reply"].status == StepRun.Status.SKIPPED
    assert steps_of(bug)["reply"].status == StepRun.Status.SUCCEEDED


def test_a_rate_limited_call_is_retried_and_billed_once(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Retry", ["Tell me about {{ topic }} [[fake:429 times=2 retry_after=0]]"])
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "herons"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    step = run.steps.get()
    assert step.attempts == 3
    assert fake_calls("herons") == 3
    assert step.cost_nanousd == cost_nanousd(
        model="gpt-4.1-mini",
        prompt_tokens=step.tokens_in,
        cached_tokens=step.tokens_cached,
        completion_tokens=step.tokens_out,
    )
    assert run.cost_nanousd == step.cost_nanousd


def test_a_refused_request_fails_at_once_with_the_apis_message(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Quota", ["About {{ topic }} [[fake:insufficient_quota]]", "Never {{ s1 }}"])
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "quota"}).id)
    assert run.status == Run.Status.FAILED
    assert "s1" in run.error and "quota" in run.error.lower()
    assert fake_calls("quota") == 1
    assert not run.steps.filter(key="s2").exists()
    assert run.cost_nanousd == 0


def test_the_context_pre_flight_refuses_an_oversized_prompt_without_a_call(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Huge", ["Summarise: {{ topic }}"])
    huge = "lorem ipsum dolor sit amet " * 210_000  # about 1,050,000 tokens
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": huge}).id)
    assert run.status == Run.Status.FAILED
    assert "context window" in run.error and "Nothing was sent" in run.error
    assert fake_calls() == 0
    assert run.cost_nanousd == 0


def test_missing_required_inputs_are_refused_before_a_run_exists(personas: Personas) -> None:
    workflow = services.workflow_create(workspace=personas.workspace, definition=TRIAGE, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    with pytest.raises(services.InputError) as refused:
        services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={})
    assert "ticket" in str(refused.value)
    assert Run.objects.count() == 0


@pytest.mark.integration
def test_a_duplicate_task_is_harmless(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    from workflows.tasks import run_execute

    definition = chain("Dup", ["Once about {{ topic }} [[fake:latency=500]]"])
    run = run_started(personas.workspace, definition, {"topic": "duplicates"})
    for _ in range(3):
        run_execute.delay(run.id)
    run = wait_for_run(run.id)
    assert run.status == Run.Status.SUCCEEDED
    assert fake_calls("duplicates") == 1


@pytest.mark.integration
def test_a_run_resumes_after_the_worker_is_killed_mid_run(
    worker: WorkerProcess, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_LEASE_SECONDS = 3
    prompts = [f"Step {i} about {{{{ topic }}}} [[fake:latency=700]]" for i in range(1, 6)]
    run = run_started(personas.workspace, chain("Crash", prompts), {"topic": "crashes"})
    deadline = time.monotonic() + 30
    while not StepRun.objects.filter(run=run, key="s3", status=StepRun.Status.RUNNING).exists():
        assert time.monotonic() < deadline, "step 3 never started"
        time.sleep(0.05)
    worker.kill()
    killed_at = time.monotonic()
    worker.start()
    # The beat's job, done here on a short period so the test stays quick.
    while not Run.objects.get(id=run.id).is_finished:
        engine.reap()
        assert time.monotonic() - killed_at < 60, "the run was not recovered within 60 s"
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert fake_calls("Step 1 about") == 1
    assert fake_calls("Step 2 about") == 1
    assert run.steps.filter(status=StepRun.Status.SUCCEEDED).count() == 5


@pytest.mark.integration
def test_the_reaper_recovers_a_run_whose_broker_message_was_lost(
    worker: WorkerProcess, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_QUEUED_GRACE_SECONDS = 5
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=chain("Lost", ["Lost {{ topic }}"]), user=None
    )
    version = services.workflow_publish(workflow=workflow, user=None)
    # A run whose message never reached the broker: created without run_start's enqueue.
    run = Run.objects.create(
        workspace=personas.workspace,
        workflow=workflow,
        version=version,
        definition=version.definition,
        trigger=Run.Trigger.MANUAL,
        inputs={"topic": "letters"},
        enqueued_at=timezone.now() - timedelta(seconds=10),
    )
    # The worker executes what it is sent (this run, sent later, finishes), not the lost one.
    sent = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"topic": "parcels"}
    )
    assert wait_for_run(sent.id).status == Run.Status.SUCCEEDED
    assert Run.objects.get(id=run.id).status == Run.Status.QUEUED
    assert engine.reap() == [run.id]
    assert engine.reap() == []  # enqueued once, not once per reaper tick
    run = wait_for_run(run.id)
    assert run.status == Run.Status.SUCCEEDED


@pytest.mark.integration
def test_a_run_the_reaper_re_sends_is_executed_ahead_of_a_backlog_of_new_runs(
    worker: WorkerProcess, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    """48 new runs of 2 s queue for the worker's 8 threads (6 waves, 12 s); a run
    the reaper re-sends meanwhile goes to the recovery queue, which the worker
    takes from in turn with the main one: it finishes while most of the
    backlog has not started, instead of after all of it."""
    settings.RUN_QUEUED_GRACE_SECONDS = 30
    definition = chain("Backlog", ["Slowly {{ topic }} [[fake:latency=2000]]"])
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    version = services.workflow_publish(workflow=workflow, user=None)

    def queued_run(topic: str, enqueued_at: datetime) -> Run:
        return Run.objects.create(
            workspace=personas.workspace,
            workflow=workflow,
            version=version,
            definition=version.definition,
            trigger=Run.Trigger.MANUAL,
            inputs={"topic": topic},
            enqueued_at=enqueued_at,
        )

    # Sent straight to the broker, past fair sharing's limit per workspace, as
    # the runs of many workspaces would be.
    backlog = [queued_run(f"backlog {i}", timezone.now()).id for i in range(48)]
    for run_id in backlog:
        broker.run_send(run_id)
    # Its message was lost a minute ago: the reaper sends it again.
    lost = queued_run("lost", timezone.now() - timedelta(seconds=60))
    wait_until(
        lambda: Run.objects.filter(id__in=backlog, status=Run.Status.RUNNING).count() == 8,
        30,
        "the worker's eight threads did not all start a backlog run",
    )
    assert engine.reap() == [lost.id]
    assert wait_for_run(lost.id).status == Run.Status.SUCCEEDED
    not_started = Run.objects.filter(id__in=backlog, status=Run.Status.QUEUED).count()
    assert not_started >= 12, f"only {not_started} of 48 backlog runs had not started"


@pytest.mark.integration
def test_a_canceled_run_stops_after_the_step_in_flight_and_records_its_cost(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    prompts = ["First on {{ topic }} [[fake:latency=1500]]", "Second on {{ s1 }}"]
    run = run_started(personas.workspace, chain("Cancel", prompts), {"topic": "cancels"})
    deadline = time.monotonic() + 20
    while not StepRun.objects.filter(run=run, key="s1", status=StepRun.Status.RUNNING).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    logged = len(worker.log)
    assert services.run_cancel(run=run)
    # The worker records the step in flight, then stops at the next step.
    worker.wait_for_log(f"Run {run.id}: lease lost or run canceled; stopping", since=logged)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELED
    s1 = run.steps.get(key="s1")
    assert s1.status == StepRun.Status.SUCCEEDED and s1.cost_nanousd > 0
    assert run.cost_nanousd == s1.cost_nanousd
    assert not run.steps.filter(key="s2").exists()
    assert fake_calls("Second on") == 0


def test_resume_reuses_finished_steps_without_paying_again(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    # The worker gives up after LLM_MAX_ATTEMPTS (5) calls; the 6th would succeed.
    prompts = ["Draft on {{ topic }}", "Fail on {{ s1 }} [[fake:500 times=5]]"]
    run = wait_for_run(
        run_started(personas.workspace, chain("Resume", prompts), {"topic": "resumes"}).id
    )
    assert run.status == Run.Status.FAILED
    assert "after 5 attempts" in run.error
    resumed = wait_for_run(services.run_resume(run=run, user=None).id)
    assert resumed.status == Run.Status.SUCCEEDED, resumed.error
    s1 = resumed.steps.get(key="s1")
    assert s1.reused and s1.cost_nanousd == 0
    # s2's prompt quotes s1's answer, which echoes "Draft on": count s1's own calls.
    assert fake_calls("Fail on") == 6
    assert fake_calls("Draft on") - fake_calls("Fail on") == 1
    assert resumed.cost_nanousd == resumed.steps.get(key="s2").cost_nanousd
