"""What the editors of the kinds that run other workflows (`workflow`, `map`)
share: the workflows a step may call, the called one's inputs as form rows,
and reading those inputs back from a post."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from workflows import sql
from workflows.models import Workflow
from workflows.steps.form import slot_id, text_value

# Posted as "in-<name>": the called workflow's input <name>.
INPUT_PREFIX = "in-"


def input_path(name: str) -> str | None:
    """The path under the step that the posted field `name` writes, if it is an input's."""
    if name.startswith(INPUT_PREFIX) and len(name) > len(INPUT_PREFIX):
        return f"inputs.{name[len(INPUT_PREFIX) :]}"
    return None


def input_form_name(path: str) -> str | None:
    return INPUT_PREFIX + path[len("inputs.") :] if path.startswith("inputs.") else None


def inputs_from_post(step: dict, data: QueryDict) -> None:
    """The called workflow's inputs posted as "in-<name>": a value set, an empty one removed."""
    inputs = dict(step["inputs"]) if isinstance(step.get("inputs"), dict) else {}
    posted = False
    for name in data:
        path = input_path(name)
        if path is None:
            continue
        posted = True
        key = path[len("inputs.") :]
        value = text_value(data, name)
        if value:
            inputs[key] = value
        else:
            inputs.pop(key, None)
    if posted or "inputs" in step:
        step["inputs"] = inputs


def called_workflow_context(
    step: dict, slots: dict[str, Any], *, workflow: Workflow
) -> dict[str, Any]:
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
                    "form_name": INPUT_PREFIX + name,
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
