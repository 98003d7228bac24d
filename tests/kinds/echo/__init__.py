"""The `echo` step kind, for tests only: it outputs its text, variables filled in.

Everything a kind needs is here and in templates/steps/echo/panel.html; the
test that registers it (tests/test_a_new_kind.py) adds it to the registry
and touches nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from django.http import QueryDict

from workflows.models import Workflow
from workflows.rendering import render
from workflows.steps.base import StepBase
from workflows.steps.form import (
    Parsed,
    next_branches,
    next_from_post,
    summary_of,
    text_of,
    text_value,
)

TYPE = "echo"
DEFAULTS: dict[str, Any] = {}


class EchoStep(StepBase):
    type: Literal["echo"] = "echo"
    text: str


Config = EchoStep


def templates(step: EchoStep) -> list[tuple[str, str]]:
    return [("text", step.text)]


def targets(step: EchoStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: EchoStep) -> dict[str, Any] | None:
    return None  # text


def next_key(step: EchoStep, output: object) -> str | None:
    return step.next


def check(step: EchoStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    return [("text", "Say something to echo.")] if not step.text.strip() else []


def execute(step: EchoStep, variables: Mapping[str, object]) -> str:
    return render(step.text, variables)


# --- the editor -----------------------------------------------------------------------------

LABEL = "Echo"
HINT = "say it back"
SHORT_LABEL = "Echo"
TONE = ""
BLURB = "Says its text back, variables filled in."
EMPTY_SUMMARY = "Nothing to say yet."
PANEL = "steps/echo/panel.html"
FIELD_LABELS = {"text": "Text to echo"}
LIST_FIELDS: dict[str, str] = {}


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    return {"key": key, "type": TYPE, "title": "", "text": ""}


def summary(step: dict) -> str:
    return summary_of(text_of(step, "text"))


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    return {}


def fields(step: dict) -> list[str]:
    return ["text", "next"]


def template_values(step: dict) -> dict[str, str]:
    return {"text": step["text"]} if isinstance(step.get("text"), str) else {}


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    if "text" in step:
        step["text"] = rewrite(step["text"])


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "text" in data:
        step["text"] = text_value(data, "text")
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    return {}


def posted_path(name: str) -> str | None:
    return name if name in ("text", "next") else None


def form_name(path: str) -> str | None:
    return path


def action_path(action: str) -> tuple[str, str] | None:
    return None
