"""The one place that talks to OpenAI: Chat Completions through the official SDK.

The server holds the only key (settings.OPENAI_API_KEY). OPENAI_BASE_URL is
honoured, so any OpenAI-compatible server works: Ollama, vLLM, or the
project's own fake server in tests and demos. The SDK's own retries are off:
`call` makes exactly one HTTP request, and the caller (the llm step) owns the
retry loop so that every attempt is counted and the run's deadline respected.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
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
        received: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        # For error branches: "rate_limit", "server", "timeout", "network", "refused".
        self.kind = kind
        self.status = status
        # A stream cut mid-way: the content that arrived (billed, but with no
        # usage chunk to say how much). None: nothing was streamed.
        self.received = received


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


def _body(
    model: str,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
    response_schema: tuple[str, dict] | None,
) -> dict[str, object]:
    extra: dict[str, object] = {}
    if response_schema is not None:
        name, schema = response_schema
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    return {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_completion_tokens": max_tokens,
        **extra,
    }


def _llm_error(e: openai.OpenAIError, timeout: float) -> LlmError:
    """The SDK's exception as an LlmError saying whether to try again."""
    if isinstance(e, openai.APITimeoutError):
        return LlmError(
            f"OpenAI did not answer within {timeout:g} seconds.", retryable=True, kind="timeout"
        )
    if isinstance(e, openai.APIConnectionError):
        return LlmError(f"Could not reach OpenAI: {e.message}", retryable=True, kind="network")
    if not isinstance(e, openai.APIStatusError):
        return LlmError(f"OpenAI error: {e}", retryable=True, kind="server")
    message = _api_message(e)
    status = e.status_code
    # insufficient_quota comes as a 429 but waiting will not fix it.
    if status == 429 and e.code != "insufficient_quota":
        return LlmError(
            f"Rate limited by OpenAI: {message}",
            retryable=True,
            retry_after=_retry_after(e),
            kind="rate_limit",
            status=status,
        )
    if status >= 500 or status in (408, 409):
        return LlmError(
            f"OpenAI error {status}: {message}",
            retryable=True,
            retry_after=_retry_after(e),
            kind="server",
            status=status,
        )
    return LlmError(
        f"OpenAI refused the request ({status}): {message}",
        retryable=False,
        kind="refused",
        status=status,
    )


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
    body = _body(model, messages, temperature, max_tokens, response_schema)
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
    except openai.OpenAIError as e:
        raise _llm_error(e, timeout) from None
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


def stream(
    *,
    model: str,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
    response_schema: tuple[str, dict] | None,
    timeout: float,
) -> Iterator[str | Completion]:
    """One streamed Chat Completions request: yields the content's pieces as
    they arrive, then the Completion, priced from the final usage chunk
    (`stream_options.include_usage`).

    `timeout` bounds the whole answer, not only each read. A stream that
    breaks before its usage chunk (the connection dropped, the time ran
    out) raises a retryable LlmError whose `received` holds the content that
    arrived, so the caller can record what OpenAI will bill for it."""
    if not is_configured():
        raise LlmError(MISSING_KEY_MESSAGE, retryable=False)
    body = {
        **_body(model, messages, temperature, max_tokens, response_schema),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    deadline = time.monotonic() + timeout
    received: list[str] = []
    try:
        # The generic POST, as in `call`, answered as the raw streaming response
        # (the SDK's documented `cast_to=httpx.Response`; its errors, auth and
        # status checks are the same). Its own `Stream` was 3.3-4.2 ms of CPU
        # per call against 1.2-1.6 ms this way (docs/benchmarks.md): it builds a
        # model object per chunk, and it closes the response at `[DONE]` before
        # the body's end, so every call opened a new connection (a new TLS
        # handshake with OpenAI). Reading to the end keeps it in the pool.
        response = client().post(
            "/chat/completions",
            body=body,
            cast_to=httpx2.Response,
            stream=True,
            options={"timeout": timeout, "security": {"bearer_auth": True}},
        )
    except openai.OpenAIError as e:
        raise _llm_error(e, timeout) from None
    finish_reason = ""
    usage: dict[str, Any] | None = None
    done = False
    try:
        for data in _sse_data(response):
            if done:
                # The answer is whole: reading on to the body's end keeps the
                # connection (what comes after [DONE] is ignored, and cannot fail it).
                if time.monotonic() > deadline:
                    break
                continue
            if data.startswith("[DONE]"):
                done = True
                continue
            chunk = json.loads(data)
            if not isinstance(chunk, dict):
                raise ValueError("a chunk is not a JSON object")
            if chunk.get("error"):
                raise _stream_error(chunk["error"], received)
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in (chunk.get("choices") or [])[:1]:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    received.append(delta["content"])
                    yield delta["content"]
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
            if time.monotonic() > deadline:
                raise LlmError(
                    f"OpenAI did not finish its answer within {timeout:g} seconds.",
                    retryable=True,
                    kind="timeout",
                    received="".join(received),
                )
    except (httpx2.HTTPError, httpx.HTTPError, OSError, ValueError, AttributeError) as e:
        # The connection dropped mid-answer, or a chunk was not the JSON expected.
        if not done:
            timed_out = isinstance(e, (httpx2.TimeoutException, httpx.TimeoutException))
            raise LlmError(
                f"OpenAI's answer broke off: {str(e) or type(e).__name__}",
                retryable=True,
                kind="timeout" if timed_out else "network",
                received="".join(received),
            ) from None
    finally:
        response.close()
    if usage is None:
        raise LlmError(
            "OpenAI's answer ended without its usage.",
            retryable=True,
            kind="network",
            received="".join(received),
        )
    details = usage.get("prompt_tokens_details") or {}
    yield Completion(
        content="".join(received),
        prompt_tokens=usage.get("prompt_tokens") or 0,
        cached_tokens=details.get("cached_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        finish_reason=finish_reason,
    )


def _sse_data(response: httpx2.Response) -> Iterator[str]:
    """The `data` of each server-sent event, to the end of the body (fields
    other than `data` and comments are skipped; multi-line data is joined)."""
    lines: list[str] = []
    for line in response.iter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[6:] if line.startswith("data: ") else line[5:])
    if lines:
        yield "\n".join(lines)


def _stream_error(error: object, received: list[str]) -> LlmError:
    """An error event in the stream, as the SDK reported it (an APIError: retryable)."""
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return LlmError(
        f"OpenAI error: {message}",
        retryable=True,
        kind="server",
        received="".join(received),
    )
