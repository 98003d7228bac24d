"""The `llm` step's config: its pydantic model, its defaults and the fields the checks read."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workflows.steps.base import StepBase
from workflows.steps.chat import (
    DEFAULT_MODEL,
    DEFAULT_SCHEMA,
    DEFAULTS,
    MAX_TOKENS_LIMIT,
    JsonSchemaFormat,
    ResponseFormat,
    TextFormat,
)
from workflows.steps.chat import output_schema as _answer_schema

TYPE = "llm"


class LlmStep(StepBase):
    type: Literal["llm"] = "llm"
    prompt: str
    system: str = ""
    model: str = DEFAULTS["model"]
    temperature: float = Field(default=DEFAULTS["temperature"], ge=0, le=1)
    max_tokens: int = Field(default=DEFAULTS["max_tokens"], ge=1, le=MAX_TOKENS_LIMIT)
    response_format: ResponseFormat = Field(default_factory=TextFormat)
    # Called once the retries are spent on 429 / 5xx / timeouts, from the model table.
    fallback_model: str | None = None


Config = LlmStep

__all__ = [
    "DEFAULTS",
    "DEFAULT_MODEL",
    "DEFAULT_SCHEMA",
    "MAX_TOKENS_LIMIT",
    "TYPE",
    "Config",
    "JsonSchemaFormat",
    "LlmStep",
    "ResponseFormat",
    "TextFormat",
    "next_key",
    "output_schema",
    "targets",
    "templates",
]


def templates(step: LlmStep) -> list[tuple[str, str]]:
    return [("system", step.system), ("prompt", step.prompt)]


def targets(step: LlmStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: LlmStep) -> dict[str, Any] | None:
    """The JSON schema of the step's output, or None when it outputs text."""
    return _answer_schema(step)


def next_key(step: LlmStep, output: object) -> str | None:
    return step.next
