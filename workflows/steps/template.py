"""The `template` step: text built from variables, without calling a model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from workflows.rendering import render
from workflows.steps.base import StepBase


class TemplateStep(StepBase):
    type: Literal["template"] = "template"
    template: str


def templates(step: TemplateStep) -> list[tuple[str, str]]:
    return [("template", step.template)]


def targets(step: TemplateStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: TemplateStep) -> dict[str, Any] | None:
    return None  # text


def check(step: TemplateStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    return []


def execute(step: TemplateStep, variables: Mapping[str, object]) -> str:
    return render(step.template, variables)
