"""The editor's forms: posted fields in, a step (or inputs, output…) out, with field errors.

The editor autosaves every change, including invalid ones, so these parsers
never refuse: a value that cannot be read as what the field needs (a
temperature of "warm", a schema that is not JSON) is kept as typed, reported
as a field error, and the validator reports it again until it is fixed.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from django import forms
from django.http import QueryDict

from config.lib.names import validate_name_direction
from workflows.builder.definition import Definition, InputSpec, InputType, coerce_value
from workflows.steps import STEP_TYPES
from workflows.steps.form import Parsed, count, text_value

INPUT_TYPES = [("text", "Text"), ("number", "Number"), ("boolean", "Yes / no"), ("json", "JSON")]
MAX_INPUTS = 100


def step_from_post(current: dict, data: QueryDict) -> Parsed:
    """The step with the fields present in `data` applied; every other field is kept as stored.

    The editor sends only the fields the person changed (a whole form
    without JavaScript), so a field another person changed meanwhile is
    never overwritten by a stale copy of it. The step's kind reads its own
    fields (`from_post` in its package).
    """
    step = copy.deepcopy(current)
    parsed = Parsed(step)
    if "key" in data:
        step["key"] = text_value(data, "key", strip=True)
    if "title" in data:
        step["title"] = text_value(data, "title", strip=True)
    _error_policy_from_post(step, data, parsed)
    module = STEP_TYPES.get(str(current.get("type")))
    if module is not None:
        module.from_post(step, current, data, parsed)
    return parsed


def _error_policy_from_post(step: dict, data: QueryDict, parsed: Parsed) -> None:
    """Every step's `retries`, `on_error` and `fallback`; a field left empty is removed."""
    if "retries" in data:
        raw = data.get("retries", "").strip()
        if not raw:
            step.pop("retries", None)
        else:
            try:
                step["retries"] = int(raw)
            except ValueError:
                parsed.error("retries", "Enter a whole number from 0 to 10.")
                step["retries"] = raw
    if "on_error" in data:
        on_error = text_value(data, "on_error", strip=True)
        if on_error and on_error != "fail":
            step["on_error"] = on_error
        else:
            step.pop("on_error", None)
    if "fallback" in data:
        text = text_value(data, "fallback")
        if not text.strip():
            step.pop("fallback", None)
        else:
            # JSON when it reads as a JSON object or list; else a template
            # (which may start with "{{").
            try:
                value = json.loads(text) if text.lstrip()[:1] in ("{", "[") else text
            except ValueError:
                value = text
            step["fallback"] = value if isinstance(value, dict | list | str) else text


def fallback_text(value: object) -> str:
    """A fallback as its field shows it: text as it is, JSON pretty-printed."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


INPUT_FIELD_RE = re.compile(r"^input-(\d+)-(name|type|default|description|required)$")


def inputs_from_post(current: list, data: QueryDict) -> Parsed:
    """The inputs with the fields present in `data` applied
    (all of them, in order, with `input_count`)."""
    if "input_count" not in data:
        return _input_fields_from_post(current, data)
    parsed = Parsed([])
    for index in range(count(data, "input_count", MAX_INPUTS)):
        prefix = f"input-{index}-"
        kind = text_value(data, prefix + "type", strip=True) or "text"
        spec: dict[str, object] = {
            "name": text_value(data, prefix + "name", strip=True),
            "type": kind,
            "required": "on" in data.getlist(prefix + "required"),
        }
        default = _default(
            parsed, f"inputs[{index}].default", kind, text_value(data, prefix + "default")
        )
        if default is not None:
            spec["default"] = default
        description = text_value(data, prefix + "description", strip=True)
        if description:
            spec["description"] = description
        parsed.value.append(spec)
    return parsed


def _input_fields_from_post(current: list, data: QueryDict) -> Parsed:
    parsed = Parsed(copy.deepcopy([spec if isinstance(spec, dict) else {} for spec in current]))
    for name in data:
        match = INPUT_FIELD_RE.match(name)
        if not match or int(match.group(1)) >= len(parsed.value):
            continue
        index, field_name = int(match.group(1)), match.group(2)
        spec = parsed.value[index]
        if field_name == "required":
            spec["required"] = "on" in data.getlist(name)
        elif field_name == "default":
            kind = str(spec.get("type") or "text")
            default = _default(parsed, f"inputs[{index}].default", kind, text_value(data, name))
            if default is None:
                spec.pop("default", None)
            else:
                spec["default"] = default
        elif field_name == "description":
            description = text_value(data, name, strip=True)
            if description:
                spec["description"] = description
            else:
                spec.pop("description", None)
        else:
            spec[field_name] = text_value(data, name, strip=True) or (
                "text" if field_name == "type" else ""
            )
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
        return (
            int(number)
            if number.is_integer() and "." not in raw and "e" not in raw.lower()
            else number
        )
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


# --- Plain Django forms -------------------------------------------------------------


class SettingsForm(forms.Form):
    name = forms.CharField(max_length=200, validators=[validate_name_direction])
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class RenameForm(forms.Form):
    """Renaming in place from the editor's title."""

    name = forms.CharField(
        max_length=200,
        error_messages={"required": "A workflow needs a name."},
        validators=[validate_name_direction],
    )


class PublishForm(forms.Form):
    summary = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            "What changed, for the people who use this workflow. Shown in the version history."
        ),
    )


def run_inputs_form(
    definition: Definition,
    data: QueryDict | None = None,
    *,
    initial: dict[str, object] | None = None,
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
            values[spec.name] = (
                json.dumps(value, ensure_ascii=False) if spec.type == "json" else value
            )
    form: forms.Form = form_class(data, prefix="input", initial=values)
    return form


def _coercible(kind: InputType) -> Any:
    """A validator: the text must read as a value of `kind` (as coerce_inputs will read it)."""

    def validate(value: str) -> None:
        try:
            coerce_value(kind, value)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    return validate


def _input_field(spec: InputSpec) -> forms.Field:
    required = spec.required and spec.default is None
    help_text = spec.description
    initial = spec.default
    if spec.type == "boolean":
        return forms.BooleanField(
            label=spec.name, required=False, initial=bool(spec.default), help_text=help_text
        )
    if spec.type == "number":
        return forms.CharField(
            label=spec.name,
            required=required,
            initial=initial,
            help_text=help_text,
            validators=[_coercible("number")],
            widget=forms.NumberInput(attrs={"step": "any"}),
        )
    if spec.type == "json":
        return forms.CharField(
            label=spec.name,
            required=required,
            help_text=help_text or 'A JSON value, e.g. {"id": 42}',
            validators=[_coercible("json")],
            initial=json.dumps(initial, ensure_ascii=False) if initial is not None else None,
            widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
        )
    return forms.CharField(
        label=spec.name,
        required=required,
        initial=initial,
        strip=False,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def run_inputs_values(form: forms.Form, definition: Definition) -> dict[str, object]:
    """The values to start the run with (blank means "use the default")."""
    values: dict[str, object] = {}
    for spec in definition.inputs:
        if spec.type == "boolean":
            values[spec.name] = "true" if form.cleaned_data.get(spec.name) else "false"
        else:
            values[spec.name] = form.cleaned_data.get(spec.name)
    return values
