"""The `workflow` step's config: run a published workflow of the same workspace."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workflows.steps.base import StepBase

TYPE = "workflow"
DEFAULTS: dict[str, Any] = {}


class WorkflowStep(StepBase):
    type: Literal["workflow"] = "workflow"
    # The called workflow's id; it must be of the same workspace and published.
    workflow: int = Field(default=0, ge=0)
    # A pinned version number; None runs its latest published version.
    version: int | None = Field(default=None, ge=1)
    # Its inputs, each a template over this run's variables. A template that
    # is one reference passes the value itself (a json input stays JSON).
    inputs: dict[str, str] = Field(default_factory=dict)


Config = WorkflowStep


def templates(step: WorkflowStep) -> list[tuple[str, str]]:
    return [(f"inputs.{name}", template) for name, template in step.inputs.items()]


def targets(step: WorkflowStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: WorkflowStep) -> dict[str, Any] | None:
    # The called workflow's output is text or JSON of its own; its shape is
    # checked when it is called, not here.
    return None


def next_key(step: WorkflowStep, output: object) -> str | None:
    return step.next


def calls(step: WorkflowStep) -> list[tuple[int, int | None]]:
    """The workflows it runs (id, pinned version), for the call-graph checks."""
    return [(step.workflow, step.version)]
