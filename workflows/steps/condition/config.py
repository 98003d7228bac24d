"""The `condition` step's config: its cases, its operators and the fields the checks read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.rendering import to_text
from workflows.steps.base import StepBase

TYPE = "condition"
DEFAULTS: dict[str, Any] = {}

Op = Literal[
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "matches",
    "is_empty",
    "is_not_empty",
    "gt",
    "lt",
]
# Every operator, in the order the editor offers them, as a person reads it.
OP_LABELS: dict[Op, str] = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "not_contains": "does not contain",
    "matches": "matches the pattern",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "gt": "is greater than",
    "lt": "is less than",
}
UNARY_OPS = frozenset({"is_empty", "is_not_empty"})

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"case": {"type": ["integer", "null"]}, "goto": {"type": "string"}},
    "required": ["case", "goto"],
    "additionalProperties": False,
}


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left: str
    op: Op
    right: str | None = None
    goto: str

    @field_validator("left", "right", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: object) -> object:
        # `"right": 100` is the natural JSON for a gt comparison; both sides
        # are templates, so keep the number as the text it would render to.
        if isinstance(value, (bool, int, float)):
            return to_text(value)
        return value


class ConditionStep(StepBase):
    type: Literal["condition"] = "condition"
    cases: list[Case]
    else_: str = Field(alias="else")


def templates(step: ConditionStep) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for index, case in enumerate(step.cases):
        fields.append((f"cases[{index}].left", case.left))
        if case.op not in UNARY_OPS and case.right is not None:
            fields.append((f"cases[{index}].right", case.right))
    return fields


def targets(step: ConditionStep) -> list[tuple[str, str]]:
    found = [(f"cases[{index}].goto", case.goto) for index, case in enumerate(step.cases)]
    return [*found, ("else", step.else_)]


def output_schema(step: ConditionStep) -> dict[str, Any] | None:
    return OUTPUT_SCHEMA


Config = ConditionStep


def next_key(step: ConditionStep, output: object) -> str | None:
    # The output records the decision, so a resumed run follows the stored
    # choice instead of re-evaluating it.
    if not isinstance(output, Mapping):
        raise TypeError(f"Condition {step.key!r} needs its output dict, got {output!r}.")
    return str(output["goto"])
