"""The editor's forms: posted fields in, a step (or inputs, output…) out, with field errors.

The editor autosaves every change, including invalid ones, so these parsers
never refuse: a value that cannot be read as what the field needs (a
temperature of "warm", a schema that is not JSON) is kept as typed, reported
as a field error, and the validator reports it again until it is fixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from workflows.definition import Definition, InputSpec, coerce_value
from workflows.editing import DEFAULT_SCHEMA

INPUT_TYPES = [("text", "Text"), ("number", "Number"), ("boolean", "Yes / no"), ("json", "JSON")]
OPS = [
    ("equals", "equals"),
    ("not_equals", "does not equal"),
    ("contains", "contains"),
    ("not_contains", "does not contain"),
    ("matches", "matches the pattern"),
    ("is_empty", "is empty"),
    ("is_not_empty", "is not empty"),
    ("gt", "is greater than"),
    ("lt", "is less than"),
]
MAX_CASES = 50
MAX_INPUTS = 100


@dataclass
class Parsed:
    value: Any
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def text_value(data: QueryDict, name: str, *, strip: bool = False) -> str:
    value = data.get(name, "")
    # Browsers send \r\n in textareas; the definition keeps plain \n.
    value = value.replace("\r\n", "\n")
    return value.strip() if strip else value


def _count(data: QueryDict, name: str, limit: int) -> int:
    try:
        return max(0, min(int(data.get(name, "0")), limit))
    except ValueError:
        return 0


def _number(parsed: Parsed, data: QueryDict, name: str, *, integer: bool) -> object:
    raw = data.get(name, "").strip()
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        parsed.error(name, "Enter a whole number." if integer else "Enter a number.")
        return raw


def step_from_post(current: dict, data: QueryDict) -> Parsed:
    """The step as edited in its side panel; `current` keeps fields the form does not show."""
    kind = current.get("type")
    step = dict(current)
    parsed = Parsed(step)
    step["key"] = text_value(data, "key", strip=True)
    step["title"] = text_value(data, "title", strip=True)
    if kind == "llm":
        step["system"] = text_value(data, "system")
        step["prompt"] = text_value(data, "prompt")
        step["model"] = text_value(data, "model", strip=True) or current.get("model") or settings.LLM_DEFAULT_MODEL
        step["temperature"] = _number(parsed, data, "temperature", integer=False)
        step["max_tokens"] = _number(parsed, data, "max_tokens", integer=True)
        step["response_format"] = _response_format(parsed, current, data)
    elif kind == "template":
        step["template"] = text_value(data, "template")
    elif kind == "condition":
        step["cases"] = _cases(data)
        step["else"] = text_value(data, "else", strip=True)
    if kind in ("llm", "template"):
        target = text_value(data, "next", strip=True)
        if target:
            step["next"] = target
        else:
            step.pop("next", None)
    return parsed


def _response_format(parsed: Parsed, current: dict, data: QueryDict) -> dict:
    if data.get("response_type") != "json_schema":
        return {"type": "text"}
    previous = current.get("response_format") if isinstance(current.get("response_format"), dict) else {}
    name = text_value(data, "schema_name", strip=True) or str(current.get("key") or "output")
    raw = text_value(data, "schema")
    if "schema" not in data:  # switched from text: start from a small example
        schema: object = previous.get("schema") or DEFAULT_SCHEMA
    elif not raw.strip():
        schema = DEFAULT_SCHEMA
    else:
        try:
            schema = json.loads(raw)
        except (ValueError, RecursionError) as error:
            reason = "it is nested too deeply" if isinstance(error, RecursionError) else error
            parsed.error("response_format.schema", f"Not valid JSON: {reason}.")
            schema = raw  # kept as typed: never lose an edit
    return {"type": "json_schema", "name": name, "schema": schema}


def _cases(data: QueryDict) -> list[dict]:
    cases = []
    for index in range(_count(data, "case_count", MAX_CASES)):
        prefix = f"case-{index}-"
        op = text_value(data, prefix + "op", strip=True) or "equals"
        case: dict[str, object] = {"left": text_value(data, prefix + "left"), "op": op}
        right = text_value(data, prefix + "right")
        if op not in ("is_empty", "is_not_empty") or right:
            case["right"] = right
        case["goto"] = text_value(data, prefix + "goto", strip=True)
        cases.append(case)
    return cases


def inputs_from_post(data: QueryDict) -> Parsed:
    """The inputs as edited on the Inputs panel, in order."""
    parsed = Parsed([])
    for index in range(_count(data, "input_count", MAX_INPUTS)):
        prefix = f"input-{index}-"
        kind = text_value(data, prefix + "type", strip=True) or "text"
        spec: dict[str, object] = {
            "name": text_value(data, prefix + "name", strip=True),
            "type": kind,
            "required": data.get(prefix + "required") == "on",
        }
        default = _default(parsed, f"inputs[{index}].default", kind, text_value(data, prefix + "default"))
        if default is not None:
            spec["default"] = default
        description = text_value(data, prefix + "description", strip=True)
        if description:
            spec["description"] = description
        parsed.value.append(spec)
    return parsed


def _default(parsed: Parsed, name: str, kind: str, raw: str) -> object:
    if not raw.strip():
        return None
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            parsed.error(name, "Enter a number.")
            return raw
        return int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        parsed.error(name, "Choose yes or no.")
        return raw
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError as error:
            parsed.error(name, f"Not valid JSON: {error}.")
            return raw
    return raw


def default_text(spec: dict) -> str:
    """An input's default as the text its field shows."""
    default = spec.get("default")
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if spec.get("type") == "json" and not isinstance(default, str):
        return json.dumps(default, ensure_ascii=False)
    return str(default)


def schema_text(step: dict) -> str:
    response_format = step.get("response_format")
    schema = response_format.get("schema") if isinstance(response_format, dict) else None
    if schema is None:
        return json.dumps(DEFAULT_SCHEMA, indent=2)
    if isinstance(schema, str):
        return schema
    return json.dumps(schema, indent=2, ensure_ascii=False)


# --- Plain Django forms -------------------------------------------------------------


class SettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class RenameForm(forms.Form):
    """Renaming in place from the editor's title."""

    name = forms.CharField(max_length=200, error_messages={"required": "A workflow needs a name."})


class PublishForm(forms.Form):
    summary = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What changed, for the people who use this workflow. Shown in the version history.",
    )


class SampleForm(forms.Form):
    sample = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))

    def clean_sample(self) -> object:
        try:
            return json.loads(self.cleaned_data["sample"])
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}.") from None


def run_inputs_form(
    definition: Definition, data: QueryDict | None = None, *, initial: dict[str, object] | None = None
) -> forms.Form:
    """A form with one field per workflow input: text as a textarea, numbers, a checkbox, JSON.

    `initial` (the inputs of an earlier run) fills the fields, as text.
    """
    fields: dict[str, forms.Field] = {}
    for spec in definition.inputs:
        fields[spec.name] = _input_field(spec)
    form_class = type("RunInputsForm", (forms.Form,), fields)
    values = {}
    for spec in definition.inputs:
        value = (initial or {}).get(spec.name)
        if value is not None:
            values[spec.name] = json.dumps(value, ensure_ascii=False) if spec.type == "json" else value
    return form_class(data, prefix="input", initial=values)


def _coercible(kind: str) -> Any:
    """A validator: the text must read as a value of `kind` (as coerce_inputs will read it)."""

    def validate(value: str) -> None:
        try:
            coerce_value(kind, value)  # type: ignore[arg-type]
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    return validate


def _input_field(spec: InputSpec) -> forms.Field:
    required = spec.required and spec.default is None
    help_text = spec.description
    initial = spec.default
    if spec.type == "boolean":
        return forms.BooleanField(label=spec.name, required=False, initial=bool(spec.default),
                                  help_text=help_text)
    if spec.type == "number":
        return forms.CharField(label=spec.name, required=required, initial=initial, help_text=help_text,
                               validators=[_coercible("number")], widget=forms.NumberInput(attrs={"step": "any"}))
    if spec.type == "json":
        return forms.CharField(
            label=spec.name, required=required, help_text=help_text or "A JSON value, e.g. {\"id\": 42}",
            validators=[_coercible("json")],
            initial=json.dumps(initial, ensure_ascii=False) if initial is not None else None,
            widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
        )
    return forms.CharField(label=spec.name, required=required, initial=initial, strip=False,
                           help_text=help_text, widget=forms.Textarea(attrs={"rows": 3}))


def run_inputs_values(form: forms.Form, definition: Definition) -> dict[str, object]:
    """The values to start the run with (blank means "use the default")."""
    values: dict[str, object] = {}
    for spec in definition.inputs:
        if spec.type == "boolean":
            values[spec.name] = "true" if form.cleaned_data.get(spec.name) else "false"
        else:
            values[spec.name] = form.cleaned_data.get(spec.name)
    return values
