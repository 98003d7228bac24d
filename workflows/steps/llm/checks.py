"""The `llm` step's checks: what pydantic cannot see, the model table and OpenAI's strict-schema
rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema.exceptions import SchemaError

from workflows.llm import schema_validation
from workflows.steps.llm.config import JsonSchemaFormat, LlmStep

_FORMAT_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,63}", re.IGNORECASE)


def check(step: LlmStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    """Problems pydantic cannot see: the model table and OpenAI's strict-schema rules."""
    problems: list[tuple[str, str]] = []
    if not step.prompt.strip():
        problems.append(("prompt", "The prompt is empty."))
    if step.model not in models:
        allowed = ", ".join(sorted(models)) or "none configured"
        problems.append(("model", f'Unknown model "{step.model}" (allowed: {allowed}).'))
    elif step.max_tokens > models[step.model]:
        problems.append(
            ("max_tokens", f"{step.model} allows at most {models[step.model]} output tokens.")
        )
    if step.fallback_model is not None:
        if step.fallback_model not in models:
            allowed = ", ".join(sorted(models)) or "none configured"
            problems.append(
                ("fallback_model", f'Unknown model "{step.fallback_model}" (allowed: {allowed}).')
            )
        elif step.fallback_model == step.model:
            problems.append(("fallback_model", "The fallback model is the step's own model."))
        elif step.max_tokens > models[step.fallback_model]:
            problems.append(
                (
                    "fallback_model",
                    f"{step.fallback_model} allows at most {models[step.fallback_model]} "
                    "output tokens; lower max_tokens.",
                )
            )
    if isinstance(step.response_format, JsonSchemaFormat):
        if not _FORMAT_NAME_RE.fullmatch(step.response_format.name):
            problems.append(
                (
                    "response_format.name",
                    (
                        "Use letters, digits and underscores, starting with a letter "
                        "or underscore, at most 64 characters."
                    ),
                )
            )
        problems += [
            ("response_format.schema", message)
            for message in strict_schema_problems(step.response_format.json_schema)
        ]
    return problems


def strict_schema_problems(schema: dict[str, Any]) -> list[str]:
    """Why OpenAI would refuse `schema` in strict structured-output mode, or
    our checks could not run it (a pattern RE2 cannot run), if so."""
    patterns = schema_validation.pattern_problems(schema)
    if patterns:
        return patterns
    try:
        schema_validation.check_schema(schema)
    except SchemaError as error:
        where = ".".join(["schema", *map(str, error.path)])
        return [f"{where}: not a valid JSON Schema: {error.message}"]
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append('schema: the root must have "type": "object".')
    _check_strict(schema, "schema", problems)
    return problems


def _check_strict(node: object, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    if _is_object(node):
        if node.get("additionalProperties") is not False:
            problems.append(f'{path}: "additionalProperties" must be false.')
        required = node.get("required", [])
        missing = [name for name in properties if name not in required]
        if missing:
            problems.append(
                f'{path}: every property must be listed in "required" '
                f"(missing: {', '.join(missing)})."
            )
    for name, child in properties.items():
        _check_strict(child, f"{path}.properties.{name}", problems)
    _check_strict(node.get("items"), f"{path}.items", problems)
    for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            for position, branch in enumerate(branches):
                _check_strict(branch, f"{path}.{keyword}[{position}]", problems)
    for keyword in ("$defs", "definitions"):
        definitions = node.get(keyword)
        if isinstance(definitions, dict):
            for name, child in definitions.items():
                _check_strict(child, f"{path}.{keyword}.{name}", problems)


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if isinstance(kind, list):
        return "object" in kind
    return kind == "object" or (kind is None and "properties" in node)
