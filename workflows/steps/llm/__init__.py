"""The `llm` step kind: one chat completion, as text or as JSON following a schema."""

from workflows.steps.llm.checks import check, strict_schema_problems
from workflows.steps.llm.config import (
    DEFAULT_MODEL,
    DEFAULT_SCHEMA,
    DEFAULTS,
    MAX_TOKENS_LIMIT,
    TYPE,
    Config,
    JsonSchemaFormat,
    LlmStep,
    ResponseFormat,
    TextFormat,
    next_key,
    output_schema,
    targets,
    templates,
)
from workflows.steps.llm.run import PAID, Call, execute, messages_for, prepare

__all__ = [
    "DEFAULTS",
    "DEFAULT_MODEL",
    "DEFAULT_SCHEMA",
    "MAX_TOKENS_LIMIT",
    "PAID",
    "TYPE",
    "Call",
    "Config",
    "JsonSchemaFormat",
    "LlmStep",
    "ResponseFormat",
    "TextFormat",
    "check",
    "execute",
    "messages_for",
    "next_key",
    "output_schema",
    "prepare",
    "strict_schema_problems",
    "targets",
    "templates",
]
