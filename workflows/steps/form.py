"""What the kinds' editor parts share: reading posted fields and the plain "then" of a step.

The editor autosaves every change, including invalid ones, so parsing never
refuses: a value that cannot be read as what the field needs is kept as
typed and reported as a field error (see workflows/pages/forms.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict


@dataclass
class Parsed:
    value: Any
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def slot_id(field_path: str) -> str:
    """The id of the element that lists a field's problems, e.g. "err-cases-0-left"."""
    return "err-" + (re.sub(r"[^a-z0-9]+", "-", field_path.lower()).strip("-") or "general")


def text_value(data: QueryDict, name: str, *, strip: bool = False) -> str:
    value = data.get(name, "")
    # Browsers send \r\n in textareas; the definition keeps plain \n.
    value = value.replace("\r\n", "\n")
    return value.strip() if strip else value


def count(data: QueryDict, name: str, limit: int) -> int:
    try:
        return max(0, min(int(data.get(name, "0")), limit))
    except ValueError:
        return 0


def number(parsed: Parsed, data: QueryDict, name: str, *, integer: bool) -> object:
    raw = data.get(name, "").strip()
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        parsed.error(name, "Enter a whole number." if integer else "Enter a number.")
        return raw


def next_from_post(step: dict, data: QueryDict) -> None:
    """The "Then" select of a step that goes on to the following step unless told otherwise."""
    if "next" in data:
        target = text_value(data, "next", strip=True)
        if target:
            step["next"] = target
        else:
            step.pop("next", None)


def next_branches(step: dict) -> list[tuple[str, str, str]]:
    """The card's chip for an explicit `next`: (label, target, tone)."""
    target = step.get("next")
    return [("then", target, "")] if isinstance(target, str) and target else []


def text_of(step: dict, name: str) -> str:
    value = step.get(name)
    return value if isinstance(value, str) else ""


def summary_of(text: str) -> str:
    """A card's one-line summary of a longer text."""
    text = " ".join(text.split())
    return text[:160] + ("…" if len(text) > 160 else "")
