"""RUN_MAX_DESCENDANTS: the child runs started below one top-level run, at
every depth together, counted on the top-level run by one conditional UPDATE;
a step that would start more fails saying so, and starts none of them. The
engine runs in this process (nested workflow and map steps for real)."""

from __future__ import annotations

from tests.conftest import Personas
from tests.factories import published_workflow, steps_of
from workflows import services
from workflows.models import Run, StepRun, Workflow

SHOUT = {
    "name": "Shout",
    "inputs": [{"name": "text", "type": "text"}],
    "steps": [{"key": "loud", "type": "llm", "prompt": "Shout: {{ text }}", "max_tokens": 20}],
}


def mapper(name: str, target: Workflow, **step: object) -> dict:
    """A workflow mapping its `things` over `target`, one child run per item."""
    return {
        "name": name,
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ things }}",
                "workflow": target.id,
                "inputs": {"text": "{{ item }}"},
                "max_tokens": 20,
                **step,
            }
        ],
    }


def nested(personas: Personas) -> Workflow:
    """Outer maps 3 items over Inner, which maps its 3 items over Shout:
    3 + 3 × 3 = 12 runs below each run of Outer."""
    shout = published_workflow(personas.workspace, SHOUT)
    inner = published_workflow(personas.workspace, mapper("Inner", shout))
    return published_workflow(
        personas.workspace,
        {
            **mapper("Outer", inner),
            "steps": [
                {
                    "key": "each",
                    "type": "map",
                    "over": "{{ things }}",
                    "workflow": inner.id,
                    "inputs": {"things": '["x", "y", "z"]'},
                    "max_tokens": 20,
                }
            ],
        },
    )


def start(workflow: Workflow) -> Run:
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"things": ["a", "b", "c"]}
    )
    run.refresh_from_db()
    return run


def test_every_run_below_a_top_level_run_is_counted_on_it(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_MAX_DESCENDANTS = 12
    run = start(nested(personas))
    assert run.status == Run.Status.SUCCEEDED, run.error
    below = Run.objects.filter(root=run)
    assert below.count() == run.descendants == 12
    assert sorted(below.values_list("depth", flat=True)) == [1] * 3 + [2] * 9
    assert not Run.objects.filter(root__isnull=True, depth__gt=0).exists()
    # Only top-level runs count: the children's own counters stay at zero.
    assert set(below.values_list("descendants", flat=True)) == {0}


def test_a_step_that_would_go_past_the_cap_fails_saying_how_to_raise_it(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_MAX_DESCENDANTS = 7
    run = start(nested(personas))
    assert run.status == Run.Status.FAILED
    below = Run.objects.filter(root=run)
    # Nothing was started past the cap, and the counter is what was started.
    assert below.count() == run.descendants <= 7
    failed = [
        step
        for step in StepRun.objects.filter(run__in=[run, *below])
        if "RUN_MAX_DESCENDANTS" in step.error
    ]
    assert failed, run.error
    assert "past 7 runs started below it" in failed[0].error
    assert f"top-level run #{run.id}" in failed[0].error
    # Not retried: the same step would be refused again.
    assert failed[0].attempts == 1
    # A run started afterwards has a count of its own.
    settings.RUN_MAX_DESCENDANTS = 12
    again = start(Workflow.objects.get(name="Outer"))
    assert again.status == Run.Status.SUCCEEDED, again.error
    assert again.descendants == 12


def test_a_workflow_step_chain_counts_each_level_on_the_top_level_run(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    shout = published_workflow(personas.workspace, SHOUT)
    middle = published_workflow(personas.workspace, caller(shout, "Middle", retries=2))
    top = published_workflow(personas.workspace, caller(middle, "Top"))
    settings.RUN_MAX_DESCENDANTS = 1
    run = services.run_start(workflow=top, trigger=Run.Trigger.MANUAL, inputs={"text": "hi"})
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    child = Run.objects.get(parent=run)
    assert child.root_id == run.id and run.descendants == 1
    assert not Run.objects.filter(parent=child).exists()
    call = steps_of(child)["call"]
    assert "RUN_MAX_DESCENDANTS" in call.error
    # Not retried, whatever the step's retries: it would be refused again.
    assert call.status == StepRun.Status.FAILED and call.attempts == 1
    settings.RUN_MAX_DESCENDANTS = 0  # no cap
    run = services.run_start(workflow=top, trigger=Run.Trigger.MANUAL, inputs={"text": "hi"})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.descendants == 2


def caller(target: Workflow, name: str, **step: object) -> dict:
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
            }
        ],
    }
