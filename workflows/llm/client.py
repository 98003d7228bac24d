"""The one place that talks to OpenAI: Chat Completions through the official SDK.

The server holds the only key (settings.OPENAI_API_KEY). OPENAI_BASE_URL is
honoured, so any OpenAI-compatible server works: Ollama, vLLM, or the
project's own fake server in tests and demos. The SDK's own retries are off:
`call` makes exactly one HTTP request, and the caller (the llm step) owns the
retry loop so that every attempt is counted and the run's deadline respected.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import openai
from django.conf import settings
from openai.types.chat import ChatCompletion

MISSING_KEY_MESSAGE = (
    "No OpenAI API key is configured on this server. An administrator must set "
    "OPENAI_API_KEY (or OPENAI_API_KEY_FILE) and restart Stepwise; `make demo` runs "
    "Stepwise against a built-in fake server that simulates answers."
)


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish_reason: str


class LlmError(Exception):
    """A failed call. `retryable` says whether the same request may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        kind: str = "error",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        # For error branches: "rate_limit", "server", "timeout", "network", "refused".
        self.kind = kind
        self.status = status


def is_configured() -> bool:
    return bool(settings.OPENAI_API_KEY)


@functools.cache
def _client(api_key: str, base_url: str | None) -> openai.OpenAI:
    # One client per process: its pool (up to 1,000 connections) serves every thread.
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
    )


def client() -> openai.OpenAI:
    return _client(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL)


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _api_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return error.message


def call(
    *,
    model: str,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
    response_schema: tuple[str, dict] | None,
    timeout: float,
) -> Completion:
    """One Chat Completions request. Raises LlmError, never an SDK exception."""
    if not is_configured():
        raise LlmError(MISSING_KEY_MESSAGE, retryable=False)
    extra: dict[str, object] = {}
    if response_schema is not None:
        name, schema = response_schema
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    body = {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_completion_tokens": max_tokens,
        **extra,
    }
    try:
        # The SDK's generic POST (its documented way to reach any endpoint)
        # with the same options `chat.completions.create` passes. `create`
        # first walks the body through the SDK's TypedDict transform, which
        # renames aliased keys (this body has none) and cost a third of the
        # SDK's CPU per call (docs/benchmarks.md). The request, the auth, the
        # errors and the parsed ChatCompletion are the same.
        response = client().post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            options={"timeout": timeout, "security": {"bearer_auth": True}},
        )
    except openai.APITimeoutError:
        raise LlmError(
            f"OpenAI did not answer within {timeout:g} seconds.", retryable=True, kind="timeout"
        ) from None
    except openai.APIConnectionError as e:
        raise LlmError(
            f"Could not reach OpenAI: {e.message}", retryable=True, kind="network"
        ) from None
    except openai.APIStatusError as e:
        message = _api_message(e)
        status = e.status_code
        # insufficient_quota comes as a 429 but waiting will not fix it.
        if status == 429 and e.code != "insufficient_quota":
            raise LlmError(
                f"Rate limited by OpenAI: {message}",
                retryable=True,
                retry_after=_retry_after(e),
                kind="rate_limit",
                status=status,
            ) from None
        if status >= 500 or status in (408, 409):
            raise LlmError(
                f"OpenAI error {status}: {message}",
                retryable=True,
                retry_after=_retry_after(e),
                kind="server",
                status=status,
            ) from None
        raise LlmError(
            f"OpenAI refused the request ({status}): {message}",
            retryable=False,
            kind="refused",
            status=status,
        ) from None
    choice = response.choices[0] if response.choices else None
    if choice is None:
        raise LlmError("OpenAI answered with no choices.", retryable=True, kind="server")
    usage = response.usage
    details = usage.prompt_tokens_details if usage else None
    return Completion(
        content=choice.message.content or "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        cached_tokens=(details.cached_tokens or 0) if details else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        finish_reason=choice.finish_reason or "",
    )
