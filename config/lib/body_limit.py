"""Request body limits enforced in front of Django, before it reads a byte.

Django's ASGI handler spools the whole request body (to memory, then to a
temporary file) before any middleware or view runs, so a limit checked in a
view acts only after a 300 MB upload has arrived. This pure ASGI wrapper
(config/asgi.py) answers 413 first:

- a declared `Content-Length` over the limit is refused before anything is
  read (nor is "100 Continue" sent to a client that asked for it);
- a body of unknown length (chunked) is counted as it arrives and refused
  as soon as it passes the limit; Django is then told the client left, so
  it stops reading and answers nothing itself.

The 413 closes the connection, so the server reads no more of the body.
It is JSON `{"error", "details"}` under /api/ and /hooks/, a small HTML page
elsewhere. A request within its limit passes through untouched: on the hot
webhook path the cost is one scan of the header list, no thread hop.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths whose clients are programs: they get JSON, like every other answer there.
JSON_PREFIXES = ("/api/", "/hooks/")


def size_label(limit: int) -> str:
    """`limit` bytes for people: 1 MB, 2.5 MB, 64 KB, 100 bytes (decimal units)."""
    for unit, size in (("MB", 1_000_000), ("KB", 1_000)):
        if limit >= size:
            return f"{limit / size:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{limit} bytes"


class BodySizeLimit:
    """Wraps an ASGI application: `limit` bytes per request body, or the limit
    of the first prefix in `prefix_limits` that the path starts with."""

    def __init__(
        self, app: ASGIApp, *, limit: int, prefix_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.prefix_limits = tuple((prefix_limits or {}).items())

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.prefix_limits:
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and not chunked and declared.isdigit():
            # The server delivers exactly the declared length, never more.
            if int(declared) > limit:
                await _refuse(scope, send, limit)
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the request on, counting its body as it arrives."""
        received = 0
        refused = False
        responding = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not responding:  # Django answers only after the whole body: always the case
                        await _refuse(scope, send, limit)
                    # As if the client had left: Django's handler stops reading
                    # (RequestAborted) and sends nothing.
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal responding
            if message["type"] == "http.response.start":
                responding = True
            await send(message)

        await self.app(scope, counted_receive, watched_send)


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    message = f"The request body is larger than {size_label(limit)}."
    if scope["path"].startswith(JSON_PREFIXES):
        body = json.dumps({"error": message, "details": {"limit_bytes": limit}}).encode()
        content_type = b"application/json"
    else:
        body = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>Request too large · Stepwise</title></head>\n"
            f"<body><h1>Request too large</h1><p>{message} Go back and send "
            "less.</p></body></html>\n"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                # The server closes the connection after the answer instead of
                # reading (and discarding) the rest of the body.
                (b"connection", b"close"),
                (b"x-content-type-options", b"nosniff"),
                (b"content-security-policy", b"default-src 'none'"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
