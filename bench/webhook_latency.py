"""Webhook accept latency (issue 7, benchmark 1).

Signed deliveries (the reference `standardwebhooks` library signs each one)
at a constant arrival rate to `POST /hooks/<id>` served by uvicorn (ASGI),
with a real worker executing the runs. The generator is open loop: request n
is due at start + n / rate whatever happened before, and its latency is
measured from that due time, so a stall shows up in the percentiles instead
of silently delaying later requests (no coordinated omission).

    python -m bench.webhook_latency [--rate 100] [--seconds 60] [--web-workers 1] [--worker-nice 0]

`--worker-nice 10` runs the worker at a lower CPU priority than the web
process, as a deployment that gives the latency-critical accept path the CPU
first would (compose: separate containers, cpu_shares); the runs then queue
during a burst and drain after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

from bench.harness import (
    Stack,
    chain,
    summary,
    web_start,
    workspace_and_workflow,
    write_result,
)


async def load(
    url: str, secret: str, rate: int, seconds: int
) -> tuple[list[float], dict[int, int], int]:
    import aiohttp
    from standardwebhooks.webhooks import Webhook

    signer = Webhook(secret)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def one(session: aiohttp.ClientSession, due: float, n: int) -> None:
        nonlocal errors
        body = json.dumps({"topic": f"delivery {n}"})
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(tz=UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body),
            "content-type": "application/json",
        }
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status != 202:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1
        latencies.append((time.perf_counter() - due) * 1000)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.2
        tasks = []
        for n in range(rate * seconds):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, due, n)))
        await asyncio.gather(*tasks)
    return latencies, statuses, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--worker-nice", type=int, default=0)
    args = parser.parse_args()
    with Stack(workers=1, concurrency=32, worker_nice=args.worker_nice) as stack:
        from workflows.integrations.triggers import trigger_create

        _, workflow, _ = workspace_and_workflow(chain(1))
        created = trigger_create(workflow=workflow, user=None, rate_limit_per_minute=1_000_000)
        web, port = web_start({**stack.env, "DB_POOL_MAX_SIZE": "10"}, args.web_workers)
        try:
            url = f"http://127.0.0.1:{port}/hooks/{created.trigger.public_id}"
            asyncio.run(load(url, created.secret, min(args.rate, 20), 3))  # warm up
            latencies, statuses, errors = asyncio.run(
                load(url, created.secret, args.rate, args.seconds)
            )
        finally:
            web.terminate()
            web.wait()
        write_result(
            "webhook_latency",
            {
                "rate_per_s": args.rate,
                "seconds": args.seconds,
                "web": f"uvicorn, {args.web_workers} process(es)",
                "worker_nice": args.worker_nice,
                "requests": len(latencies),
                "statuses": statuses,
                "errors": errors,
                "latency_ms": summary(latencies),
            },
        )


if __name__ == "__main__":
    main()
