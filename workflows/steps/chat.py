"""What the step kinds that send a prompt share (`llm`, and `map` over a
prompt): the answer formats, their checks, rendering the messages, pricing
the worst case, and the call with its retries.

A kind's config carries the fields of `Prompted` (prompt, system, model,
temperature, max_tokens, response_format); the functions below read only those.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal, Protocol

from django.conf import settings
from django.utils import timezone
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import BaseModel, ConfigDict, Field

from workflows.billing import budget
from workflows.llm import client as llm
from workflows.llm import pricing, schema_validation, tokens
from workflows.rendering import render
from workflows.steps.context import StepContext, StepFailed, StepResult, Usage

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


class Prompted(Protocol):
    prompt: str
    system: str
    model: str
    temperature: float
    max_tokens: int
    response_format: TextFormat | JsonSchemaFormat
    # Called once the retries are spent on 429 / 5xx / timeouts.
    fallback_model: str | None
    # The step's error policy (StepBase): tries per model are retries + 1.
    retries: int | None


def output_schema(step: Prompted) -> dict[str, Any] | None:
    """The JSON schema of the answer, or None when it is text."""
    if isinstance(step.response_format, JsonSchemaFormat):
        return step.response_format.json_schema
    return None


_FORMAT_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,63}", re.IGNORECASE)


def check(step: Prompted, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
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


def messages_for(step: Prompted, variables: Mapping[str, object]) -> list[dict[str, str]]:
    messages = []
    if step.system:
        messages.append({"role": "system", "content": render(step.system, variables)})
    messages.append({"role": "user", "content": render(step.prompt, variables)})
    return messages


def _backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a server's retry-after wins when longer."""
    cap = settings.LLM_RETRY_MAX_SECONDS
    delay = random.uniform(0, min(cap, settings.LLM_RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True)
class Call:
    """A call ready to send: what `prepare` found, what `execute` sends."""

    messages: list[dict[str, str]]
    schema: dict[str, Any] | None
    # The most the call can cost; the engine holds it in the budget first.
    hold_nanousd: int


def prepare(step: Prompted, variables: Mapping[str, object]) -> Call:
    """Render the messages and price the worst case. Nothing is sent (or paid)
    when the prompt cannot fit the model's context: StepFailed says why."""
    messages = messages_for(step, variables)
    schema = output_schema(step)
    info = pricing.model_info(step.model)
    prompt_tokens = tokens.count_messages(messages, response_schema=schema)
    if prompt_tokens + step.max_tokens > info["context_tokens"]:
        raise StepFailed(
            f"The prompt is {prompt_tokens:,} tokens; with max_tokens {step.max_tokens:,} it "
            "exceeds "
            f"{step.model}'s context window of {info['context_tokens']:,} tokens. Nothing "
            "was sent or paid.",
            messages=messages,
            attempts=0,
        )
    # The worst case of whichever model answers: the fallback may cost more.
    hold = max(
        budget.worst_case_nanousd(
            model=model, prompt_tokens=prompt_tokens, max_tokens=step.max_tokens
        )
        for model in _models(step)
    )
    return Call(messages=messages, schema=schema, hold_nanousd=hold)


def _models(step: Prompted) -> list[str]:
    return [step.model, *([step.fallback_model] if step.fallback_model else [])]


def max_attempts(step: Prompted) -> int:
    """Tries per model: the step's `retries` + 1, or the server's default."""
    return step.retries + 1 if step.retries is not None else settings.LLM_MAX_ATTEMPTS


def estimate_lost(step: Prompted, call: Call, received: str) -> Usage:
    """What OpenAI bills for a streamed answer cut before its usage chunk
    (a crash, a timeout): the prompt, counted as `prepare` counts it, and the
    tokens of the content that arrived. An estimate: no cached tokens."""
    return _estimate(step.model, call.messages, call.schema, received)


def _estimate(
    model: str, messages: list[dict[str, str]], schema: dict[str, Any] | None, received: str
) -> Usage:
    prompt = tokens.count_messages(messages, response_schema=schema)
    completion = tokens.count_text(received)
    return Usage(
        model=model,
        tokens_in=prompt,
        tokens_out=completion,
        cost_nanousd=pricing.cost_nanousd(
            model=model, prompt_tokens=prompt, cached_tokens=0, completion_tokens=completion
        ),
    )


def _streamed(
    step: Prompted,
    model: str,
    messages: list[dict[str, str]],
    response_schema: tuple[str, dict] | None,
    context: StepContext,
) -> llm.Completion:
    """The call, streamed: the answer so far goes to `context.on_partial` as it grows."""
    text = ""
    for piece in llm.stream(
        model=model,
        messages=messages,
        temperature=step.temperature,
        max_tokens=step.max_tokens,
        response_schema=response_schema,
        timeout=settings.STEP_TIMEOUT_SECONDS,
    ):
        if isinstance(piece, llm.Completion):
            return piece
        text += piece
        context.on_partial(text)
    raise llm.LlmError("OpenAI's answer ended without its usage.", retryable=True, received=text)


def execute(step: Prompted, call: Call, context: StepContext) -> StepResult:
    """Call the model, retrying transient failures, and price what the response reports.

    The engine has held `call.hold_nanousd` of the budget (workflows/billing/budget.py)
    and settles it to the real cost with the step's result. A failure after an
    answer arrived (JSON that breaks the schema) still carries the usage, so
    the engine records and settles what was paid.
    """
    return _complete(step, context, call.messages, call.schema)


def _complete(
    step: Prompted,
    context: StepContext,
    messages: list[dict[str, str]],
    schema: dict[str, Any] | None,
) -> StepResult:
    """The call with its retries, priced; StepFailed carries any usage that was paid.

    The answer is streamed. One cut mid-stream was billed by OpenAI without
    saying how much: its estimate (`_estimate`) is added to the step's usage."""
    # A schema comes only from a response_format, so it is not None here.
    response_schema = (step.response_format.name, schema) if schema is not None else None  # type: ignore[union-attr]
    attempt = 0
    models = _models(step)
    model = models[0]
    tries = 0  # with the current model
    lost = Usage()  # estimated: streams cut before their usage chunk
    while True:
        attempt += 1
        tries += 1
        if attempt > 1:
            context.on_attempt()
        try:
            completion = _streamed(step, model, messages, response_schema, context)
            break
        except llm.LlmError as e:
            if e.received is not None:
                lost = lost.plus(_estimate(model, messages, schema, e.received))
            failure = {"kind": e.kind, "status": e.status, "retry_after": e.retry_after}
            if e.retryable and tries >= max_attempts(step) and model != models[-1]:
                # Retries spent on a failure that may pass: the fallback model next.
                model, tries = models[-1], 0
                continue
            if not e.retryable or tries >= max_attempts(step):
                after = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise StepFailed(
                    f"{e.message}{after}",
                    usage=lost,
                    messages=messages,
                    attempts=attempt,
                    retryable=e.retryable,
                    **failure,  # type: ignore[arg-type]
                ) from None
            delay = _backoff_seconds(tries, e.retry_after)
            if context.deadline and timezone.now() + timedelta(seconds=delay) >= context.deadline:
                raise StepFailed(
                    f"{e.message} (no time left in the run to retry)",
                    usage=lost,
                    messages=messages,
                    attempts=attempt,
                    **failure,  # type: ignore[arg-type]
                ) from None
            time.sleep(delay)

    answered = Usage(
        model=model,
        tokens_in=completion.prompt_tokens,
        tokens_cached=completion.cached_tokens,
        tokens_out=completion.completion_tokens,
        cost_nanousd=pricing.cost_nanousd(
            model=model,
            prompt_tokens=completion.prompt_tokens,
            cached_tokens=completion.cached_tokens,
            completion_tokens=completion.completion_tokens,
        ),
    )
    usage = answered.plus(lost) if lost.tokens_in else answered
    if schema is None:
        return StepResult(
            output=completion.content, messages=messages, usage=usage, attempts=attempt
        )
    try:
        output = json.loads(completion.content)
        schema_validation.validate(output, schema)
    except (json.JSONDecodeError, ValidationError, RecursionError) as e:
        cut = (
            " (the answer hit max_tokens; raise it)" if completion.finish_reason == "length" else ""
        )
        if isinstance(e, RecursionError):
            detail = "it is nested too deeply"
        else:
            detail = e.msg if isinstance(e, json.JSONDecodeError) else e.message
        raise StepFailed(
            f"The model's answer does not match the JSON schema{cut}: {detail}",
            usage=usage,
            messages=messages,
            attempts=attempt,
            kind="invalid_answer",
        ) from None
    return StepResult(output=output, messages=messages, usage=usage, attempts=attempt)
