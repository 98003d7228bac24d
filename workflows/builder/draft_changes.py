"""Field paths of a draft, what changed between two drafts, and who changed each field last.

Two people edit one draft. Every write is field-level: it names the fields
it changes (paths such as "steps.triage.title", "inputs.0.description",
"name") and, for each, the draft revision the person's value was based on.
Each write records, per changed path, the revision, the person and the time
(`Workflow.draft_changes`). A write based on an older revision that touches a
path someone else changed since is a conflict; a write that touches only
paths nobody else changed is applied, however old its base.

Paths:
  name, description, output, <other top-level key>
  inputs                   how many inputs (adding or removing one shifts the others)
  inputs.<i>.<field>       an input is addressed by its index
  steps                    the order of the step keys (add, move, delete, rename)
  steps.<key>.<field>      a step's field (an object such as "response_format" as a whole)
  steps.<key>.<list>       how many items a list field of its kind holds (a condition's
                           "cases": the kind's LIST_FIELDS)
  steps.<key>.<list>.<i>.<field>
A renamed step keeps its history: its paths move to the new key and
"renamed:<old>" points at the new key, so a write from a form that still
knows the old key finds the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflows import steps as step_kinds
from workflows.builder import editing

MAX_ENTRIES = 400
RENAMED = "renamed:"

# The fields every step has and the workflow's own; each kind labels its fields (FIELD_LABELS).
FIELD_LABELS = {
    "title": "Title",
    "key": "Name",
    "next": "Then",
    "name": "Name",
    "description": "Description",
    "output": "Output",
    "type": "Type",
    "default": "Default",
    "required": "Required",
    "steps": "the steps",
    "inputs": "the inputs",
}


@dataclass
class FieldConflict:
    """Someone else changed `path` after the revision the refused value was based on."""

    path: str
    label: str
    revision: int
    user_id: int | None
    name: str
    at: datetime
    structural: bool = (
        False  # the change moved the field (inputs or cases added/removed), not its value
    )


def flatten(definition: object) -> dict[str, Any]:
    """Every path of the draft with its value (JSON-comparable)."""
    flat: dict[str, Any] = {}
    if not isinstance(definition, dict):
        return flat
    for name, value in definition.items():
        if name not in ("inputs", "steps"):
            flat[name] = value
    inputs = editing.inputs_of(definition)
    flat["inputs"] = len(inputs)
    for index, spec in enumerate(inputs):
        for name, value in spec.items() if isinstance(spec, dict) else []:
            flat[f"inputs.{index}.{name}"] = value
    steps = editing.steps_of(definition)
    flat["steps"] = [editing.step_key(step) for step in steps]
    for step in steps:
        if not isinstance(step, dict):
            continue
        prefix = f"steps.{editing.step_key(step)}."
        kind = step_kinds.kind_of(step)
        lists = kind.LIST_FIELDS if kind else {}
        for name, value in step.items():
            if name in lists and isinstance(value, list):
                flat[prefix + name] = len(value)
                for index, entry in enumerate(value):
                    for field, item in entry.items() if isinstance(entry, dict) else []:
                        flat[f"{prefix}{name}.{index}.{field}"] = item
            else:
                flat[prefix + name] = value
    return flat


def renamed_steps(before: object, after: object) -> dict[str, str]:
    """{old key: new key} when the step list kept its length and order but some keys changed."""
    old = [
        editing.step_key(step)
        for step in editing.steps_of(before if isinstance(before, dict) else {})
    ]
    new = [
        editing.step_key(step)
        for step in editing.steps_of(after if isinstance(after, dict) else {})
    ]
    if len(old) != len(new):
        return {}
    changed = {a: b for a, b in zip(old, new, strict=True) if a != b and a and b}
    if set(changed) & set(new) or len(changed) > 1:
        return {}  # a reorder, not a rename
    return changed


def changed_paths(before: object, after: object) -> tuple[set[str], dict[str, str]]:
    """The paths whose value differs, comparing a renamed step with itself; and the renames."""
    renames = renamed_steps(before, after)
    old = flatten(before)
    for old_key, new_key in renames.items():
        prefix = f"steps.{old_key}."
        for path in [path for path in old if path.startswith(prefix)]:
            old[f"steps.{new_key}." + path[len(prefix) :]] = old.pop(path)
    new = flatten(after)
    missing = object()
    changed = {
        path for path in old.keys() | new.keys() if old.get(path, missing) != new.get(path, missing)
    }
    return changed, renames


def record(
    changes: dict,
    *,
    paths: set[str],
    renames: dict[str, str],
    revision: int,
    user_id: int | None,
    name: str,
    at: datetime,
) -> dict:
    """`changes` with `paths` marked as changed at `revision` by this person (bounded in size)."""
    result = dict(changes)
    for old_key, new_key in renames.items():
        prefix = f"steps.{old_key}."
        for path in [path for path in result if path.startswith(prefix)]:
            result[f"steps.{new_key}." + path[len(prefix) :]] = result.pop(path)
        result[RENAMED + old_key] = {"to": new_key, "rev": revision}
    entry = {"rev": revision, "user": user_id, "name": name, "at": at.isoformat()}
    for path in paths:
        result[path] = entry
    if len(result) > MAX_ENTRIES:
        newest = sorted(result.items(), key=lambda item: item[1].get("rev", 0), reverse=True)[
            :MAX_ENTRIES
        ]
        result = dict(newest)
    return result


def current_key(changes: dict, key: str, *, since: int | None = None) -> str:
    """The key a step has now, following renames from the key a form knew it by.

    Only renames made after the form was drawn (revision `since`) are followed: a form drawn later
    already knows the new key, and a key that was renamed away and then given to another step
    must lead to that other step, not to the renamed one."""
    seen = set()
    while RENAMED + key in changes and key not in seen:
        pointer = changes[RENAMED + key]
        if since is not None and int(pointer.get("rev", 0)) <= since:
            break
        seen.add(key)
        key = str(pointer.get("to", key))
    return key


def _list_fields() -> dict[str, str]:
    """Every kind's list fields (a condition's "cases"), with the word for one item ("Case")."""
    return {name: word for kind in step_kinds.KINDS for name, word in kind.LIST_FIELDS.items()}


def _labels() -> dict[str, str]:
    return {
        **FIELD_LABELS,
        **{name: text for kind in step_kinds.KINDS for name, text in kind.FIELD_LABELS.items()},
    }


def _parents(path: str) -> list[str]:
    """Paths whose change moves this one: the inputs'
    count for an input, the cases' count for a case."""
    parts = path.split(".")
    if parts[0] == "inputs" and len(parts) > 2:
        return ["inputs"]
    if parts[0] == "steps" and len(parts) > 4 and parts[2] in _list_fields():
        return [f"steps.{parts[1]}.{parts[2]}"]
    return []


def _is_list_count(path: str) -> bool:
    parts = path.split(".")
    return len(parts) == 3 and parts[0] == "steps" and parts[2] in _list_fields()


def conflicts(
    changes: dict, bases: dict[str, int | None], user_id: int | None
) -> list[FieldConflict]:
    """The touched paths (with the revision each was based on) that someone else changed since."""
    found = []
    for path, base in bases.items():
        if base is None:
            continue
        for candidate in (path, *_parents(path)):
            entry = changes.get(candidate)
            if not isinstance(entry, dict) or "user" not in entry:
                continue
            if entry["rev"] > base and entry["user"] != user_id:
                found.append(
                    FieldConflict(
                        path=path,
                        label=label(candidate),
                        revision=entry["rev"],
                        user_id=entry["user"],
                        name=entry.get("name") or "Someone",
                        at=datetime.fromisoformat(entry["at"]),
                        structural=candidate != path
                        or candidate in ("steps", "inputs")
                        or _is_list_count(candidate),
                    )
                )
                break
    return found


def changed_since(changes: dict, revision: int, user_id: int | None) -> set[str]:
    """Paths someone other than `user_id` changed after
    `revision` (what the sync poll refreshes)."""
    return {
        path
        for path, entry in changes.items()
        if isinstance(entry, dict)
        and "user" in entry
        and entry["rev"] > revision
        and entry["user"] != user_id
    }


def label(path: str) -> str:
    """How a person reads a path: "Title", "Input 1's Description", "Case 2's Value"."""
    parts = path.split(".")
    labels, lists = _labels(), _list_fields()
    if parts[0] == "inputs" and len(parts) > 2 and parts[1].isdigit():
        return f"Input {int(parts[1]) + 1}’s {labels.get(parts[2], parts[2])}"
    if parts[0] == "steps" and len(parts) > 4 and parts[2] in lists and parts[3].isdigit():
        return f"{lists[parts[2]]} {int(parts[3]) + 1}’s {labels.get(parts[4], parts[4])}"
    if parts[0] == "steps" and len(parts) > 2:
        return labels.get(parts[2], parts[2])
    return labels.get(parts[0], parts[0])
