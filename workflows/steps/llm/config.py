"""The `llm` step's config: its pydantic model, its defaults and the fields the checks read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.steps.base import StepBase

TYPE = "llm"
DEFAULT_MODEL = "gpt-4.1-mini"
MAX_TOKENS_LIMIT = 32768
# What a new step starts with, and what the panel shows for a field the draft lacks.
DEFAULTS: dict[str, Any] = {"model": DEFAULT_MODEL, "temperature": 0.7, "max_tokens": 1024}
# The schema a new JSON answer format starts from.
DEFAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"] = "text"


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"] = "json_schema"
    name: str
    # Named json_schema in Python because BaseModel already has a `schema` attribute.
    json_schema: dict[str, Any] = Field(alias="schema")


ResponseFormat = Annotated[TextFormat | JsonSchemaFormat, Field(discriminator="type")]


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


def templates(step: LlmStep) -> list[tuple[str, str]]:
    return [("system", step.system), ("prompt", step.prompt)]


def targets(step: LlmStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: LlmStep) -> dict[str, Any] | None:
    """The JSON schema of the step's output, or None when it outputs text."""
    if isinstance(step.response_format, JsonSchemaFormat):
        return step.response_format.json_schema
    return None


def next_key(step: LlmStep, output: object) -> str | None:
    return step.next
