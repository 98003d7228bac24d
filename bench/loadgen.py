"""A constant-arrival-rate HTTP/1.1 load generator that costs little CPU.

Request n is due at start + n / rate whatever happened before, and its
latency is measured from that due time to the end of its response, so a
stalled server is charged for every request it delays (no coordinated
omission). Requests are never held back waiting for earlier ones.

Connections are plain asyncio streams kept alive on a free list: a request
takes an idle connection or opens a new one, writes its bytes and reads the
status line, the headers and a Content-Length body. There is no client-wide
pool to scan on every request (httpx's shared pool costs milliseconds of
client CPU per request), and `run` reports the generator's own CPU, so that
a server's figures are not the generator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit


@dataclass
class Phase:
    rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    # The same latencies by answer (0: a transport error), e.g. 202s apart from 503s.
    latencies_by_status: dict[int, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: dict[str, int] = field(default_factory=dict)
    max_send_lag_ms: float = 0.0
    generator_cpu_s: float = 0.0
    wall_s: float = 0.0
    connections_opened: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def errors(self, ok: int) -> int:
        return self.requests - self.statuses.get(ok, 0)


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# Servers close idle keep-alive connections (uvicorn after 5 s, Node after 5 s):
# one idle longer than this is closed here rather than reused and found dead.
IDLE_SECONDS = 2.0


class _Connections:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[Conn, float]] = []
        self.opened = 0

    async def get(self) -> Conn:
        now = time.monotonic()
        while self.idle:
            conn, since = self.idle.pop()
            if now - since < IDLE_SECONDS and not conn[0].at_eof():
                return conn
            conn[1].close()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    def put(self, conn: Conn) -> None:
        self.idle.append((conn, time.monotonic()))

    def close(self) -> None:
        for (_, writer), _since in self.idle:
            writer.close()
        self.idle.clear()


async def _exchange(conn: Conn, request: bytes) -> tuple[int, bool]:
    """Send one request; read its answer. Returns the status and whether the connection stays."""
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, keep = 0, True
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep


async def _phase(
    url: str, rate: float, seconds: float, build: Callable[[int], tuple[bytes, dict[str, str]]]
) -> Phase:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conns = _Connections(host, port)
    phase = Phase(rate=rate, seconds=seconds)

    async def one(n: int, due: float) -> None:
        body, headers = build(n)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-length: {len(body)}\r\n"
            f"{head}\r\n"
        ).encode() + body
        conn = None
        status = 0
        try:
            conn = await conns.get()
            status, keep = await asyncio.wait_for(_exchange(conn, request), 30)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            if keep:
                conns.put(conn)
            else:
                conn[1].close()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            kind = type(e).__name__
            phase.transport_errors[kind] = phase.transport_errors.get(kind, 0) + 1
            if conn is not None:
                conn[1].close()
        latency = (time.perf_counter() - due) * 1000
        phase.latencies_ms.append(latency)
        phase.latencies_by_status.setdefault(status, []).append(latency)

    cpu0, wall0 = os.times(), time.perf_counter()
    start = time.perf_counter() + 0.05
    tasks = []
    for n in range(round(rate * seconds)):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        phase.max_send_lag_ms = max(phase.max_send_lag_ms, (time.perf_counter() - due) * 1000)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    cpu1 = os.times()
    phase.wall_s = time.perf_counter() - wall0
    phase.generator_cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    phase.connections_opened = conns.opened
    conns.close()
    with contextlib.suppress(Exception):
        await asyncio.sleep(0)
    return phase


def signed_webhooks(secret: str) -> Callable[[int], tuple[bytes, dict[str, str]]]:
    """`build` for `run`: request n as a Standard Webhooks delivery signed under
    `secret` by the reference library, with a webhook-id of its own."""
    from standardwebhooks.webhooks import Webhook

    signer = Webhook(secret)

    def build(n: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"topic": f"delivery {n}"})
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(tz=UTC)
        return body.encode(), {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body),
        }

    return build


def run(
    url: str, rate: float, seconds: float, build: Callable[[int], tuple[bytes, dict[str, str]]]
) -> Phase:
    """One phase at `rate` requests/s for `seconds`; `build(n)` is request n's body and headers."""
    return asyncio.run(_phase(url, rate, seconds, build))
