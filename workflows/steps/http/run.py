"""The `http` step's checks and execution: one request through the guarded client.

Free (no budget), but it waits on the network: the engine hands it the run's
context (`NETWORK`), and it gives its database connection back before the
request leaves. Every request goes through config/lib/outbound.py: public
addresses only, unless the operator allows an internal host
(OUTBOUND_ALLOWED_HOSTS) and the workspace has not narrowed it away.

Like any free step it is recorded once it has its answer: a worker that dies
while the request is in flight leaves no row, and the resumed run sends the
request again (as a paid call whose answer was not committed may be). An
endpoint that must not act twice should be made idempotent on its side.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from django.utils import timezone
from jsonschema.exceptions import SchemaError, ValidationError

from accounts.models import Workspace
from config.lib import outbound
from workflows import sql
from workflows.llm import schema_validation
from workflows.rendering import REFERENCE_RE, render
from workflows.steps.context import StepContext, StepFailed, StepResult
from workflows.steps.http import secrets
from workflows.steps.http.config import (
    HEADER_NAME_RE,
    MAX_RESPONSE_BYTES,
    HttpStep,
    templates,
)

# Free, but the engine passes the run's context and the step releases its connection.
NETWORK = True
# The caller's headers kept when a redirect leads to another origin: no credentials.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-encoding", "user-agent", "content-type"})
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_JSON_TYPE_RE = re.compile(r"^[^;]*[/+]json\b", re.IGNORECASE)
# How much of a failed answer's body its error quotes.
ERROR_BODY_BYTES = 500


def check(step: HttpStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    url = step.url.strip()
    if not url:
        problems.append(("url", "The URL is empty."))
    elif not REFERENCE_RE.search(url):
        # A literal internal address the operator allows is judged at run time (a
        # workspace may have narrowed it).
        reason = outbound.url_refusal(
            url, allowed=outbound.Allowance.for_workspace(narrowed=False, hosts="")
        )
        if reason:
            problems.append(("url", reason))
    elif not url.startswith("{{") and not re.match(r"https?://", url, re.IGNORECASE):
        problems.append(("url", "Start the URL with http:// or https://."))
    for name in step.headers:
        if not HEADER_NAME_RE.fullmatch(name):
            problems.append(("headers", f'"{name}" is not a valid header name.'))
        elif name.lower() in _FORBIDDEN_HEADERS:
            problems.append(("headers", f"The {name} header is set by Stepwise."))
    if step.body_type != "none" and step.method in ("GET", "HEAD"):
        problems.append(("body_type", f"A {step.method} request has no body."))
    if step.body_type == "json":
        try:
            json.loads(step.body)
        except (ValueError, RecursionError) as error:
            why = "it is nested too deeply" if isinstance(error, RecursionError) else str(error)
            problems.append(
                ("body", f'Not valid JSON: {why}. Put variables inside strings: "{{{{ x }}}}".')
            )
    if step.response_schema is not None:
        problems += [("response_schema", m) for m in schema_problems(step.response_schema)]
    return problems


def schema_problems(schema: dict[str, Any]) -> list[str]:
    patterns = schema_validation.pattern_problems(schema)
    if patterns:
        return patterns
    try:
        schema_validation.check_schema(schema)
    except SchemaError as error:
        where = ".".join(["schema", *map(str, error.path)])
        return [f"{where}: not a valid JSON Schema: {error.message}"]
    return []


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    def as_text(self) -> str:
        lines = [f"{self.method} {self.url}", *(f"{k}: {v}" for k, v in self.headers.items())]
        text = "\n".join(lines)
        if self.body is not None:
            text += "\n\n" + self.body.decode("utf-8", errors="replace")
        return text


def build_request(step: HttpStep, variables: Mapping[str, object]) -> Request:
    """The request the step's templates describe, filled in from `variables`."""
    url = render(step.url, variables).strip()
    if step.query:
        query = urlencode([(name, render(value, variables)) for name, value in step.query.items()])
        parts = urlsplit(url)
        joined = f"{parts.query}&{query}" if parts.query else query
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))
    headers = {"User-Agent": "Stepwise", "Accept": "application/json, text/*;q=0.9, */*;q=0.8"}
    for name, template in step.headers.items():
        value = render(template, variables)
        if "\r" in value or "\n" in value:
            raise StepFailed(f"The {name} header's value has a line break.")
        headers[name] = value
    body: bytes | None = None
    if step.body_type == "text":
        body = render(step.body, variables).encode()
        _default(headers, "Content-Type", "text/plain; charset=utf-8")
    elif step.body_type == "json":
        try:
            document = json.loads(step.body)
        except (ValueError, RecursionError):
            raise StepFailed("The JSON body is not valid JSON.") from None
        body = json.dumps(_fill(document, variables), ensure_ascii=False).encode()
        _default(headers, "Content-Type", "application/json")
    return Request(method=step.method, url=url, headers=headers, body=body)


def _default(headers: dict[str, str], name: str, value: str) -> None:
    if not any(key.lower() == name.lower() for key in headers):
        headers[name] = value


def _fill(node: object, variables: Mapping[str, object]) -> object:
    """A JSON body with its strings rendered; a string that is one reference alone
    becomes the value itself (a number stays a number, an object an object)."""
    if isinstance(node, str):
        match = REFERENCE_RE.fullmatch(node.strip())
        if match:
            return json.loads(
                render("{{ " + match.group("name") + match.group("path") + " | json }}", variables)
            )
        return render(node, variables)
    if isinstance(node, dict):
        return {key: _fill(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, variables) for value in node]
    return node


def execute(step: HttpStep, context: StepContext) -> StepResult:
    """Send the request and return `{"status", "headers", "json" | "text"}`.

    The request is recorded as sent with every secret replaced by `•••`; the
    answer, its headers and any error are scrubbed of the secrets' values. A
    request that uses a secret goes only to that secret's hosts, its redirects
    too: otherwise it fails, not retried, before the hop is sent. An
    answer outside 2xx fails the step with its status and the first 500 bytes
    of its body."""
    names = secrets.names_used(template for _, template in templates(step))
    used = secrets.secrets_for(context.workspace_id, names)
    values = used.values
    workspace = Workspace.objects.only("outbound_narrowed", "outbound_allowed_hosts").get(
        id=context.workspace_id
    )
    allowance = outbound.Allowance.for_workspace(
        narrowed=workspace.outbound_narrowed, hosts=workspace.outbound_allowed_hosts
    )
    sql.connection_release()  # while the request waits on the network
    secret_values = list(values.values())

    def clean(value: object) -> Any:
        return secrets.scrub(value, secret_values)

    shown = build_request(
        step, {**context.variables, secrets.NAMESPACE: dict.fromkeys(values, secrets.REDACTED)}
    )
    record = [{"role": "request", "label": "Request", "content": clean(shown.as_text())}]
    try:
        request = build_request(step, {**context.variables, secrets.NAMESPACE: values})
    except StepFailed as e:
        raise StepFailed(clean(e.message), messages=record) from None
    timeout = float(step.timeout_seconds)
    if context.deadline is not None:
        left = (context.deadline - timezone.now()).total_seconds()
        if left <= 0:
            raise StepFailed("No time left in the run for the request.", messages=record)
        timeout = min(timeout, left)
    client = outbound.GuardedClient(
        timeout=timeout,
        max_bytes=MAX_RESPONSE_BYTES,
        allowed=allowance,
        cross_origin_headers=_CROSS_ORIGIN_HEADERS,
        # Each secret goes only to its hosts: checked at every hop before DNS.
        before_hop=used.guard if names else None,
    )
    started = time.monotonic()
    try:
        response = client.request(
            request.method, request.url, content=request.body, headers=request.headers
        )
    except outbound.OutboundRefused as e:
        raise StepFailed(clean(f"Refused: {e}"), messages=record, kind="refused") from None
    except outbound.OutboundError as e:
        # A timeout, a broken connection, an answer too large: it may pass later.
        kind = "timeout" if isinstance(e.__cause__, httpx.TimeoutException) else "network"
        raise StepFailed(clean(str(e)), messages=record, kind=kind, retryable=True) from None
    latency_ms = int((time.monotonic() - started) * 1000)
    headers = clean({k.lower(): v for k, v in response.headers.items()})
    size = len(response.content)
    record.append(
        {
            "role": "response",
            "label": "Response",
            "content": clean(
                f"HTTP {response.status_code} · {size:,} bytes · {latency_ms:,} ms\n"
                + "\n".join(f"{k}: {v}" for k, v in headers.items())
            ),
            "status": str(response.status_code),
            "size": str(size),
            "latency_ms": str(latency_ms),
        }
    )
    text = _decode(response.content, headers.get("content-type", ""))
    if not 200 <= response.status_code < 300:
        snippet = _decode(response.content[:ERROR_BODY_BYTES], headers.get("content-type", ""))
        status = response.status_code
        raise StepFailed(
            clean(f"HTTP {status}: {snippet}".strip()),
            messages=record,
            kind="http",
            status=status,
            retryable=status in (408, 425, 429) or status >= 500,
            retry_after=_retry_after(headers.get("retry-after")),
        )
    output: dict[str, Any] = {"status": response.status_code, "headers": headers}
    document = _json(text, headers.get("content-type", ""), wanted=step.response_schema is not None)
    if document is not _NOT_JSON:
        output["json"] = clean(document)
    else:
        output["text"] = clean(text)
    if step.response_schema is not None:
        if "json" not in output:
            raise StepFailed(
                "The answer is not JSON, but the step has a response schema.", messages=record
            )
        try:
            schema_validation.validate(output["json"], step.response_schema)
        except (ValidationError, RecursionError) as e:
            detail = "it is nested too deeply" if isinstance(e, RecursionError) else e.message
            raise StepFailed(
                clean(f"The answer does not match the response schema: {detail}"), messages=record
            ) from None
    return StepResult(output=output, messages=record)


_NOT_JSON = object()


def _json(text: str, content_type: str, *, wanted: bool) -> object:
    if not (wanted or _JSON_TYPE_RE.match(content_type)):
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _decode(content: bytes, content_type: str) -> str:
    match = re.search(r"charset=([\w.-]+)", content_type, re.IGNORECASE)
    try:
        return content.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def _retry_after(value: str | None) -> float | None:
    """A `Retry-After` in seconds (its HTTP-date form is not honoured), at most 2 minutes."""
    try:
        return min(max(float(value), 0.0), 120.0) if value else None
    except ValueError:
        return None
