"""The `workflow` step in the editor: pick a published workflow of the
workspace and map its inputs from variables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from workflows import sql
from workflows.models import Workflow
from workflows.steps.form import Parsed, next_branches, next_from_post, slot_id, text_value
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

# Posted as "in-<name>": the called workflow's input <name>.
_INPUT_PREFIX = "in-"


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
    if name.startswith(_INPUT_PREFIX) and len(name) > len(_INPUT_PREFIX):
        return f"inputs.{name[len(_INPUT_PREFIX) :]}"
    return None


def form_name(path: str) -> str | None:
    if path.startswith("inputs."):
        return _INPUT_PREFIX + path[len("inputs.") :]
    return path if path in ("workflow", "version", "next") else None


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
    inputs = dict(step.get("inputs") or {}) if isinstance(step.get("inputs"), dict) else {}
    for name in data:
        if name.startswith(_INPUT_PREFIX) and len(name) > len(_INPUT_PREFIX):
            value = text_value(data, name)
            key = name[len(_INPUT_PREFIX) :]
            if value:
                inputs[key] = value
            else:
                inputs.pop(key, None)
    if inputs or "inputs" in step:
        step["inputs"] = inputs
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    """The workflows it may call (published ones of the workspace, not this
    one) and the called one's inputs, each with what this step passes."""
    choices = list(
        Workflow.objects.filter(workspace_id=workflow.workspace_id, archived_at__isnull=True)
        .exclude(id=workflow.id)
        .filter(versions__isnull=False)
        .distinct()
        .order_by("name")
        .values_list("id", "name")
    )
    chosen = step.get("workflow")
    rows: list[dict[str, Any]] = []
    called_name = ""
    if isinstance(chosen, int) and chosen > 0:
        called_name = next((name for id_, name in choices if id_ == chosen), "")
        version = sql.workflow_latest_version(workflow_id=chosen) if called_name else None
        definition = version.definition if version is not None else {}
        mapped = step.get("inputs") if isinstance(step.get("inputs"), dict) else {}
        for spec in definition.get("inputs", []) if isinstance(definition, dict) else []:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                continue
            name = spec["name"]
            rows.append(
                {
                    "name": name,
                    "form_name": _INPUT_PREFIX + name,
                    "type": spec.get("type", "text"),
                    "required": spec.get("required", True) and spec.get("default") is None,
                    "description": spec.get("description", ""),
                    "value": (mapped or {}).get(name, ""),
                    "slot": slots.get(f"inputs.{name}"),
                    # A field added by this choice has no slot until the next save.
                    "slot_id": slot_id(f"inputs.{name}"),
                }
            )
    version = step.get("version")
    return {
        "workflow_choices": choices,
        "called_name": called_name,
        "input_rows": rows,
        "version": version if version is not None else "",
    }
