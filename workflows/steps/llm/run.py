"""The `llm` step's execution: one chat completion, as text or as JSON following a schema."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from jsonschema.exceptions import ValidationError

from workflows.billing import budget
from workflows.llm import client as llm
from workflows.llm import pricing, schema_validation, tokens
from workflows.rendering import render
from workflows.steps.context import StepContext, StepFailed, StepResult, Usage
from workflows.steps.llm.config import LlmStep, output_schema

# The engine records an attempt before each call: this step costs money.
PAID = True


def messages_for(step: LlmStep, variables: Mapping[str, object]) -> list[dict[str, str]]:
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


def prepare(step: LlmStep, variables: Mapping[str, object]) -> Call:
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


def _models(step: LlmStep) -> list[str]:
    return [step.model, *([step.fallback_model] if step.fallback_model else [])]


def max_attempts(step: LlmStep) -> int:
    """Tries per model: the step's `retries` + 1, or the server's default."""
    return step.retries + 1 if step.retries is not None else settings.LLM_MAX_ATTEMPTS


def execute(step: LlmStep, call: Call, context: StepContext) -> StepResult:
    """Call the model, retrying transient failures, and price what the response reports.

    The engine has held `call.hold_nanousd` of the budget (workflows/billing/budget.py)
    and settles it to the real cost with the step's result. A failure after an
    answer arrived (JSON that breaks the schema) still carries the usage, so
    the engine records and settles what was paid.
    """
    return _complete(step, context, call.messages, call.schema)


def _complete(
    step: LlmStep,
    context: StepContext,
    messages: list[dict[str, str]],
    schema: dict[str, Any] | None,
) -> StepResult:
    """The call with its retries, priced; StepFailed carries any usage that was paid."""
    # A schema comes only from a response_format, so it is not None here.
    response_schema = (step.response_format.name, schema) if schema is not None else None  # type: ignore[union-attr]
    attempt = 0
    models = _models(step)
    model = models[0]
    tries = 0  # with the current model
    while True:
        attempt += 1
        tries += 1
        if attempt > 1:
            context.on_attempt()
        try:
            completion = llm.call(
                model=model,
                messages=messages,
                temperature=step.temperature,
                max_tokens=step.max_tokens,
                response_schema=response_schema,
                timeout=settings.STEP_TIMEOUT_SECONDS,
            )
            break
        except llm.LlmError as e:
            failure = {"kind": e.kind, "status": e.status, "retry_after": e.retry_after}
            if e.retryable and tries >= max_attempts(step) and model != models[-1]:
                # Retries spent on a failure that may pass: the fallback model next.
                model, tries = models[-1], 0
                continue
            if not e.retryable or tries >= max_attempts(step):
                after = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise StepFailed(
                    f"{e.message}{after}",
                    messages=messages,
                    attempts=attempt,
                    retryable=e.retryable,
                    **failure,  # type: ignore[arg-type]
                ) from None
            delay = _backoff_seconds(tries, e.retry_after)
            if context.deadline and timezone.now() + timedelta(seconds=delay) >= context.deadline:
                raise StepFailed(
                    f"{e.message} (no time left in the run to retry)",
                    messages=messages,
                    attempts=attempt,
                    **failure,  # type: ignore[arg-type]
                ) from None
            time.sleep(delay)

    usage = Usage(
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
