"""Requests a process works on at once, and the 503 beyond a cap, answered before Django.

`InProgress` is a count a view keeps around the work it caps (the webhook view:
`WEBHOOKS`, taken before its checks and given back once the run is started; a
caller then waiting with `?wait=` holds no place). The view refuses when it
cannot take a place; but by the time a request reaches a view, Django has
already spent most of what the request costs in a web process (a thread hop,
the middleware stack). So `RefuseWhileFull`, the ASGI wrapper in front of
Django (config/asgi.py), answers a request under its path prefix 503 with
Retry-After at once while the count is at its cap: beyond capacity the
refusals cost next to nothing and stay fast, and the view's own check catches
what passes in between.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from config.lib.body_limit import ASGIApp, Receive, Scope, Send


class InProgress:
    """How many requests of one kind the process works on now; `cap()` the most
    it takes (0: no cap). Exact under uvicorn's one event loop, and with a lock
    where each request runs on a loop of its own (WSGI, the test client)."""

    def __init__(self, cap: Callable[[], int]) -> None:
        self.cap = cap
        self.count = 0
        self._lock = threading.Lock()

    def full(self) -> bool:
        cap = self.cap()
        return bool(cap) and self.count >= cap

    def take(self) -> bool:
        """One more in progress, unless at the cap."""
        with self._lock:
            if self.full():
                return False
            self.count += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.count -= 1


class RefuseWhileFull:
    """Wraps an ASGI application: a request whose path starts with `prefix` is
    answered 503 with `body` (JSON) and `Retry-After` while `counter` is full,
    without reaching the application or reading the request's body."""

    def __init__(
        self, app: ASGIApp, *, prefix: str, counter: InProgress, body: bytes, retry_after: int
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.counter = counter
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(self.prefix)
            and self.counter.full()
        ):
            await send({"type": "http.response.start", "status": 503, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)
