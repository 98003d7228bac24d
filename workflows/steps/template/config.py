"""The `template` step's config: text built from variables, without calling a model."""

from __future__ import annotations

from typing import Any, Literal

from workflows.steps.base import StepBase

TYPE = "template"
DEFAULTS: dict[str, Any] = {}


class TemplateStep(StepBase):
    type: Literal["template"] = "template"
    template: str


Config = TemplateStep


def templates(step: TemplateStep) -> list[tuple[str, str]]:
    return [("template", step.template)]


def targets(step: TemplateStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: TemplateStep) -> dict[str, Any] | None:
    return None  # text


def next_key(step: TemplateStep, output: object) -> str | None:
    return step.next
