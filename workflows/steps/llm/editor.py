"""The `llm` step in the editor: its menu entry, card, panel fields and form parsing.

Everything here reads the raw draft, which may not validate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from workflows.models import Workflow
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
from workflows.steps.llm.config import DEFAULTS, TYPE
from workflows.steps.llm.sample import SampleError, schema_from_sample

LABEL = "LLM prompt"
HINT = "ask the model"
# On the run page, beside each step.
SHORT_LABEL = "LLM"
# Its badge on the cards: a tone of components.css (.badge-<tone>), "" for the plain one.
TONE = "accent"
BLURB = "Sends a prompt to the model and passes its answer on."
EMPTY_SUMMARY = "No prompt yet."
PANEL = "steps/llm/panel.html"
# The form fields that together write `response_format`.
RESPONSE_FORMAT_FIELDS = ("response_type", "schema_name", "schema")
# How a field is named (to whoever edits it at the same time,
# workflows/builder/draft_changes.py); the history's diff shows a step's fields in this order
# (workflows/builder/versions.py).
FIELD_LABELS = {
    "system": "System message",
    "prompt": "Prompt",
    "model": "Model",
    "temperature": "Temperature",
    "max_tokens": "Max output tokens",
    "response_format": "Answer format",
}


LIST_FIELDS: dict[str, str] = {}


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    return {
        "key": key,
        "type": TYPE,
        "title": "",
        "system": "",
        "prompt": "",
        "temperature": DEFAULTS["temperature"],
        "max_tokens": DEFAULTS["max_tokens"],
    }


def summary(step: dict) -> str:
    return summary_of(text_of(step, "prompt"))


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    """The fields of its JSON answer, which later steps may read: {name: its JSON schema}."""
    response_format = step.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return {}
    schema = response_format.get("schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    return {str(name): spec if isinstance(spec, dict) else {} for name, spec in properties.items()}


# The form fields of its panel that write the field of the same name.
_PLAIN_FIELDS = (
    "system",
    "prompt",
    "model",
    "temperature",
    "max_tokens",
    "fallback_model",
    "next",
)


def posted_path(name: str) -> str | None:
    """The field (path under the step) a posted form field writes; None: not one of its fields."""
    if name in _PLAIN_FIELDS:
        return name
    return "response_format" if name in RESPONSE_FORMAT_FIELDS else None


def form_name(path: str) -> str | None:
    """The form field that shows `path` (under the step); None: redraw the whole panel."""
    return None if path == "response_format" else path


def action_path(action: str) -> tuple[str, str] | None:
    """The field a button writes, and the form field whose revision it was drawn at."""
    return ("response_format", "schema") if action == "schema_from_sample" else None


def fields(step: dict) -> list[str]:
    """The fields its panel shows, each with a slot for its problems."""
    names = ["system", "prompt", "model", "temperature", "max_tokens", "response_format"]
    names.append("fallback_model")
    if answer_format(step).get("type") == "json_schema":
        names += ["response_format.name", "response_format.schema", "sample"]
    return [*names, "next"]


def template_values(step: dict) -> dict[str, str]:
    return {name: step[name] for name in ("system", "prompt") if isinstance(step.get(name), str)}


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    for name in ("system", "prompt"):
        if name in step:
            step[name] = rewrite(step[name])


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    for name in ("system", "prompt"):
        if name in data:
            step[name] = text_value(data, name)
    if "model" in data:
        step["model"] = (
            text_value(data, "model", strip=True) or current.get("model") or DEFAULTS["model"]
        )
    if "fallback_model" in data:
        fallback_model = text_value(data, "fallback_model", strip=True)
        if fallback_model:
            step["fallback_model"] = fallback_model
        else:
            step.pop("fallback_model", None)
    if "temperature" in data:
        step["temperature"] = number(parsed, data, "temperature", integer=False)
    if "max_tokens" in data:
        step["max_tokens"] = number(parsed, data, "max_tokens", integer=True)
    if any(name in data for name in RESPONSE_FORMAT_FIELDS):
        step["response_format"] = response_format_from_post(parsed, current, data)
    next_from_post(step, data)


class SampleForm(forms.Form):
    sample = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))

    def clean_sample(self) -> object:
        try:
            return json.loads(self.cleaned_data["sample"])
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}.") from None


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    """The panel's buttons: "schema_from_sample" writes the schema from a pasted sample."""
    if action != "schema_from_sample":
        return step
    sample_form = SampleForm(data)
    if not sample_form.is_valid():
        errors.setdefault("sample", []).extend(str(e) for e in sample_form.errors["sample"])
        return step
    try:
        schema = schema_from_sample(sample_form.cleaned_data["sample"])
    except SampleError as error:
        errors.setdefault("sample", []).append(str(error))
        return step
    step["response_format"] = {
        "type": "json_schema",
        "name": text_value(data, "schema_name", strip=True)
        or answer_format(step).get("name")
        or step.get("key")
        or "output",
        "schema": schema,
    }
    errors.pop("response_format.schema", None)
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    explain_unparsed_schema(step, slots)
    response_format = answer_format(step)
    models = list(settings.LLM_MODELS)
    if isinstance(step.get("model"), str) and step["model"] not in models:
        models.append(step["model"])
    return {
        "models": models,
        "model": step.get("model") or DEFAULTS["model"],
        "fallback_model": step.get("fallback_model") or "",
        "response_type": response_format.get("type", "text"),
        "schema_name": response_format.get("name", ""),
        "schema_text": schema_text(step),
        "temperature": step.get("temperature", DEFAULTS["temperature"]),
        "max_tokens": step.get("max_tokens", DEFAULTS["max_tokens"]),
        "slot_schema": slots.get("response_format.schema"),
        "slot_schema_name": slots.get("response_format.name"),
        "slot_sample": slots.get("sample"),
    }
