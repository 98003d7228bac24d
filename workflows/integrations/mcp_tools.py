"""A published workflow as an MCP tool: its name, its schemas and what a call answers.

Pure: no database, no request. `mcp_server.py` lists and calls the tools; an
admin names and exposes them (`mcp_exposure.py`).

Every workflow tool answers the same envelope, `{"run_id", "status", "output",
"error"}`, as `structuredContent` and as its JSON text: a run that did not
finish within the call's deadline is answered with its id and status (read it
later with `runs_get`), which a bare output schema could not describe. The
envelope's `output` carries the workflow's own output schema when it declares
one (its last step answers JSON with a schema, and nothing ends the run
earlier).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from mcp_types import CallToolResult, TextContent, Tool, ToolAnnotations

from workflows.builder.definition import Definition, InputSpec, run_output_schema
from workflows.models import Run
from workflows.schemas import RunOut

RUNS_GET = "runs_get"
RESERVED_NAMES = frozenset({RUNS_GET})
# MCP tool names: 1-128 characters of [A-Za-z0-9_.-]; ours are shorter and lower-case.
NAME_MAX = 64
_NOT_NAME = re.compile(r"[^a-z0-9]+")

_JSON_TYPES = {"text": "string", "number": "number", "boolean": "boolean"}


def tool_name_for(workflow_name: str, taken: set[str]) -> str:
    """A tool name from a workflow's name (`Triage support e-mails` → `triage_support_e_mails`),
    not in `taken` nor reserved (`_2`, `_3`, … appended as needed)."""
    ascii_name = unicodedata.normalize("NFKD", workflow_name).encode("ascii", "ignore").decode()
    base = _NOT_NAME.sub("_", ascii_name.lower()).strip("_")[: NAME_MAX - 4].strip("_")
    base = base or "workflow"
    name, n = base, 1
    while name in taken or name in RESERVED_NAMES:
        n += 1
        name = f"{base}_{n}"
    return name


def _input_property(spec: InputSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if spec.type in _JSON_TYPES:
        schema["type"] = _JSON_TYPES[spec.type]
    # A json input takes any JSON value (an object, a list, a string, …).
    schema["title"] = spec.name
    if spec.description:
        schema["description"] = spec.description
    if spec.default is not None:
        schema["default"] = spec.default
    return schema


def input_schema(definition: Definition) -> dict[str, Any]:
    """The JSON schema of a call's arguments: the workflow's inputs by name. An input with a
    default is not required of the caller (the default fills in, as on every other way in)."""
    return {
        "type": "object",
        "properties": {spec.name: _input_property(spec) for spec in definition.inputs},
        "required": [
            spec.name for spec in definition.inputs if spec.required and spec.default is None
        ],
        "additionalProperties": False,
    }


# The run's output schema when its definition fixes it (builder.definition).
declared_output_schema = run_output_schema


def output_schema(definition: Definition) -> dict[str, Any]:
    """The envelope every workflow tool answers, with the workflow's output schema inside."""
    return {
        "type": "object",
        "properties": {
            "run_id": {"type": "integer", "description": "The run (read it with runs_get)."},
            "status": {
                "type": "string",
                "enum": list(Run.Status.values),
                "description": "queued, running or waiting: not finished within the call.",
            },
            "output": declared_output_schema(definition) or {},
            "error": {"type": "string"},
        },
        "required": ["run_id", "status"],
    }


def workflow_tool(name: str, title: str, description: str, definition: Definition) -> Tool:
    return Tool(
        name=name,
        title=title,
        description=(description.strip() or f"Runs the Stepwise workflow “{title}”.")
        + "\n\nAnswers the run's id, status and output; a run still going after the call's"
        " deadline is answered with its id and status: read it later with runs_get.",
        input_schema=input_schema(definition),
        output_schema=output_schema(definition),
        annotations=ToolAnnotations(title=title, read_only_hint=False, open_world_hint=True),
    )


def runs_get_tool() -> Tool:
    return Tool(
        name=RUNS_GET,
        title="Read a run",
        description=(
            "A run of this workspace by id: its status, inputs, output, error, cost and steps."
        ),
        input_schema={
            "type": "object",
            "properties": {"run_id": {"type": "integer", "minimum": 1}},
            "required": ["run_id"],
            "additionalProperties": False,
        },
        output_schema=RunOut.model_json_schema(mode="serialization"),
        annotations=ToolAnnotations(title="Read a run", read_only_hint=True),
    )


def run_envelope(run: Run) -> dict[str, Any]:
    envelope: dict[str, Any] = {"run_id": run.id, "status": run.status}
    if run.status == Run.Status.SUCCEEDED:
        envelope["output"] = run.output
    if run.error:
        envelope["error"] = run.error
    return envelope


def structured_result(data: dict[str, Any], *, is_error: bool = False) -> CallToolResult:
    """`data` as the call's structured content and as its JSON text (for clients that read
    only text). Stored text stays a JSON string: nothing here is markup."""
    return CallToolResult(
        content=[TextContent(text=json.dumps(data, ensure_ascii=False))],
        structured_content=data,
        is_error=is_error,
    )


def error_result(message: str, details: object = None) -> CallToolResult:
    """A refusal the caller can act on (a missing input, an unknown run): a tool error, not a
    protocol one, so that the model reads why."""
    data: dict[str, Any] = {"error": message}
    if details is not None:
        data["details"] = details
    return CallToolResult(
        content=[TextContent(text=json.dumps(data, ensure_ascii=False))], is_error=True
    )
