"""The `http` step in the editor: its menu entry, card, panel fields and form parsing.

Everything here reads the raw draft, which may not validate. The query and the
headers are edited as text, one `name=value` or `Name: value` per line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from accounts.models import WorkspaceSecret
from workflows.models import Workflow
from workflows.steps.form import (
    Parsed,
    next_branches,
    next_from_post,
    number,
    summary_of,
    text_of,
    text_value,
)
from workflows.steps.http.config import BODY_TYPES, DEFAULTS, METHODS, TYPE
from workflows.steps.http.secrets import names_used

LABEL = "HTTP request"
HINT = "call an API"
# On the run page, beside each step.
SHORT_LABEL = "HTTP"
# Its badge on the cards: a tone of components.css (.badge-<tone>), "" for the plain one.
TONE = ""
BLURB = (
    "Calls a URL and passes on its answer: its status, headers, and JSON or text. "
    "Workspace secrets can go in its URL, query, headers and body."
)
EMPTY_SUMMARY = "No URL yet."
PANEL = "steps/http/panel.html"
FIELD_LABELS = {
    "method": "Method",
    "url": "URL",
    "query": "Query",
    "headers": "Headers",
    "body_type": "Body",
    "body": "Body content",
    "timeout_seconds": "Timeout",
    "response_schema": "Response schema",
}
LIST_FIELDS: dict[str, str] = {}
_PLAIN_FIELDS = ("method", "url", "query", "headers", "body_type", "body")
_ALL_FIELDS = (*_PLAIN_FIELDS, "timeout_seconds", "response_schema", "next")


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    return {
        "key": key,
        "type": TYPE,
        "title": "",
        "method": DEFAULTS["method"],
        "url": "https://",
        "timeout_seconds": DEFAULTS["timeout_seconds"],
    }


def summary(step: dict) -> str:
    url = text_of(step, "url")
    if not url or url == "https://":
        return ""
    return summary_of(f"{text_of(step, 'method') or 'GET'} {url}")


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    """What later steps may read: the answer's status, headers and its JSON (or text)."""
    schema = step.get("response_schema")
    return {
        "status": {"type": "integer"},
        "headers": {"type": "object"},
        "json": schema if isinstance(schema, dict) else {},
        "text": {"type": "string"},
    }


def posted_path(name: str) -> str | None:
    """The field (path under the step) a posted form field writes; None: not one of its fields."""
    return name if name in _ALL_FIELDS else None


def form_name(path: str) -> str | None:
    """The form field that shows `path` (under the step); None: redraw the whole panel."""
    return path.split(".")[0] if path.split(".")[0] in _ALL_FIELDS else None


def action_path(action: str) -> tuple[str, str] | None:
    return None  # no buttons of its own


def fields(step: dict) -> list[str]:
    return list(_ALL_FIELDS)


def template_values(step: dict) -> dict[str, str]:
    values = {name: step[name] for name in ("url", "body") if isinstance(step.get(name), str)}
    for name in ("query", "headers"):
        values[name] = pairs_text(step.get(name), name)
    return values


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    for name in ("url", "body"):
        if name in step:
            step[name] = rewrite(step[name])
    for name in ("query", "headers"):
        pairs = step.get(name)
        if isinstance(pairs, dict):
            step[name] = {key: rewrite(value) for key, value in pairs.items()}


_SEPARATORS = {"query": "=", "headers": ":"}


def pairs_text(pairs: object, name: str) -> str:
    """The query or headers as the panel's text: one pair a line."""
    if isinstance(pairs, str):
        return pairs  # kept as typed
    if not isinstance(pairs, dict):
        return ""
    separator = "=" if name == "query" else ": "
    return "\n".join(f"{key}{separator}{value}" for key, value in pairs.items())


def _pairs_from_text(parsed: Parsed, name: str, text: str) -> dict[str, str] | str:
    pairs: dict[str, str] = {}
    separator = _SEPARATORS[name]
    for number_, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        key, found, value = line.partition(separator)
        if not found or not key.strip():
            example = "name=value" if name == "query" else "Name: value"
            parsed.error(name, f"Line {number_}: write {example}.")
            return text  # kept as typed: never lose an edit
        pairs[key.strip()] = value.strip()
    return pairs


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "method" in data:
        method = text_value(data, "method", strip=True).upper()
        step["method"] = method if method in METHODS else DEFAULTS["method"]
    if "url" in data:
        step["url"] = text_value(data, "url", strip=True)
    for name in ("query", "headers"):
        if name in data:
            step[name] = _pairs_from_text(parsed, name, text_value(data, name))
    if "body_type" in data:
        body_type = text_value(data, "body_type", strip=True)
        step["body_type"] = body_type if body_type in BODY_TYPES else "none"
    if "body" in data:
        step["body"] = text_value(data, "body")
    if "timeout_seconds" in data:
        step["timeout_seconds"] = number(parsed, data, "timeout_seconds", integer=False)
    if "response_schema" in data:
        raw = text_value(data, "response_schema")
        if not raw.strip():
            step.pop("response_schema", None)
        else:
            try:
                step["response_schema"] = json.loads(raw)
            except (ValueError, RecursionError) as error:
                reason = "it is nested too deeply" if isinstance(error, RecursionError) else error
                parsed.error("response_schema", f"Not valid JSON: {reason}.")
                step["response_schema"] = raw  # kept as typed
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step  # no buttons of its own


def schema_text(step: dict) -> str:
    schema = step.get("response_schema")
    if schema is None:
        return ""
    if isinstance(schema, str):
        return schema
    return json.dumps(schema, indent=2, ensure_ascii=False)


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    used = names_used(template_values(step).values())
    have = {
        name: None if any_host else hosts
        for name, hosts, any_host in WorkspaceSecret.objects.filter(
            workspace_id=workflow.workspace_id, name__in=used
        ).values_list("name", "allowed_hosts", "any_host")
    }
    return {
        # Not a validation problem (a definition does not depend on a workspace), but the
        # run would fail: said on the panel, with where to create them.
        "missing_secrets": [name for name in used if name not in have],
        # Where each may be sent (None: any host, a legacy secret): a request elsewhere fails.
        "secret_hosts": [(name, have[name]) for name in used if name in have],
        "methods": METHODS,
        "method": step.get("method") or DEFAULTS["method"],
        "body_type": step.get("body_type") or DEFAULTS["body_type"],
        "query_text": pairs_text(step.get("query"), "query"),
        "headers_text": pairs_text(step.get("headers"), "headers"),
        "timeout_seconds": step.get("timeout_seconds", DEFAULTS["timeout_seconds"]),
        "schema_text": schema_text(step),
    }
