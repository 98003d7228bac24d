"""The `map` step in the editor: the list it goes over, how many items at
once, what an item's failure does, and for each item a prompt (the llm
step's fields) or a workflow with its inputs mapped.

Everything here reads the raw draft, which may not validate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import QueryDict

from workflows.models import Workflow
from workflows.steps.calls_form import (
    called_workflow_context,
    input_form_name,
    input_path,
    inputs_from_post,
)
from workflows.steps.chat_form import (
    answer_format,
    explain_unparsed_schema,
    response_format_from_post,
    schema_text,
)
from workflows.steps.form import (
    Parsed,
    next_branches,
    next_from_post,
    number,
    summary_of,
    text_of,
    text_value,
)
from workflows.steps.map.config import DEFAULTS, MAX_CONCURRENCY, TYPE

LABEL = "Map over a list"
HINT = "a prompt or a workflow per item"
SHORT_LABEL = "Map"
TONE = "accent"
BLURB = (
    "Runs a prompt, or a workflow, for each item of a JSON list, several at once, "
    "and outputs the list of results in item order. Use {{ item }}, {{ item.field }} "
    "and {{ index }} in what runs per item."
)
EMPTY_SUMMARY = "Pick the list to go over."
PANEL = "steps/map/panel.html"
FIELD_LABELS = {
    "over": "Over",
    "concurrency": "At once",
    "on_item_error": "When an item fails",
    "system": "System message",
    "prompt": "Prompt",
    "model": "Model",
    "temperature": "Temperature",
    "max_tokens": "Max output tokens",
    "response_format": "Answer format",
    "workflow": "Workflow",
    "version": "Version",
    "inputs": "Inputs",
}
LIST_FIELDS: dict[str, str] = {}
ON_ITEM_ERROR = (
    ("stop", "Stop: the step fails"),
    ("skip", "Skip it: null in its place"),
    ("collect", 'Collect: {"error": …} in its place'),
)

_RESPONSE_FORMAT_FIELDS = ("response_type", "schema_name", "schema")
_PROMPT_FIELDS = (
    *("prompt", "system", "model", "temperature", "max_tokens"),
    *("response_format", "fallback_model"),
)
_PLAIN = (
    *("over", "concurrency", "on_item_error", "system", "prompt", "model"),
    *("temperature", "max_tokens", "workflow", "version", "next"),
)


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    # The previous step's first list field is the likely list to go over.
    lists = [name for name, spec in previous_json.items() if spec.get("type") == "array"]
    over = f"{{{{ {previous}.{lists[0]} }}}}" if previous and lists else ""
    return {
        "key": key,
        "type": TYPE,
        "title": "",
        "over": over,
        "concurrency": DEFAULTS["concurrency"],
        "on_item_error": DEFAULTS["on_item_error"],
        "prompt": "",
        "max_tokens": DEFAULTS["max_tokens"],
    }


def _over_workflow(step: dict) -> bool:
    return step.get("workflow") is not None


def summary(step: dict) -> str:
    over = text_of(step, "over").strip() or "…"
    if _over_workflow(step):
        return summary_of(f"each of {over}: workflow #{step.get('workflow')}")
    return summary_of(f"each of {over}: {text_of(step, 'prompt')}")


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    # Its output is a list: later steps read it whole or by index.
    return {}


def posted_path(name: str) -> str | None:
    if name in _PLAIN:
        return name
    if name == "mode":
        return "workflow"
    if name in _RESPONSE_FORMAT_FIELDS:
        return "response_format"
    return input_path(name)


def form_name(path: str) -> str | None:
    if path.startswith("inputs."):
        return input_form_name(path)
    if path in ("response_format", "workflow"):
        return None  # the panel's shape changes with them
    return path if path in _PLAIN else None


def action_path(action: str) -> tuple[str, str] | None:
    return None


def fields(step: dict) -> list[str]:
    names = ["over", "concurrency", "on_item_error"]
    if _over_workflow(step):
        inputs = step.get("inputs")
        mapped = list(inputs) if isinstance(inputs, dict) else []
        names += ["workflow", "version", "inputs", *(f"inputs.{name}" for name in mapped)]
    else:
        names += ["system", "prompt", "model", "temperature", "max_tokens", "response_format"]
        if answer_format(step).get("type") == "json_schema":
            names += ["response_format.name", "response_format.schema"]
    return [*names, "next"]


def template_values(step: dict) -> dict[str, str]:
    values = {name: step[name] for name in ("over",) if isinstance(step.get(name), str)}
    if _over_workflow(step):
        inputs = step.get("inputs")
        if isinstance(inputs, dict):
            values.update(
                {
                    f"inputs.{name}": value
                    for name, value in inputs.items()
                    if isinstance(value, str)
                }
            )
    else:
        values.update(
            {name: step[name] for name in ("system", "prompt") if isinstance(step.get(name), str)}
        )
    return values


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    for name in ("over", "system", "prompt"):
        if name in step:
            step[name] = rewrite(step[name])
    inputs = step.get("inputs")
    if isinstance(inputs, dict):
        step["inputs"] = {name: rewrite(value) for name, value in inputs.items()}


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "mode" in data:
        if data.get("mode") == "workflow":
            step.setdefault("workflow", 0)
            step.setdefault("inputs", {})
            # A map runs one or the other: the prompt's fields go.
            for name in _PROMPT_FIELDS:
                step.pop(name, None)
        else:
            for name in ("workflow", "version", "inputs"):
                step.pop(name, None)
    for name in ("over", "system", "prompt"):
        if name in data:
            step[name] = text_value(data, name)
    if "on_item_error" in data:
        step["on_item_error"] = text_value(data, "on_item_error", strip=True) or "stop"
    if "concurrency" in data:
        step["concurrency"] = number(parsed, data, "concurrency", integer=True)
    if "model" in data:
        step["model"] = (
            text_value(data, "model", strip=True) or current.get("model") or DEFAULTS["model"]
        )
    if "temperature" in data:
        step["temperature"] = number(parsed, data, "temperature", integer=False)
    if "max_tokens" in data:
        step["max_tokens"] = number(parsed, data, "max_tokens", integer=True)
    if any(name in data for name in _RESPONSE_FORMAT_FIELDS):
        step["response_format"] = response_format_from_post(parsed, current, data)
    _workflow_from_post(step, data, parsed)
    next_from_post(step, data)


def _workflow_from_post(step: dict, data: QueryDict, parsed: Parsed) -> None:
    if "workflow" in data:
        raw = data.get("workflow", "").strip()
        try:
            chosen = int(raw) if raw else 0
        except ValueError:
            parsed.error("workflow", "Pick a workflow.")
            chosen = 0
        if chosen != step.get("workflow"):
            step["workflow"] = chosen
            step["inputs"] = {}  # another workflow has other inputs
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


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    context: dict[str, Any] = {
        "mode": "workflow" if _over_workflow(step) else "prompt",
        "concurrency": step.get("concurrency", DEFAULTS["concurrency"]),
        "max_concurrency": MAX_CONCURRENCY,
        "on_item_error": step.get("on_item_error", DEFAULTS["on_item_error"]),
        "on_item_error_choices": ON_ITEM_ERROR,
        "max_items": settings.MAP_MAX_ITEMS,
    }
    if _over_workflow(step):
        context.update(called_workflow_context(step, slots, workflow=workflow))
        return context
    if "response_format.schema" in slots:
        explain_unparsed_schema(step, slots)
    response_format = answer_format(step)
    models = list(settings.LLM_MODELS)
    if isinstance(step.get("model"), str) and step["model"] not in models:
        models.append(step["model"])
    context.update(
        {
            "models": models,
            "model": step.get("model") or DEFAULTS["model"],
            "response_type": response_format.get("type", "text"),
            "schema_name": response_format.get("name", ""),
            "schema_text": schema_text(step),
            "temperature": step.get("temperature", DEFAULTS["temperature"]),
            "max_tokens": step.get("max_tokens", DEFAULTS["max_tokens"]),
            "slot_schema": slots.get("response_format.schema"),
            "slot_schema_name": slots.get("response_format.name"),
        }
    )
    return context
