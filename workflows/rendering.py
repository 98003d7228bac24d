"""Variable references in templates: `{{ name }}`, `{{ step.field.0 }}`, `{{ name | json }}`.

Rendering is one pass of regex substitution and nothing more: no expressions,
no attribute access, no second pass. Text that arrives through a variable (a
user's input, an LLM's output) is therefore never interpreted as a template,
so a ticket containing "{{ ticket }}" cannot make us render anything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# Path segments are dict keys or list indices of JSON values; hyphens are
# allowed because JSON keys such as "first-name" are common.
_SEGMENT = r"[A-Za-z0-9_-]+"

REFERENCE_RE = re.compile(
    r"\{\{\s*"
    rf"(?P<name>{_NAME})"
    rf"(?P<path>(?:\.{_SEGMENT})*)"
    r"\s*(?:\|\s*(?P<filter>json)\s*)?"
    r"\}\}"
)

# Anything between braces, used only to find references that are not valid.
# The body may not contain "{{" or "}}" so that "{{ {{ x }}" is read as an
# unclosed brace followed by the valid reference "{{ x }}".
_BRACES_RE = re.compile(r"\{\{(?:(?!\{\{|\}\}).)*\}\}", re.DOTALL)


@dataclass(frozen=True)
class Reference:
    name: str
    path: tuple[str, ...]
    filter: str | None
    text: str
    start: int
    end: int

    @property
    def dotted(self) -> str:
        return ".".join((self.name, *self.path))


def references(template: str) -> list[Reference]:
    return [_reference(match) for match in REFERENCE_RE.finditer(template)]


def invalid_references(template: str) -> list[str]:
    """Brace pairs that render() leaves alone because they are not references."""
    valid = [(match.start(), match.end()) for match in REFERENCE_RE.finditer(template)]
    return [
        match.group(0)
        for match in _BRACES_RE.finditer(template)
        if not any(start < match.end() and match.start() < end for start, end in valid)
    ]


def render(
    template: str,
    variables: Mapping[str, object],
    *,
    escape: Callable[[str], str] | None = None,
) -> str:
    """Substitute every reference once; `escape` post-processes each substituted text.

    A name missing from `variables` (a skipped step, an absent payload) renders
    as "" — or as `null` with `| json`, which keeps embedded JSON valid.
    """

    def substitute(match: re.Match[str]) -> str:
        reference = _reference(match)
        value = _lookup(variables.get(reference.name), reference.path)
        if reference.filter == "json":
            text = json.dumps(value, ensure_ascii=False, default=str)
        else:
            text = to_text(value)
        return escape(text) if escape else text

    return REFERENCE_RE.sub(substitute, template)


def render_value(template: str, variables: Mapping[str, object]) -> object:
    """A template that is one reference and nothing else gives the value
    itself (a list stays a list, for a `map`'s `over` or a called workflow's
    json input); any other template gives its rendered text."""
    match = REFERENCE_RE.fullmatch(template.strip())
    if match is None:
        return render(template, variables)
    reference = _reference(match)
    value = _lookup(variables.get(reference.name), reference.path)
    if reference.filter == "json":
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def to_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _reference(match: re.Match[str]) -> Reference:
    path = match.group("path")
    return Reference(
        name=match.group("name"),
        path=tuple(path[1:].split(".")) if path else (),
        filter=match.group("filter"),
        text=match.group(0),
        start=match.start(),
        end=match.end(),
    )


def _lookup(value: object, path: tuple[str, ...]) -> object:
    for segment in path:
        if isinstance(value, Mapping):
            value = value.get(segment)
        elif isinstance(value, (list, tuple)) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value
