"""The `workflow` step in the editor: pick a published workflow of the
workspace and map its inputs from variables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from workflows.models import Workflow
from workflows.steps.calls_form import (
    called_workflow_context,
    input_form_name,
    input_path,
    inputs_from_post,
)
from workflows.steps.form import Parsed, next_branches, next_from_post
from workflows.steps.workflow.config import TYPE

LABEL = "Run a workflow"
HINT = "reuse another workflow"
SHORT_LABEL = "Workflow"
TONE = "accent"
BLURB = (
    "Runs a published workflow of this workspace as a sub-workflow and uses its output. "
    "The run waits for it without holding a worker."
)
EMPTY_SUMMARY = "Pick a workflow to run"
PANEL = "steps/workflow/panel.html"
FIELD_LABELS = {"workflow": "Workflow", "version": "Version", "inputs": "Inputs"}
LIST_FIELDS: dict[str, str] = {}


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    # Not a valid step until a workflow is picked: the panel says so.
    return {"key": key, "type": TYPE, "title": "", "workflow": 0, "inputs": {}}


def summary(step: dict) -> str:
    workflow = step.get("workflow")
    if not isinstance(workflow, int) or workflow < 1:
        return ""
    version = step.get("version")
    pinned = f", version {version}" if isinstance(version, int) else ""
    return f"workflow #{workflow}{pinned}"


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    return {}


def posted_path(name: str) -> str | None:
    if name in ("workflow", "version", "next"):
        return name
    return input_path(name)


def form_name(path: str) -> str | None:
    return input_form_name(path) or (path if path in ("workflow", "version", "next") else None)


def action_path(action: str) -> tuple[str, str] | None:
    return None


def fields(step: dict) -> list[str]:
    inputs = step.get("inputs")
    names = list(inputs) if isinstance(inputs, dict) else []
    return ["workflow", "version", "inputs", *(f"inputs.{name}" for name in names), "next"]


def template_values(step: dict) -> dict[str, str]:
    inputs = step.get("inputs")
    if not isinstance(inputs, dict):
        return {}
    return {f"inputs.{name}": value for name, value in inputs.items() if isinstance(value, str)}


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    inputs = step.get("inputs")
    if isinstance(inputs, dict):
        step["inputs"] = {name: rewrite(value) for name, value in inputs.items()}


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "workflow" in data:
        raw = data.get("workflow", "").strip()
        try:
            chosen = int(raw) if raw else 0
        except ValueError:
            parsed.error("workflow", "Pick a workflow.")
            chosen = 0
        if chosen != step.get("workflow"):
            step["workflow"] = chosen
            # Another workflow has other inputs: start its mapping afresh.
            step["inputs"] = {}
            step.pop("version", None)
    if "version" in data:
        raw = data.get("version", "").strip()
        if not raw:
            step.pop("version", None)
        else:
            try:
                step["version"] = int(raw)
            except ValueError:
                parsed.error("version", "Enter a version number, or leave it empty for the latest.")
                step["version"] = raw
    inputs_from_post(step, data)
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    return called_workflow_context(step, slots, workflow=workflow)
