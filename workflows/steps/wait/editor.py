"""The `wait` step in the editor: its menu entry, card, panel fields and form parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from workflows.models import Workflow
from workflows.steps.form import Parsed, next_branches, next_from_post, text_value
from workflows.steps.wait.config import TYPE

LABEL = "Wait"
HINT = "pause for a while"
SHORT_LABEL = "Wait"
TONE = ""
BLURB = "Pauses the run for a time, or until a time, without holding a worker."
EMPTY_SUMMARY = "Set how long to wait"
PANEL = "steps/wait/panel.html"
FIELD_LABELS = {"seconds": "Seconds", "until": "Until"}
LIST_FIELDS: dict[str, str] = {}


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    return {"key": key, "type": TYPE, "title": "", "seconds": 60}


def summary(step: dict) -> str:
    seconds = step.get("seconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        return f"for {_duration(seconds)}"
    until = step.get("until")
    return f"until {until}" if isinstance(until, str) and until else ""


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    return {}  # text


def posted_path(name: str) -> str | None:
    return name if name in ("seconds", "until", "next") else None


def form_name(path: str) -> str | None:
    return path


def action_path(action: str) -> tuple[str, str] | None:
    return None


def fields(step: dict) -> list[str]:
    return ["seconds", "until", "next"]


def template_values(step: dict) -> dict[str, str]:
    return {"until": step["until"]} if isinstance(step.get("until"), str) else {}


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    if "until" in step:
        step["until"] = rewrite(step["until"])


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "seconds" in data:
        raw = data.get("seconds", "").strip()
        if not raw:
            step.pop("seconds", None)
        else:
            try:
                step["seconds"] = int(raw)
            except ValueError:
                parsed.error("seconds", "Enter a whole number of seconds.")
                step["seconds"] = raw
    if "until" in data:
        until = text_value(data, "until", strip=True)
        if until:
            step["until"] = until
        else:
            step.pop("until", None)
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    seconds = step.get("seconds")
    return {"seconds": seconds if seconds is not None else ""}
