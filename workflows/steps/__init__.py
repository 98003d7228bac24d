"""The step kinds, found by their `type`.

Each kind is one module holding its pydantic config and these functions:

- `templates(step) -> list[tuple[str, str]]`: fields that contain variables;
- `targets(step) -> list[tuple[str, str]]`: fields that name the next step;
- `output_schema(step) -> dict | None`: JSON schema of the output, None for text;
- `check(step, *, models) -> list[tuple[str, str]]`: kind-specific validation
  as (field, message) pairs;
- `execute(step, variables)`: run it. A kind with `PAID = True` instead has
  `prepare(step, variables)`, which returns a call carrying `hold_nanousd`
  (its worst-case cost, held in the budget by the engine), and
  `execute(step, call, context)`.

A new kind is a new module plus one line in STEP_TYPES and in `Step`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated

from pydantic import Field

from workflows.steps import condition, llm, template
from workflows.steps.base import StepBase

STEP_TYPES: dict[str, ModuleType] = {
    "llm": llm,
    "template": template,
    "condition": condition,
}

Step = Annotated[
    llm.LlmStep | template.TemplateStep | condition.ConditionStep,
    Field(discriminator="type"),
]


def module_for(step: StepBase) -> ModuleType:
    return STEP_TYPES[step.type]
