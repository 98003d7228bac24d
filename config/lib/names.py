"""Names people give things (a workflow, a step's title, a dataset, a check, a workspace, a
trigger, an API token, a person): refused when they hold an invisible bidi embedding, override
or isolate control (U+202A–U+202E, U+2066–U+2069).

Such a character reverses or reorders the text after it wherever the name is shown as plain
text, where no <bdi> can isolate it: the browser tab's title, a confirmation dialog ("Delete all
runs of …" read backwards), an email's subject, the audit log. Right-to-left names (Arabic,
Hebrew) need none of them and stay welcome; so do the left-to-right and right-to-left marks
(U+200E, U+200F), which change the direction of nothing but themselves. Pages still show
names in <bdi>, so that a right-to-left name does not reorder the text around it.

One rule, three faces: `name_direction_problem` for services, `validate_name_direction` for
Django form and model fields, `DirectionSafe` for pydantic models (the API's schemas and the
workflow definition).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def name_direction_problem(value: str) -> str:
    """Why `value` cannot be a name ("" when it can): the bidi controls it holds, by code point."""
    found = sorted(set(BIDI_CONTROLS.findall(value)))
    if not found:
        return ""
    points = ", ".join(f"U+{ord(character):04X}" for character in found)
    return f"Names cannot contain invisible text-direction characters ({points}): remove them."


def validate_name_direction(value: str) -> None:
    """A Django validator for a name's form or model field."""
    problem = name_direction_problem(value)
    if problem:
        raise ValidationError(problem, code="bidi_control")


def _pydantic_check(value: str) -> str:
    problem = name_direction_problem(value)
    if problem:
        # A custom error, so that the message is not prefixed with pydantic's "Value error, ".
        raise PydanticCustomError("bidi_control", problem)
    return value


# For a pydantic field: `name: Annotated[str, DirectionSafe]`.
DirectionSafe = AfterValidator(_pydantic_check)
