"""The `map` step's config: run a prompt, or a workflow, for each item of a JSON array."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workflows.steps import chat
from workflows.steps.base import StepBase
from workflows.steps.chat import DEFAULTS as PROMPT_DEFAULTS
from workflows.steps.chat import MAX_TOKENS_LIMIT, ResponseFormat, TextFormat

TYPE = "map"
DEFAULTS: dict[str, Any] = {"concurrency": 5, "on_item_error": "stop", **PROMPT_DEFAULTS}
MAX_CONCURRENCY = 50
# The variables its item templates may use besides the run's: the item and its index.
ITEM = "item"
INDEX = "index"
ITEM_VARIABLES = (ITEM, INDEX)


class MapStep(StepBase):
    type: Literal["map"] = "map"
    # A template that is one reference to a JSON array: an input of type json,
    # a step output whose schema is an array, or a field of the payload.
    over: str = ""
    concurrency: int = Field(default=DEFAULTS["concurrency"], ge=1, le=MAX_CONCURRENCY)
    # stop: the step fails at the first failed item; skip: null in its place;
    # collect: {"error": "..."} in its place.
    on_item_error: Literal["stop", "skip", "collect"] = "stop"
    # Over a prompt: the llm step's fields, with {{ item }} and {{ index }}.
    prompt: str = ""
    system: str = ""
    model: str = PROMPT_DEFAULTS["model"]
    temperature: float = Field(default=PROMPT_DEFAULTS["temperature"], ge=0, le=1)
    max_tokens: int = Field(default=PROMPT_DEFAULTS["max_tokens"], ge=1, le=MAX_TOKENS_LIMIT)
    response_format: ResponseFormat = Field(default_factory=TextFormat)
    # Called for an item once its retries are spent on 429 / 5xx / timeouts.
    fallback_model: str | None = None
    # Over a workflow: the workflow step's fields, its inputs templates with
    # {{ item }} and {{ index }}. Set, it wins over the prompt fields.
    workflow: int | None = Field(default=None, ge=1)
    version: int | None = Field(default=None, ge=1)
    inputs: dict[str, str] = Field(default_factory=dict)

    @property
    def over_workflow(self) -> bool:
        return self.workflow is not None


Config = MapStep

ERROR_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
    "additionalProperties": False,
}


def templates(step: MapStep) -> list[tuple[str, str]]:
    if step.over_workflow:
        return [("over", step.over)] + [
            (f"inputs.{name}", template) for name, template in step.inputs.items()
        ]
    return [("over", step.over), ("system", step.system), ("prompt", step.prompt)]


def item_templates(step: MapStep) -> list[str]:
    """The fields rendered once per item, where {{ item }} and {{ index }} exist."""
    if step.over_workflow:
        return [f"inputs.{name}" for name in step.inputs]
    return ["system", "prompt"]


def item_source(step: MapStep) -> tuple[str, str]:
    """The field that gives the array it runs over, and its template."""
    return ("over", step.over)


def targets(step: MapStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def result_schema(step: MapStep) -> dict[str, Any]:
    """The JSON schema of one item's result."""
    if step.over_workflow:
        return {}  # the called workflow's output: text or JSON of its own
    return chat.output_schema(step) or {"type": "string"}


def output_schema(step: MapStep) -> dict[str, Any] | None:
    """The list of the items' results, in item order."""
    each = result_schema(step)
    if step.on_item_error == "skip":
        each = {"anyOf": [each, {"type": "null"}]}
    elif step.on_item_error == "collect":
        each = {"anyOf": [each, ERROR_ITEM_SCHEMA]}
    return {"type": "array", "items": each}


def next_key(step: MapStep, output: object) -> str | None:
    return step.next


def calls(step: MapStep) -> list[tuple[int, int | None]]:
    """The workflow it runs for each item (id, pinned version), for the call-graph checks."""
    return [(step.workflow, step.version)] if step.workflow is not None else []
