"""The editor's side of the kinds that send a prompt (`llm`, `map` over a
prompt): the answer format's form fields, read from a post and shown back."""

from __future__ import annotations

import json
from typing import Any

from django.http import QueryDict

from workflows.steps.chat import DEFAULT_SCHEMA
from workflows.steps.form import Parsed, text_value


def answer_format(step: dict) -> dict:
    response_format = step.get("response_format")
    return response_format if isinstance(response_format, dict) else {}


def response_format_from_post(parsed: Parsed, current: dict, data: QueryDict) -> dict:
    previous = answer_format(current)
    kind = data.get("response_type") if "response_type" in data else previous.get("type", "text")
    if kind != "json_schema":
        return {"type": "text"}
    if "schema_name" in data:
        name = text_value(data, "schema_name", strip=True) or str(current.get("key") or "output")
    else:
        name = previous.get("name") or str(current.get("key") or "output")
    raw = text_value(data, "schema")
    if "schema" not in data:
        # Switched from text, or another field: keep it (or start from an example).
        schema: object = previous.get("schema") or DEFAULT_SCHEMA
    elif not raw.strip():
        schema = DEFAULT_SCHEMA
    else:
        try:
            schema = json.loads(raw)
        except (ValueError, RecursionError) as error:
            reason = "it is nested too deeply" if isinstance(error, RecursionError) else error
            parsed.error("response_format.schema", f"Not valid JSON: {reason}.")
            schema = raw  # kept as typed: never lose an edit
    return {"type": "json_schema", "name": name, "schema": schema}


def schema_text(step: dict) -> str:
    schema = answer_format(step).get("schema")
    if schema is None:
        return json.dumps(DEFAULT_SCHEMA, indent=2)
    if isinstance(schema, str):
        return schema
    return json.dumps(schema, indent=2, ensure_ascii=False)


def explain_unparsed_schema(step: dict, slots: dict[str, Any]) -> None:
    """A schema kept as typed because it is not JSON: say why, rather than pydantic's
    "not a dict"."""
    schema = answer_format(step).get("schema")
    if isinstance(schema, str):
        try:
            json.loads(schema)
        except (ValueError, RecursionError) as error:
            slot = slots["response_format.schema"]
            reason = "it is nested too deeply" if isinstance(error, RecursionError) else error
            message = f"Not valid JSON: {reason}."
            slot.messages = [
                message,
                *(m for m in slot.messages if "valid dictionary" not in m and m != message),
            ]
