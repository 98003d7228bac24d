"""The `workflow` step's checks and execution: it starts a child run of the
called workflow with the park, waits for it, and outputs its output."""

from __future__ import annotations

import re
from collections.abc import Mapping

from workflows.models import Run
from workflows.rendering import render_value
from workflows.steps.context import ChildSpec, StepFailed, StepResult, Wait, WaitContext
from workflows.steps.workflow.config import WorkflowStep

WAITS = True

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check(step: WorkflowStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    if step.workflow < 1:
        return [("workflow", "Pick a workflow to run.")]
    return [
        (f"inputs.{name}", f"“{name}” is not an input name.")
        for name in step.inputs
        if not _NAME_RE.match(name)
    ]


def begin(step: WorkflowStep, context: WaitContext) -> StepResult | Wait:
    inputs = {
        name: render_value(template, context.variables) for name, template in step.inputs.items()
    }
    return Wait(
        waiting_for=Run.WaitingFor.CHILDREN,
        state={"workflow": step.workflow, "version": step.version},
        children=[ChildSpec(workflow_id=step.workflow, version=step.version, inputs=inputs)],
    )


def resume(
    step: WorkflowStep, state: Mapping[str, object], context: WaitContext
) -> StepResult | Wait:
    if not context.children:
        raise StepFailed("The called workflow's run is gone (deleted?).")
    child = context.children[-1]
    if not child.finished:
        return Wait(waiting_for=Run.WaitingFor.CHILDREN, state=dict(state))
    if child.status == Run.Status.SUCCEEDED:
        return StepResult(output=child.output)
    what = "was canceled" if child.status == Run.Status.CANCELED else "failed"
    detail = f": {child.error}" if child.error else "."
    raise StepFailed(f"The called workflow's run #{child.id} {what}{detail}")
