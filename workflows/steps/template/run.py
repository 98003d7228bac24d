"""The `template` step's checks and execution."""

from __future__ import annotations

from collections.abc import Mapping

from workflows.rendering import render
from workflows.steps.template.config import TemplateStep


def check(step: TemplateStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    return []


def execute(step: TemplateStep, variables: Mapping[str, object]) -> str:
    return render(step.template, variables)
