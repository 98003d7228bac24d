"""One edit to a draft definition, as pure functions: dict in, new dict out.

The editor's views stay thin by calling these, and they are easy to test.
They work on the raw draft, which may not validate (an edit is never refused
for making the draft invalid: the validator reports it and the person fixes
it), so every lookup here is defensive about shapes.

Renaming a step or an input rewrites the references to it (`{{ old }}`,
`{{ old.field | json }}`) and the jumps that name it, but only when the
rename is unambiguous: the old name was used once and the new one is a free,
valid name. Otherwise references are left as they are and the validator
points at them.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from workflows.definition import END, NAME_RE, PAYLOAD, RESERVED_NAMES
from workflows.rendering import REFERENCE_RE

STEP_KINDS = ("llm", "template", "condition")
KIND_LABELS = {"llm": "LLM prompt", "template": "Template", "condition": "Condition"}
DEFAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


class EditError(ValueError):
    """The edit itself makes no sense (an index out of range, a bad order)."""


# --- Reading a raw draft ------------------------------------------------------


def steps_of(definition: dict) -> list[Any]:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return steps if isinstance(steps, list) else []


def inputs_of(definition: dict) -> list[Any]:
    inputs = definition.get("inputs") if isinstance(definition, dict) else None
    return inputs if isinstance(inputs, list) else []


def step_key(step: object) -> str:
    key = step.get("key") if isinstance(step, dict) else None
    return key if isinstance(key, str) else ""


def input_name(spec: object) -> str:
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) else ""


def names_in_use(definition: dict) -> list[str]:
    return [
        *(input_name(spec) for spec in inputs_of(definition)),
        *(step_key(step) for step in steps_of(definition)),
    ]


def variables_at_raw(definition: dict, index: int) -> list[str]:
    """`definition.variables_at` for a draft that does not parse: inputs, earlier steps, payload."""
    names = [input_name(spec) for spec in inputs_of(definition)]
    names += [step_key(step) for step in steps_of(definition)[:index]]
    return [*dict.fromkeys(name for name in names if name), PAYLOAD]


# --- Steps ----------------------------------------------------------------------


def unique_name(definition: dict, base: str = "step") -> str:
    """`base_N`, the first one free, counting from the number of steps + 1."""
    taken = {name.lower() for name in names_in_use(definition)} | RESERVED_NAMES
    number = len(steps_of(definition)) + 1
    while f"{base}_{number}".lower() in taken:
        number += 1
    return f"{base}_{number}"


def new_step(kind: str, *, key: str, previous: str | None, following: str | None) -> dict:
    """A fresh step of `kind` that reads the previous output when there is one."""
    if kind == "llm":
        return {
            "key": key,
            "type": "llm",
            "title": "",
            "system": "",
            "prompt": "",
            "temperature": 0.7,
            "max_tokens": 1024,
        }
    if kind == "template":
        return {
            "key": key,
            "type": "template",
            "title": "",
            "template": f"{{{{ {previous} }}}}" if previous else "",
        }
    if kind == "condition":
        return {
            "key": key,
            "type": "condition",
            "title": "",
            "cases": [
                {
                    "left": f"{{{{ {previous} }}}}" if previous else "",
                    "op": "contains",
                    "right": "yes",
                    "goto": END,
                }
            ],
            "else": following or END,
        }
    raise EditError(f'Unknown step kind "{kind}".')


def step_insert(definition: dict, *, position: int, kind: str) -> tuple[dict, int]:
    """Insert a new step before `position` (0 = first, len = last); returns (draft, its index)."""
    result = copy.deepcopy(definition)
    steps = steps_of(result)
    if not 0 <= position <= len(steps):
        raise EditError("There is no such place in the workflow.")
    previous = step_key(steps[position - 1]) if position > 0 else None
    following = step_key(steps[position]) if position < len(steps) else None
    step = new_step(
        kind, key=unique_name(result), previous=previous or None, following=following or None
    )
    if kind == "condition" and position > 0:
        step["cases"] = [_first_case(steps[position - 1], previous or "", END)]
    steps.insert(position, step)
    result["steps"] = steps
    return result, position


def step_move(definition: dict, *, index: int, offset: int) -> tuple[dict, int]:
    """Move a step up (offset -1) or down (+1); returns (draft, its new index)."""
    steps = steps_of(definition)
    target = index + offset
    if not 0 <= index < len(steps):
        raise EditError("There is no such step.")
    if not 0 <= target < len(steps):
        return copy.deepcopy(definition), index  # already first / last: nothing to do
    order = list(range(len(steps)))
    order.insert(target, order.pop(index))
    return steps_reorder(definition, order), target


def steps_reorder(definition: dict, order: list[int]) -> dict:
    """Put the steps in `order`, a permutation of their current indexes (from drag and drop)."""
    steps = steps_of(definition)
    if sorted(order) != list(range(len(steps))):
        raise EditError("The new order must list every step once.")
    result = copy.deepcopy(definition)
    result["steps"] = [copy.deepcopy(steps[index]) for index in order]
    return result


def step_remove(definition: dict, *, index: int) -> tuple[dict, dict]:
    """Remove a step; returns (draft, the removed step) so that it can be put back."""
    result = copy.deepcopy(definition)
    steps = steps_of(result)
    if not 0 <= index < len(steps):
        raise EditError("There is no such step.")
    removed = steps.pop(index)
    result["steps"] = steps
    return result, removed


def step_restore(definition: dict, *, index: int, step: dict) -> tuple[dict, int]:
    """Put a removed step back where it was (undo); returns (draft, its index)."""
    result = copy.deepcopy(definition)
    steps = steps_of(result)
    index = max(0, min(index, len(steps)))
    steps.insert(index, copy.deepcopy(step))
    result["steps"] = steps
    return result, index


def step_replace(definition: dict, *, index: int, step: dict) -> dict:
    """Replace the step at `index` with the edited one, following a key rename."""
    steps = steps_of(definition)
    if not 0 <= index < len(steps):
        raise EditError("There is no such step.")
    old_key, new_key = step_key(steps[index]), step_key(step)
    result = copy.deepcopy(definition)
    result["steps"][index] = copy.deepcopy(step)
    if old_key != new_key and _rename_is_safe(definition, old_key, new_key):
        result = name_rename(result, old_key, new_key)
    return result


def _rename_is_safe(definition: dict, old: str, new: str) -> bool:
    names = [name.lower() for name in names_in_use(definition)]
    return (
        bool(old)
        and names.count(old.lower()) == 1
        and bool(NAME_RE.fullmatch(new))
        and new.lower() not in RESERVED_NAMES
        and new.lower() not in names
    )


def name_rename(definition: dict, old: str, new: str) -> dict:
    """Rewrite every reference to `old` (templates and jumps) as `new`."""
    result = copy.deepcopy(definition)

    def rewrite(text: object) -> object:
        return rename_references(text, old, new) if isinstance(text, str) else text

    for step in steps_of(result):
        if not isinstance(step, dict):
            continue
        for field in ("prompt", "system", "template"):
            if field in step:
                step[field] = rewrite(step[field])
        if step.get("next") == old:
            step["next"] = new
        if step.get("else") == old:
            step["else"] = new
        for case in step.get("cases") if isinstance(step.get("cases"), list) else []:
            if isinstance(case, dict):
                case["left"] = rewrite(case.get("left"))
                if "right" in case:
                    case["right"] = rewrite(case["right"])
                if case.get("goto") == old:
                    case["goto"] = new
    if "output" in result:
        result["output"] = rewrite(result["output"])
    return result


def rename_references(template: str, old: str, new: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("name") != old:
            return match.group(0)
        start = match.start("name") - match.start()
        text = match.group(0)
        return text[:start] + new + text[start + len(old) :]

    return REFERENCE_RE.sub(substitute, template)


# --- Inputs, output, name -------------------------------------------------------


def inputs_replace(definition: dict, inputs: list[dict]) -> dict:
    """Set the inputs (edited in place, so index i is still input i), following renames."""
    before = inputs_of(definition)
    result = copy.deepcopy(definition)
    result["inputs"] = copy.deepcopy(inputs)
    if len(before) == len(inputs):
        for old_spec, new_spec in zip(before, inputs, strict=True):
            old, new = input_name(old_spec), input_name(new_spec)
            if old != new and _rename_is_safe(definition, old, new):
                result = name_rename(result, old, new)
    return result


def input_add(definition: dict) -> dict:
    result = copy.deepcopy(definition)
    inputs = inputs_of(result)
    inputs.append({"name": unique_name(result, "input"), "type": "text", "required": True})
    result["inputs"] = inputs
    return result


def input_remove(definition: dict, *, index: int) -> dict:
    result = copy.deepcopy(definition)
    inputs = inputs_of(result)
    if not 0 <= index < len(inputs):
        raise EditError("There is no such input.")
    inputs.pop(index)
    result["inputs"] = inputs
    return result


def output_set(definition: dict, output: str | None) -> dict:
    result = copy.deepcopy(definition)
    result["output"] = output
    return result


def settings_set(definition: dict, *, name: str, description: str) -> dict:
    result = copy.deepcopy(definition)
    result["name"] = name
    result["description"] = description
    return result


# --- Conditions -------------------------------------------------------------------


def _first_case(previous: object, key: str, goto: str) -> dict:
    """A new condition's case: a JSON answer is compared by one field (the first one with choices,
    else the first text field), since its whole JSON never equals a word; text by its contents."""
    step = previous if isinstance(previous, dict) else {}
    response_format = (
        step.get("response_format") if isinstance(step.get("response_format"), dict) else {}
    )
    schema = response_format.get("schema") if response_format.get("type") == "json_schema" else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    fields = (
        {name: spec for name, spec in properties.items() if isinstance(spec, dict)}
        if isinstance(properties, dict)
        else {}
    )
    chosen = next(
        (
            name
            for name, spec in fields.items()
            if isinstance(spec.get("enum"), list) and spec["enum"]
        ),
        None,
    )
    if chosen is not None:
        return {
            "left": f"{{{{ {key}.{chosen} }}}}",
            "op": "equals",
            "right": str(fields[chosen]["enum"][0]),
            "goto": goto,
        }
    text = next((name for name, spec in fields.items() if spec.get("type") == "string"), None)
    field = text or next(iter(fields), None)
    if field is not None:
        return {"left": f"{{{{ {key}.{field} }}}}", "op": "contains", "right": "yes", "goto": goto}
    return {
        "left": f"{{{{ {key} }}}}" if key else "",
        "op": "contains",
        "right": "yes",
        "goto": goto,
    }


def case_add(step: dict, *, previous: str | None) -> dict:
    result = copy.deepcopy(step)
    cases = result.get("cases") if isinstance(result.get("cases"), list) else []
    # A further case usually tests the same thing as the one before it (another category).
    last = cases[-1] if cases and isinstance(cases[-1], dict) else {}
    left = last.get("left") if isinstance(last.get("left"), str) and last.get("left") else None
    cases.append(
        {
            "left": left or (f"{{{{ {previous} }}}}" if previous else ""),
            "op": "equals",
            "right": "",
            "goto": END,
        }
    )
    result["cases"] = cases
    return result


def case_remove(step: dict, *, index: int) -> dict:
    result = copy.deepcopy(step)
    cases = result.get("cases") if isinstance(result.get("cases"), list) else []
    if 0 <= index < len(cases):
        cases.pop(index)
    result["cases"] = cases
    return result


# --- JSON schema from a sample ------------------------------------------------------


def schema_from_sample(sample: object) -> dict[str, Any]:
    """A strict JSON schema that `sample` (a JSON object) satisfies.

    Strict, as OpenAI's structured outputs require: every object has
    "additionalProperties": false and lists all its properties as required.
    A key that only some objects of a list have is kept, required, and
    allowed to be null; a null sample value becomes a nullable string.
    """
    if not isinstance(sample, dict):
        raise EditError('The sample must be a JSON object, such as {"category": "billing"}.')
    return _schema_of(sample)


_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema_of(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {str(key): _schema_of(item) for key, item in value.items()},
            "required": [str(key) for key in value],
            "additionalProperties": False,
        }
    if isinstance(value, list):
        items = [_schema_of(item) for item in value]
        merged = items[0] if items else {"type": "string"}
        for item in items[1:]:
            merged = _merge(merged, item)
        return {"type": "array", "items": merged}
    if value is None:
        return {"type": ["string", "null"]}
    return {"type": _JSON_TYPES.get(type(value), "string")}


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    return list(kind) if isinstance(kind, list) else [kind]


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One schema accepting what `a` and what `b` accept (for the items of a list)."""
    if a == b:
        return a
    if _types(a) == ["object"] and _types(b) == ["object"]:
        properties: dict[str, Any] = {}
        for name in [
            *a["properties"],
            *(name for name in b["properties"] if name not in a["properties"]),
        ]:
            if name in a["properties"] and name in b["properties"]:
                properties[name] = _merge(a["properties"][name], b["properties"][name])
            else:
                properties[name] = _nullable(a["properties"].get(name) or b["properties"][name])
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
    if _types(a) == ["array"] and _types(b) == ["array"]:
        return {"type": "array", "items": _merge(a["items"], b["items"])}
    kinds = list(dict.fromkeys([*_types(a), *_types(b)]))
    if "integer" in kinds and "number" in kinds:
        kinds.remove("integer")
    structured = [kind for kind in kinds if kind in ("object", "array")]
    if structured:
        # A value that is sometimes structured and sometimes not: keep the structure,
        # allow null, and let the person refine it.
        return _nullable(a if _types(a)[0] in structured else b)
    return {"type": kinds[0] if len(kinds) == 1 else kinds}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = _types(schema)
    if "null" in kinds:
        return schema
    return {**schema, "type": [*kinds, "null"]}


# --- Helpers for the views ------------------------------------------------------------


def index_of_key(definition: dict, key: str) -> int | None:
    for index, step in enumerate(steps_of(definition)):
        if step_key(step) == key:
            return index
    return None


def later_keys(definition: dict, index: int) -> list[str]:
    return [key for key in (step_key(step) for step in steps_of(definition)[index + 1 :]) if key]
