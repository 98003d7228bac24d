"""The `template` step in the editor: its menu entry, card, panel fields and form parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from workflows.models import Workflow
from workflows.steps.form import (
    Parsed,
    next_branches,
    next_from_post,
    summary_of,
    text_of,
    text_value,
)
from workflows.steps.template.config import TYPE

LABEL = "Template"
HINT = "format text"
# On the run page, beside each step.
SHORT_LABEL = "Template"
# Its badge on the cards: a tone of components.css (.badge-<tone>), "" for the plain one.
TONE = ""
BLURB = "Builds text from variables, without calling the model."
EMPTY_SUMMARY = ""
PANEL = "steps/template/panel.html"
FIELD_LABELS = {"template": "Template"}
LIST_FIELDS: dict[str, str] = {}


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    return {
        "key": key,
        "type": TYPE,
        "title": "",
        "template": f"{{{{ {previous} }}}}" if previous else "",
    }


def summary(step: dict) -> str:
    return summary_of(text_of(step, "template"))


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    return {}  # text


def posted_path(name: str) -> str | None:
    """The field (path under the step) a posted form field writes; None: not one of its fields."""
    return name if name in ("template", "next") else None


def form_name(path: str) -> str | None:
    """The form field that shows `path` (under the step); None: redraw the whole panel."""
    return path


def action_path(action: str) -> tuple[str, str] | None:
    return None  # no buttons of its own


def fields(step: dict) -> list[str]:
    return ["template", "next"]


def template_values(step: dict) -> dict[str, str]:
    return {"template": step["template"]} if isinstance(step.get("template"), str) else {}


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    if "template" in step:
        step["template"] = rewrite(step["template"])


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "template" in data:
        step["template"] = text_value(data, "template")
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step  # no buttons of its own


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    return {}
