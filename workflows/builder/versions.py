"""What changed between two definitions: a one-line summary and a readable diff.

Publishing proposes `change_summary(previous, draft)` as the version's
summary, and the history page shows `definition_diff` between a version and
its predecessor (or the draft). Steps are matched by key, inputs by name, so
"changed the prompt of draft" is said instead of "step 3 differs". Either
side may be a draft that does not validate: everything here reads raw dicts.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from workflows import steps as step_kinds
from workflows.builder.editing import input_name, inputs_of, step_key, steps_of

# "max_tokens" reads "max tokens".
_FIELD_LABELS = {"next": "next step"}


def _field_order() -> list[str]:
    """Fields shown in this order (each kind's in the order of its FIELD_LABELS); anything else
    a step has comes after them."""
    return [
        "type",
        "title",
        *(name for kind in step_kinds.KINDS for name in kind.FIELD_LABELS),
        "next",
    ]


@dataclass
class DiffLine:
    op: str  # "+", "-", " " or "@" (a gap between hunks)
    text: str


@dataclass
class FieldChange:
    field: str
    before: object
    after: object

    @property
    def label(self) -> str:
        return _FIELD_LABELS.get(self.field, self.field.replace("_", " "))

    @property
    def lines(self) -> list[DiffLine]:
        """A line diff with two lines of context; one-line values show as - / +."""
        before, after = _as_text(self.before), _as_text(self.after)
        diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=2, lineterm=""))
        lines: list[DiffLine] = []
        for line in diff[2:]:  # the ---/+++ header
            if line.startswith("@@"):
                if lines:
                    lines.append(DiffLine("@", "…"))
                continue
            lines.append(DiffLine(line[:1] or " ", line[1:]))
        return lines


@dataclass
class ItemChange:
    """A step (by key) or an input (by name) that was added, removed, changed or moved."""

    name: str
    status: str  # "added", "removed", "changed", "moved"
    kind: str = ""
    fields: list[FieldChange] = field(default_factory=list)
    moved: bool = False


@dataclass
class DefinitionDiff:
    settings: list[FieldChange]
    inputs: list[ItemChange]
    steps: list[ItemChange]
    output: FieldChange | None

    @property
    def is_empty(self) -> bool:
        return not (self.settings or self.inputs or self.steps or self.output)


def definition_diff(before: dict | None, after: dict) -> DefinitionDiff:
    """The changes from `before` to `after`; with no
    `before` (a first version), what `after` holds."""
    first = not isinstance(before, dict)
    before = before if isinstance(before, dict) else {}
    settings = [
        FieldChange(name, before.get(name, ""), after.get(name, ""))
        for name in ("name", "description")
        if not first and (before.get(name) or "") != (after.get(name) or "")
    ]
    output = None
    if before.get("output") != after.get("output"):
        output = FieldChange("output", before.get("output"), after.get("output"))
    return DefinitionDiff(
        settings=settings,
        inputs=_item_changes(
            {input_name(spec): spec for spec in inputs_of(before) if isinstance(spec, dict)},
            {input_name(spec): spec for spec in inputs_of(after) if isinstance(spec, dict)},
            kind_of=lambda spec: str(spec.get("type", "text")),
        ),
        steps=_item_changes(
            {step_key(step): step for step in steps_of(before) if isinstance(step, dict)},
            {step_key(step): step for step in steps_of(after) if isinstance(step, dict)},
            kind_of=lambda step: str(step.get("type", "")),
        ),
        output=output,
    )


def change_summary(before: dict | None, after: dict) -> str:
    """One line for a version: "Added step outline; changed the prompt of draft; …"."""
    if not before:
        keys = [step_key(step) for step in steps_of(after)]
        noun = "step" if len(keys) == 1 else "steps"
        return f"First version: {len(keys)} {noun} ({', '.join(key for key in keys if key)})."
    diff = definition_diff(before, after)
    if diff.is_empty:
        return "No changes since the previous version."
    parts: list[str] = []
    parts += _summarise_items(diff.steps, "step")
    parts += _summarise_items(diff.inputs, "input")
    if diff.output is not None:
        parts.append("changed the output")
    for change in diff.settings:
        parts.append(
            f'renamed the workflow to "{change.after}"'
            if change.field == "name"
            else "changed the description"
        )
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def _summarise_items(changes: list[ItemChange], noun: str) -> list[str]:
    parts = []
    for status, verb in (("added", "added"), ("removed", "removed")):
        names = [change.name for change in changes if change.status == status]
        if names:
            parts.append(f"{verb} {noun}{'s' if len(names) > 1 else ''} {', '.join(names)}")
    for change in changes:
        if change.status == "changed":
            fields = ", ".join(item.label for item in change.fields)
            parts.append(
                f"changed the {fields} of {change.name}" if fields else f"changed {change.name}"
            )
    moved = [change.name for change in changes if change.moved]
    if moved:
        parts.append(f"moved {noun}{'s' if len(moved) > 1 else ''} {', '.join(moved)}")
    return parts


def _item_changes(
    before: dict[str, dict], after: dict[str, dict], *, kind_of: Any
) -> list[ItemChange]:
    changes: list[ItemChange] = []
    moved = _moved(list(before), list(after))
    for name, item in after.items():
        if name not in before:
            changes.append(ItemChange(name, "added", kind_of(item)))
            continue
        fields = _field_changes(before[name], item)
        if fields or name in moved:
            changes.append(
                ItemChange(
                    name,
                    "changed" if fields else "moved",
                    kind_of(item),
                    fields,
                    moved=name in moved,
                )
            )
    # Removed items are listed where they were.
    for position, (name, item) in enumerate(before.items()):
        if name not in after:
            changes.insert(min(position, len(changes)), ItemChange(name, "removed", kind_of(item)))
    return changes


def _moved(before: list[str], after: list[str]) -> set[str]:
    """Names whose order changed: those outside the longest common ordering."""
    common_before = [name for name in before if name in after]
    common_after = [name for name in after if name in before]
    matcher = difflib.SequenceMatcher(a=common_before, b=common_after, autojunk=False)
    kept = {
        name
        for block in matcher.get_matching_blocks()
        for name in common_before[block.a : block.a + block.size]
    }
    return set(common_after) - kept


def _field_changes(before: dict, after: dict) -> list[FieldChange]:
    names = [*_field_order(), *sorted(set(before) | set(after))]
    changes = []
    for name in dict.fromkeys(names):
        if name == "key" or name not in before and name not in after:
            continue
        if _normal(before.get(name)) != _normal(after.get(name)):
            changes.append(FieldChange(name, before.get(name), after.get(name)))
    return changes


def _normal(value: object) -> object:
    # "" and a missing field read the same to a person (an empty system prompt).
    return None if value == "" else value


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)
