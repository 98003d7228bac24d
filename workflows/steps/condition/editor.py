"""The `condition` step in the editor: its menu entry, card, panel fields and form parsing."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from workflows.models import Workflow
from workflows.rendering import references
from workflows.steps.base import END
from workflows.steps.condition.config import OP_LABELS, TYPE, UNARY_OPS
from workflows.steps.form import Parsed, count, text_value

LABEL = "Condition"
HINT = "branch"
# On the run page, beside each step.
SHORT_LABEL = "Condition"
# Its badge on the cards: a tone of components.css (.badge-<tone>), "" for the plain one.
TONE = "info"
BLURB = "Chooses which step runs next."
EMPTY_SUMMARY = ""
PANEL = "steps/condition/panel.html"
# How a field is named (to whoever edits it at the same time,
# workflows/builder/draft_changes.py); the history's diff shows a step's fields in this order
# (workflows/builder/versions.py).
FIELD_LABELS = {
    "cases": "the cases",
    "else": "Otherwise go to",
    "left": "Value",
    "op": "Test",
    "right": "Compared with",
    "goto": "Then go to",
}
# Its fields that hold a list of objects addressed by index (paths "cases.<i>.<field>"), with the
# word for one of them ("Case 2's Value").
LIST_FIELDS = {"cases": "Case"}
MAX_CASES = 50
CASE_FIELDS = ("left", "op", "right", "goto")
CASE_FIELD_RE = re.compile(r"^case-(\d+)-(left|op|right|goto)$")


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    return {
        "key": key,
        "type": TYPE,
        "title": "",
        "cases": [_first_case(previous_json, previous or "", END)],
        "else": following or END,
    }


def summary(step: dict) -> str:
    return ""  # its branches say it


def branches(step: dict) -> list[tuple[str, str, str]]:
    found = [
        (case_label(case), str(case.get("goto") or "?"), "true")
        for case in _cases_of(step)
        if isinstance(case, dict)
    ]
    # "else" is the ordinary way on, not a failure: no alarming colour.
    return [*found, ("else", str(step.get("else") or "?"), "")]


def case_label(case: dict) -> str:
    """How a case reads on its chip: "billing" for an equals, else "left op right"."""
    op = case.get("op")
    right = case.get("right")
    right = "" if right is None else str(right)
    left = str(case.get("left") or "")
    if op == "equals" and right:
        return right
    if op in UNARY_OPS:
        return f"{_short(left)} {_LABELS[str(op)]}"
    return f"{_LABELS.get(str(op), op)} {right}".strip()


_LABELS: dict[str, str] = dict(OP_LABELS.items())


def _short(text: str) -> str:
    refs = references(text)
    if len(refs) == 1 and refs[0].text == text.strip():
        return refs[0].dotted
    return text if len(text) <= 24 else text[:23] + "…"


def json_properties(step: dict) -> dict[str, dict]:
    # Its output ({"case": 0, "goto": "reply"}) only records the route taken: not offered.
    return {}


def posted_path(name: str) -> str | None:
    """The field (path under the step) a posted form field writes; None: not one of its fields.

    "case_count" comes with the whole form (without JavaScript), which writes every case."""
    if name == "else":
        return name
    if name == "case_count":
        return "cases"
    match = CASE_FIELD_RE.match(name)
    return f"cases.{match.group(1)}.{match.group(2)}" if match else None


def form_name(path: str) -> str | None:
    """The form field that shows `path` (under the step); None: redraw the whole panel (a case
    added or removed, or a path it cannot read)."""
    if path == "cases":
        return None
    if path.startswith("cases."):
        parts = path.split(".", 2)
        return f"case-{parts[1]}-{parts[2]}" if len(parts) == 3 and parts[1].isdigit() else None
    return path


def action_path(action: str) -> tuple[str, str] | None:
    """The field a button writes, and the form field whose revision it was drawn at."""
    if action == "add_case" or action.startswith("remove_case:"):
        return ("cases", "cases")
    return None


def fields(step: dict) -> list[str]:
    names = ["cases", "else"]
    for index in range(len(_cases_of(step))):
        names += [f"cases[{index}].{name}" for name in CASE_FIELDS]
    return names


def template_values(step: dict) -> dict[str, str]:
    values = {}
    for index, case in enumerate(_cases_of(step)):
        if isinstance(case, dict):
            for side in ("left", "right"):
                if isinstance(case.get(side), str):
                    values[f"cases[{index}].{side}"] = case[side]
    return values


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    if step.get("else") == old:
        step["else"] = new
    for case in _cases_of(step):
        if isinstance(case, dict):
            case["left"] = rewrite(case.get("left"))
            if "right" in case:
                case["right"] = rewrite(case["right"])
            if case.get("goto") == old:
                case["goto"] = new


def _cases_of(step: dict) -> list[Any]:
    cases = step.get("cases")
    return cases if isinstance(cases, list) else []


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    step["cases"] = _cases_from_post(current, data)
    if "else" in data:
        step["else"] = text_value(data, "else", strip=True)


def _case(op: str, left: str, right: str, goto: str) -> dict:
    case: dict[str, object] = {"left": left, "op": op}
    if op not in UNARY_OPS or right:
        case["right"] = right
    case["goto"] = goto
    return case


def _cases_from_post(current: dict, data: QueryDict) -> list[dict]:
    stored = [case if isinstance(case, dict) else {} for case in _cases_of(current)]
    if "case_count" in data:  # the whole form (without JavaScript): every case as posted
        cases = []
        for index in range(count(data, "case_count", MAX_CASES)):
            prefix = f"case-{index}-"
            cases.append(
                _case(
                    text_value(data, prefix + "op", strip=True) or "equals",
                    text_value(data, prefix + "left"),
                    text_value(data, prefix + "right"),
                    text_value(data, prefix + "goto", strip=True),
                )
            )
        return cases
    cases = copy.deepcopy(stored)
    for name in data:
        match = CASE_FIELD_RE.match(name)
        if not match or int(match.group(1)) >= len(cases):
            continue
        case = cases[int(match.group(1))]
        field_name = match.group(2)
        value = text_value(data, name, strip=field_name in ("op", "goto"))
        if field_name == "right" and not value and case.get("op") in UNARY_OPS:
            case.pop("right", None)
        else:
            case[field_name] = value or ("equals" if field_name == "op" else value)
    return cases


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    """The panel's buttons: "add_case", and "remove_case:<index>"."""
    if action == "add_case":
        return case_add(step, previous=previous)
    if action.startswith("remove_case:"):
        try:
            index = int(action.split(":", 1)[1])
        except ValueError:
            index = -1
        return case_remove(step, index=index)
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    return {
        "case_rows": [
            {
                "index": i,
                "case": case if isinstance(case, dict) else {},
                "names": {name: f"case-{i}-{name}" for name in CASE_FIELDS},
                **{name: slots[f"cases[{i}].{name}"] for name in CASE_FIELDS},
            }
            for i, case in enumerate(_cases_of(step))
        ],
        "ops": list(OP_LABELS.items()),
    }


def _first_case(fields: dict[str, dict], key: str, goto: str) -> dict:
    """A new condition's case: a JSON answer (`fields`, what the previous step's kind says its
    answer holds) is compared by one field (the first one with choices, else the first text
    field), since its whole JSON never equals a word; text by its contents."""
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
    cases = _cases_of(result)
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
    cases = _cases_of(result)
    if 0 <= index < len(cases):
        cases.pop(index)
    result["cases"] = cases
    return result
