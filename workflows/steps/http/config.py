"""The `http` step's config: one HTTP request, its fields templates (secrets allowed)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from workflows.steps.base import StepBase

TYPE = "http"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
BODY_TYPES = ("none", "json", "text")
DEFAULT_TIMEOUT_SECONDS = 30
MAX_TIMEOUT_SECONDS = 120
# The most of an answer that is read; a larger one fails the step.
MAX_RESPONSE_BYTES = 5 * 1024 * 1024
# Its templates may use `{{ secrets.NAME }}`: they go into the request and nowhere
# else (the record of the request and the answer are redacted).
SECRETS = True
DEFAULTS: dict[str, Any] = {
    "method": "GET",
    "body_type": "none",
    "timeout_seconds": DEFAULT_TIMEOUT_SECONDS,
}
# RFC 9110 token characters: what a header name may be.
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")


class HttpStep(StepBase):
    type: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body_type: Literal["none", "json", "text"] = "none"
    # A template; with body_type "json", JSON whose strings are templates (a string
    # that is one reference alone becomes that value, typed).
    body: str = ""
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=MAX_TIMEOUT_SECONDS)
    # The JSON schema of the answer's body: later references to `<key>.json.…` are
    # checked against it, and an answer that breaks it fails the step.
    response_schema: dict[str, Any] | None = None


Config = HttpStep


def templates(step: HttpStep) -> list[tuple[str, str]]:
    fields = [("url", step.url)]
    # Reported on the whole field (the panel edits them as one text each).
    fields += [("query", value) for value in step.query.values()]
    fields += [("headers", value) for value in step.headers.values()]
    if step.body_type != "none":
        fields.append(("body", step.body))
    return fields


def targets(step: HttpStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: HttpStep) -> dict[str, Any] | None:
    """`{"status", "headers", "json" | "text"}`; `json` follows the response schema if any."""
    return {
        "type": "object",
        "properties": {
            "status": {"type": "integer"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "json": step.response_schema if step.response_schema is not None else {},
            "text": {"type": "string"},
        },
    }


def next_key(step: HttpStep, output: object) -> str | None:
    return step.next
