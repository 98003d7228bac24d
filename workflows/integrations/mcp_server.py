"""`/mcp`: a workspace's exposed workflows as Model Context Protocol tools.

Streamable HTTP, served by the official SDK's low-level `Server` (its tools
differ per caller, so they are listed and called by two handlers rather than
registered once, as `MCPServer` would), stateless and answering JSON: every
POST is one self-contained exchange, so any web process answers any request
and nothing is kept between them.

It is a Django view, so Django's own checks apply as on every other address
(the allowed hosts, the body limit, the security headers), and the SDK sees
the request as an ASGI scope with its body already read. The caller
authenticates with a workspace API token (`Authorization: Bearer sw_…`,
api_auth.py, the API's tokens and rules): no token or a wrong, revoked or
orphaned one is answered 401 before the SDK sees the request. A token sees only
its workspace: another workspace's tools are not listed and its runs are "No
such run.", exactly as ids that do not exist.

The tools are the workflows an admin exposed (`mcp_exposure.py`) that have a
published version, and `runs_get`. A call starts a run of the latest
published version (`services.run_start`, trigger "mcp", the token as its
starter, so its spend is the token's) and waits for it up to
`MCP_CALL_WAIT_SECONDS` holding no database connection (webhooks'
`wait_for_finish`); a run still going then is answered with its id and
status. The same request again (same token, same JSON-RPC id, same tool and
arguments, within 10 to 20 minutes) is the same run, not a second one.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextvars import ContextVar
from typing import Any

import anyio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    RequestId,
    Tool,
)

from accounts.access import run_in
from workflows import selectors, services
from workflows.builder.definition import InputError
from workflows.integrations.api_auth import token_authenticate
from workflows.integrations.mcp_tools import (
    RUNS_GET,
    error_result,
    run_envelope,
    runs_get_tool,
    structured_result,
    workflow_tool,
)
from workflows.integrations.webhooks import (
    OVERLOADED_MESSAGE,
    OVERLOADED_RETRY_AFTER_SECONDS,
    wait_for_finish,
)
from workflows.models import ApiToken, Run
from workflows.schemas import MAX_ID
from workflows.selectors import run_json

# A repeated request is the same run within this window (and the one before): long enough
# for a client's retries, short enough that a later session, whose JSON-RPC ids start again
# at 0, does not get an old run for a new call with the same arguments.
RETRY_WINDOW_SECONDS = 600

# The token of the request being served: set by the view around the SDK's handling of it,
# read by the handlers (the SDK runs them in tasks that inherit the view's context).
_caller: ContextVar[ApiToken] = ContextVar("mcp_caller")


# The tools -----------------------------------------------------------------------------


def _tools(workspace_id: int) -> list[Tool]:
    return [runs_get_tool()] + [
        workflow_tool(
            workflow.mcp_name,
            workflow.name,
            definition.description,
            definition,
        )
        for workflow, version in selectors.mcp_workflows(workspace_id)
        for definition in [services.version_definition(version)]
    ]


async def _list_tools(
    ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
) -> ListToolsResult:
    return ListToolsResult(tools=await sync_to_async(_tools)(_caller.get().workspace_id))


def _idempotency_keys(
    token: ApiToken, request_id: RequestId, name: str, arguments: dict[str, Any]
) -> tuple[str, str]:
    """This window's key and the previous window's, for this request of this token."""
    digest = hashlib.sha256(
        json.dumps([str(request_id), name, arguments], sort_keys=True, default=str).encode()
    ).hexdigest()
    window = int(time.time() // RETRY_WINDOW_SECONDS)
    return f"mcp:{token.id}:{window}:{digest}", f"mcp:{token.id}:{window - 1}:{digest}"


def _run_start(
    token: ApiToken, name: str, arguments: dict[str, Any], request_id: RequestId | None
) -> Run | CallToolResult:
    found = selectors.mcp_workflows(token.workspace_id, name=name)
    if not found:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {name}")
    workflow, version = found[0]
    key = None
    if request_id is not None:
        key, previous_key = _idempotency_keys(token, request_id, name, arguments)
        earlier = selectors.run_by_idempotency_key(workflow, previous_key)
        if earlier is not None:
            earlier.found_existing = True
            return earlier
    try:
        with transaction.atomic():
            return services.run_start(
                workflow=workflow,
                version=version,
                trigger=Run.Trigger.MCP,
                inputs=arguments,
                user=token.created_by,
                api_token=token,
                idempotency_key=key,
            )
    except InputError as e:
        return error_result(str(e), e.details)
    except services.WorkflowInvalid as e:
        return error_result(
            "The published version of this workflow does not validate.",
            [issue.to_dict() for issue in e.issues],
        )


def _call_answer(run: Run) -> CallToolResult:
    return structured_result(
        run_envelope(run), is_error=run.status in (Run.Status.FAILED, Run.Status.CANCELED)
    )


def _runs_get(token: ApiToken, arguments: dict[str, Any]) -> CallToolResult:
    run_id = arguments.get("run_id")
    if isinstance(run_id, bool) or not isinstance(run_id, int) or not 1 <= run_id <= MAX_ID:
        return error_result("run_id must be the id of a run (a whole number).")
    try:
        run = run_in(token.workspace_id, run_id)
    except Http404:
        return error_result("No such run.")
    return structured_result(run_json(run))


async def _call_tool(
    ctx: ServerRequestContext[Any], params: CallToolRequestParams
) -> CallToolResult:
    token = _caller.get()
    arguments = dict(params.arguments or {})
    if params.name == RUNS_GET:
        return await sync_to_async(_runs_get)(token, arguments)
    try:
        started = await sync_to_async(_run_start)(token, params.name, arguments, ctx.request_id)
    except OperationalError:
        # No pooled connection in time (config/asgi.py): nothing was committed.
        return error_result(OVERLOADED_MESSAGE.format(seconds=OVERLOADED_RETRY_AFTER_SECONDS))
    if isinstance(started, CallToolResult):
        return started
    return _call_answer(await wait_for_finish(started, settings.MCP_CALL_WAIT_SECONDS))


SERVER: Server[Any] = Server(
    "stepwise",
    title="Stepwise",
    instructions=(
        "Each tool runs a published Stepwise workflow of your workspace and answers its "
        "output, or the run's id and status if it is still going; runs_get reads a run."
    ),
    on_list_tools=_list_tools,
    on_call_tool=_call_tool,
)


# The view ------------------------------------------------------------------------------


def _authenticate(request: HttpRequest) -> ApiToken | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token_authenticate(value.strip())


def _scope(request: HttpRequest) -> dict[str, Any]:
    """The request as the SDK's ASGI transport reads it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.items()
        ],
        "client": None,
        "server": None,
    }


async def _serve(request: HttpRequest) -> HttpResponse:
    """Hand the request to the SDK and collect its (JSON, never streamed) answer."""
    body = request.body
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        # Nothing more comes: the exchange ends when the SDK has answered.
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    # Stateless: a manager per request costs a task group, and keeps nothing between them.
    manager = StreamableHTTPSessionManager(
        app=SERVER,
        json_response=True,
        stateless=True,
        max_request_body_size=settings.MAX_REQUEST_BODY_BYTES,
    )
    async with manager.run():
        await manager.handle_request(_scope(request), receive, send)  # type: ignore[arg-type]
    response = HttpResponse(b"".join(chunks), status=status)
    for name, value in headers:
        if name.lower() != b"content-length":
            response[name.decode("latin-1")] = value.decode("latin-1")
    return response


@csrf_exempt
async def mcp_endpoint(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        # No server-sent event stream and no sessions to delete: each POST stands alone.
        return JsonResponse(
            {"error": "Send MCP messages with POST.", "details": None},
            status=405,
            headers={"Allow": "POST"},
        )
    try:
        token = await sync_to_async(_authenticate)(request)
    except OperationalError:
        # Over capacity (no pooled connection in time), answered as webhooks and the API do.
        return JsonResponse(
            {
                "error": OVERLOADED_MESSAGE.format(seconds=OVERLOADED_RETRY_AFTER_SECONDS),
                "details": None,
            },
            status=503,
            headers={"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)},
        )
    if token is None:
        return JsonResponse(
            {"error": "A valid API token is required: Authorization: Bearer sw_…", "details": None},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = _caller.set(token)
    try:
        return await _serve(request)
    finally:
        _caller.reset(caller)
