"""CPU per webhook in the uvicorn process at a low rate (no saturation)."""

import asyncio
import os
import subprocess
import sys
import time

from bench.harness import ROOT, Stack, chain, free_port, wait_http, workspace_and_workflow
from bench.webhook_latency import load


def cpu(pid):
    with open(f"/proc/{pid}/stat") as stat:
        f = stat.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


rate = int(sys.argv[1]) if len(sys.argv) > 1 else 10
with Stack(workers=1, concurrency=32) as stack:
    from workflows.integrations.triggers import trigger_create

    _, workflow, _ = workspace_and_workflow(chain(1))
    created = trigger_create(workflow=workflow, user=None, rate_limit_per_minute=1_000_000)
    port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={
            **stack.env,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_COOKIES": "false",
            "DB_POOL_MAX_SIZE": "10",
        },
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/hooks/{created.trigger.public_id}"
        asyncio.run(load(url, created.secret, 10, 2))
        c0 = cpu(web.pid)
        w0 = cpu(stack.workers[0].process.pid)
        lat, st, err = asyncio.run(load(url, created.secret, rate, 10))
        time.sleep(1)
        n = len(lat)
        lat.sort()
        print(
            f"rate {rate}: web cpu ms/req {(cpu(web.pid) - c0) * 1000 / n:.2f}  worker cpu "
            f"ms/run {(cpu(stack.workers[0].process.pid) - w0) * 1000 / n:.2f}  p50 "
            f"{lat[n // 2]:.1f} p99 {lat[int(n * 0.99)]:.1f} statuses {st}"
        )
    finally:
        web.terminate()
        web.wait()
