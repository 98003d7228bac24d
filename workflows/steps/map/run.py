"""The `map` step's checks and execution.

Over a prompt, the items run inside the worker (the engine's runner,
workflows/runtime/items.py, handed over as `context.items`): the step does
not park, and its output is ready once every item is. Over a workflow, each
item is a child run: the step starts up to `concurrency` of them with its
park, and each child's finish wakes it to start more, until all are done.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from workflows.models import Run, StepItem
from workflows.rendering import render_value
from workflows.steps import chat
from workflows.steps.context import (
    Child,
    ChildSpec,
    ItemOutcome,
    StepContext,
    StepFailed,
    StepResult,
    Wait,
    WaitContext,
)
from workflows.steps.map.config import INDEX, ITEM, MapStep

WAITS = True

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check(step: MapStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not step.over.strip():
        problems.append(("over", "Say which list to go over, e.g. {{ extract.items }}."))
    if step.over_workflow:
        if step.prompt.strip():
            problems.append(
                ("prompt", "A map runs either a prompt or a workflow for each item, not both.")
            )
        problems += [
            (f"inputs.{name}", f"“{name}” is not an input name.")
            for name in step.inputs
            if not _NAME_RE.match(name)
        ]
        return problems
    return problems + chat.check(step, models=models)


def begin(step: MapStep, context: WaitContext) -> StepResult | Wait:
    values = _items(step, context.variables)
    if step.over_workflow:
        return _children(step, values, context, {"total": len(values)})
    return _prompts(step, values, context)


def resume(step: MapStep, state: Mapping[str, object], context: WaitContext) -> StepResult | Wait:
    values = _items(step, context.variables)
    if step.over_workflow:
        return _children(step, values, context, {**state, "total": len(values)})
    # Parked for budget by an earlier item: go on with the items left.
    return _prompts(step, values, context)


def _items(step: MapStep, variables: Mapping[str, object]) -> list[object]:
    value = render_value(step.over, variables)
    if not isinstance(value, list):
        kind = "nothing" if value is None else f"{_json_type(value)}"
        raise StepFailed(f"“over” must give a JSON array (a list); it gave {kind}.")
    limit = settings.MAP_MAX_ITEMS
    if len(value) > limit:
        raise StepFailed(
            f"“over” gave {len(value):,} items; a map runs at most {limit:,} (MAP_MAX_ITEMS)."
        )
    return value


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    return "a value that is not a list"


def _item_variables(
    variables: Mapping[str, object], index: int, value: object
) -> dict[str, object]:
    return {**variables, ITEM: value, INDEX: index}


def _failed_status(step: MapStep) -> str:
    return StepItem.Status.SKIPPED if step.on_item_error == "skip" else StepItem.Status.FAILED


def _prompts(step: MapStep, values: list[object], context: WaitContext) -> StepResult:
    if context.items is None:
        raise StepFailed("This worker cannot run a map's items.")
    variables = context.variables

    def prepare(index: int, value: object) -> chat.Call:
        return chat.prepare(step, _item_variables(variables, index, value))

    def execute(index: int, call: chat.Call, item_context: StepContext) -> StepResult:
        return chat.execute(step, call, item_context)

    done = context.items.run(
        inputs=values,
        concurrency=step.concurrency,
        stop_at_failure=step.on_item_error == "stop",
        failed_status=_failed_status(step),
        prepare=prepare,
        execute=execute,
        estimate_lost=lambda call, received: chat.estimate_lost(step, call, received),
    )
    usage = done.usage
    if done.stopped:
        finished = sum(o.status == StepItem.Status.SUCCEEDED for o in done.outcomes)
        raise StepFailed(
            f"{done.stopped} {finished} of {len(values)} items had finished; they are kept.",
            usage=usage,
            counted=True,
        )
    failed = [o for o in done.outcomes if o.status == StepItem.Status.FAILED]
    if failed and step.on_item_error == "stop":
        raise StepFailed(_item_failed(failed[0].index, failed[0].error), usage=usage, counted=True)
    return StepResult(output=[_result(step, o) for o in done.outcomes], usage=usage, counted=True)


def _item_failed(index: int, error: str) -> str:
    return f"Item {index} failed: {error}"


def _result(step: MapStep, outcome: ItemOutcome) -> object:
    if outcome.status == StepItem.Status.SUCCEEDED:
        return outcome.output
    if step.on_item_error == "collect":
        return {"error": outcome.error}
    return None


def _children(
    step: MapStep, values: list[object], context: WaitContext, state: dict[str, Any]
) -> StepResult | Wait:
    """Start the next items' child runs (at most `concurrency` in flight), or
    give the output once every item's run has finished."""
    assert step.workflow is not None
    by_item: dict[int, Child] = {
        child.item: child for child in context.children if child.item is not None
    }
    running = sum(not child.finished for child in by_item.values())
    failed = sorted(
        (child for child in by_item.values() if child.finished and not _succeeded(child)),
        key=lambda child: child.item or 0,
    )
    stopping = bool(failed) and step.on_item_error == "stop"
    if stopping and not running:
        first = failed[0]
        raise StepFailed(_item_failed(first.item or 0, _child_error(first)))
    starting = (
        []
        if stopping
        else [i for i in range(len(values)) if i not in by_item][: step.concurrency - running]
    )
    if not starting and not running:
        return StepResult(output=[_child_result(step, by_item[i]) for i in range(len(values))])
    return Wait(
        waiting_for=Run.WaitingFor.CHILDREN,
        state=dict(state),
        children=[
            ChildSpec(
                workflow_id=step.workflow,
                version=step.version,
                inputs={
                    name: render_value(template, _item_variables(context.variables, i, values[i]))
                    for name, template in step.inputs.items()
                },
                item=i,
                item_input=values[i],
            )
            for i in starting
        ],
    )


def _succeeded(child: Child) -> bool:
    return child.status == Run.Status.SUCCEEDED


def _child_error(child: Child) -> str:
    what = "was canceled" if child.status == Run.Status.CANCELED else "failed"
    detail = f": {child.error}" if child.error else "."
    return f"its run #{child.id} {what}{detail}"


def _child_result(step: MapStep, child: Child) -> object:
    if _succeeded(child):
        return child.output
    if step.on_item_error == "collect":
        return {"error": _child_error(child)}
    return None
