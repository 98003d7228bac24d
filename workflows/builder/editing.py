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

from workflows.builder.definition import NAME_RE, PAYLOAD, RESERVED_NAMES
from workflows.rendering import REFERENCE_RE
from workflows.steps import STEP_TYPES, kind_of


class EditError(ValueError):
    """The edit itself makes no sense (an index out of range, a bad order)."""


# --- Reading a raw draft ------------------------------------------------------


def steps_of(definition: object) -> list[Any]:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return steps if isinstance(steps, list) else []


def inputs_of(definition: object) -> list[Any]:
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


def new_step(
    kind: str, *, key: str, previous_step: object, previous: str | None, following: str | None
) -> dict:
    """A fresh step of `kind` that reads the previous output when there is one."""
    module = STEP_TYPES.get(kind)
    if module is None:
        raise EditError(f'Unknown step kind "{kind}".')
    # What the previous step answers, as its own kind reads it: a kind never reads another's fields.
    previous_kind = kind_of(previous_step)
    step: dict = module.new_step(
        key=key,
        previous=previous,
        previous_json=previous_kind.json_properties(previous_step) if previous_kind else {},
        following=following,
    )
    return step


def step_insert(definition: dict, *, position: int, kind: str) -> tuple[dict, int]:
    """Insert a new step before `position` (0 = first, len = last); returns (draft, its index)."""
    result = copy.deepcopy(definition)
    steps = steps_of(result)
    if not 0 <= position <= len(steps):
        raise EditError("There is no such place in the workflow.")
    previous = step_key(steps[position - 1]) if position > 0 else None
    following = step_key(steps[position]) if position < len(steps) else None
    step = new_step(
        kind,
        key=unique_name(result),
        previous_step=steps[position - 1] if position > 0 else None,
        previous=previous or None,
        following=following or None,
    )
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
        if step.get("next") == old:
            step["next"] = new
        if step.get("on_error") == old:
            step["on_error"] = new
        if isinstance(step.get("fallback"), str):
            step["fallback"] = rewrite(step["fallback"])
        module = STEP_TYPES.get(str(step.get("type")))
        if module is not None:
            module.rename(step, rewrite, old, new)
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


# --- Helpers for the views ------------------------------------------------------------


def index_of_key(definition: dict, key: str) -> int | None:
    for index, step in enumerate(steps_of(definition)):
        if step_key(step) == key:
            return index
    return None


def later_keys(definition: dict, index: int) -> list[str]:
    return [key for key in (step_key(step) for step in steps_of(definition)[index + 1 :]) if key]
