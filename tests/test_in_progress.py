"""The in-progress cap in front of Django (config/lib/in_progress.py): beyond it a webhook
is refused 503 with Retry-After without reaching the application."""

from __future__ import annotations

import asyncio

from config.lib.in_progress import InProgress, RefuseWhileFull


def _call(app: RefuseWhileFull, path: str) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "headers": []}, receive, send))
    return sent


def _app(counter: InProgress, reached: list[str]) -> RefuseWhileFull:
    async def django(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return RefuseWhileFull(
        django, prefix="/hooks/", counter=counter, body=b'{"error": "busy"}', retry_after=2
    )


def test_a_webhook_beyond_the_cap_is_refused_before_the_application() -> None:
    counter = InProgress(lambda: 2)
    reached: list[str] = []
    app = _app(counter, reached)
    assert counter.take() and counter.take()
    assert not counter.take()  # at the cap
    start, body = _call(app, "/hooks/abc")
    assert start["status"] == 503
    assert (b"retry-after", b"2") in start["headers"]
    assert body["body"] == b'{"error": "busy"}'
    assert reached == []
    # Other paths are not capped; a place given back lets webhooks in again.
    assert _call(app, "/api/v1/runs")[0]["status"] == 202
    counter.give_back()
    assert _call(app, "/hooks/abc")[0]["status"] == 202
    assert reached == ["/api/v1/runs", "/hooks/abc"]


def test_a_cap_of_zero_refuses_nothing() -> None:
    counter = InProgress(lambda: 0)
    reached: list[str] = []
    assert all(counter.take() for _ in range(100))
    assert _call(_app(counter, reached), "/hooks/abc")[0]["status"] == 202
