"""Overload (issue 13, target 7): signed webhooks at rates beyond capacity.

The stack as compare_n8n runs it (2 uvicorn processes, 1 Celery worker x 32
threads, PostgreSQL with the default pool, the fake OpenAI server at 0
latency, a 1-step LLM workflow), driven by the constant-arrival-rate
generator (bench/loadgen.py: latency from each request's due time, a 30 s
timeout per request). For each rate: the answers by status, the latency of
the 202s and of the 503s apart (p50, p99, max, and the share of 503s
answered within 100 ms), and whether every accepted delivery's run finished:
each request carries a webhook-id of its own, so the runs created are the
202s (plus 202s sent after the generator gave up on them), and all of them
must finish.

    python -m bench.overload [--rates 50,200,400] [--seconds 15] [--web-workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import loadgen
from bench.harness import (
    ROOT,
    Stack,
    chain,
    summary,
    web_start,
    workspace_and_workflow,
    write_result,
)


def measure(url: str, build, rate: int, seconds: float, workflow_id: int) -> dict:  # type: ignore[no-untyped-def]
    from workflows.models import Run

    runs = Run.objects.filter(workflow_id=workflow_id)
    before = runs.count()
    phase = loadgen.run(url, rate, seconds, build)
    answered = time.monotonic()
    accepted = phase.statuses.get(202, 0)
    # Every run created, also those whose 202 came after the generator's 30 s timeout.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if runs.filter(status__in=Run.FINISHED).count() >= runs.count():
            break
        time.sleep(0.5)
    drained = time.monotonic()
    created = runs.count() - before
    finished = runs.filter(status__in=Run.FINISHED).count() - before
    succeeded = runs.filter(status=Run.Status.SUCCEEDED).count() - before
    by_status = phase.latencies_by_status
    refused = by_status.get(503, [])
    return {
        "rate": rate,
        "requests": phase.requests,
        "statuses": phase.statuses,
        "transport_errors": phase.transport_errors,
        "latency_ms": {str(status): summary(values) for status, values in by_status.items()},
        "latency_ms_all": summary(phase.latencies_ms),
        "share_of_503s_within_100ms": (
            round(sum(1 for x in refused if x <= 100) / len(refused), 3) if refused else None
        ),
        "runs_created": created,
        "runs_finished": finished,
        "runs_succeeded": succeeded,
        # A 202 the generator gave up on (its 30 s timeout) still started a run.
        "every_accepted_run_finished": created >= accepted and finished == created,
        "drain_s_after_last_answer": round(drained - answered, 1),
        "generator_cpu_ms_per_request": round(phase.generator_cpu_s * 1000 / phase.requests, 2),
        "generator_max_send_lag_ms": round(phase.max_send_lag_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="50,200,400")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--stepwise-env", action="append", default=[], help="NAME=VALUE for Stepwise's processes"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.stepwise_env)
    load_before = os.getloadavg()
    with Stack(workers=1, concurrency=32, pool_size=None, extra_env=extra) as stack:
        from workflows.integrations.triggers import trigger_create

        _, workflow, _ = workspace_and_workflow(chain(1))
        created = trigger_create(workflow=workflow, user=None, rate_limit_per_minute=1_000_000)
        web, port = web_start(stack.env, args.web_workers)
        try:
            url = f"http://127.0.0.1:{port}/hooks/{created.trigger.public_id}"
            build = loadgen.signed_webhooks(created.secret)
            loadgen.run(url, 20, 3, build)  # warm-up: connections, pools, imports
            time.sleep(2)
            rows = []
            for rate in [int(r) for r in args.rates.split(",")]:
                rows.append(measure(url, build, rate, args.seconds, workflow.id))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                time.sleep(2)
        finally:
            web.terminate()
            web.wait()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    write_result(
        "overload",
        {
            "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
            "commit": commit,
            "cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "seconds_per_rate": args.seconds,
            "stepwise": f"{args.web_workers} uvicorn workers, 1 Celery worker x 32 threads",
            "stepwise_env": extra,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
