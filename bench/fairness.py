"""Fairness (issue 7, benchmark 6).

Workspace A floods 1,000 one-step runs at once; while they drain, workspace
B starts a single run every 2 s. B's delay is its run's time from start to
finish minus the same run's time on an idle system (measured first). Fair
sharing (workflows/runtime/dispatch.py) keeps A to RUN_MAX_IN_FLIGHT_PER_WORKSPACE
runs in the broker, so B's run never queues behind the flood.

    python -m bench.fairness [--flood 1000] [--latency-ms 1000]
"""

from __future__ import annotations

import argparse
import time

from bench.harness import Stack, chain, summary, workspace_and_workflow, write_result


def one_run(workflow, version, topic: str) -> float:  # type: ignore[no-untyped-def]
    from workflows import services
    from workflows.models import Run

    started = time.perf_counter()
    run = services.run_start(
        workflow=workflow, version=version, trigger=Run.Trigger.API, inputs={"topic": topic}
    )
    while not Run.objects.filter(id=run.id, status__in=Run.FINISHED).exists():
        time.sleep(0.005)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with Stack(workers=args.workers, concurrency=args.concurrency, latency_ms=args.latency_ms):
        from django.conf import settings
        from django.db import transaction

        from workflows import services
        from workflows.models import Run

        limit = settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE
        _, flood_workflow, flood_version = workspace_and_workflow(chain(1), name="flooder")
        _, b_workflow, b_version = workspace_and_workflow(chain(1), name="bystander")
        idle = [one_run(b_workflow, b_version, f"idle {i}") for i in range(5)]
        baseline = sorted(idle)[len(idle) // 2]
        flood_started = time.perf_counter()
        with transaction.atomic():
            flood = [
                services.run_start(
                    workflow=flood_workflow,
                    version=flood_version,
                    trigger=Run.Trigger.API,
                    inputs={"topic": str(i)},
                ).id
                for i in range(args.flood)
            ]
        delays = []
        while Run.objects.filter(id__in=flood).exclude(status__in=Run.FINISHED).exists():
            delays.append(one_run(b_workflow, b_version, f"busy {len(delays)}") - baseline)
            time.sleep(2)
        flood_s = time.perf_counter() - flood_started
        write_result(
            "fairness",
            {
                "flood_runs": args.flood,
                "latency_ms": args.latency_ms,
                "limit_per_workspace": limit,
                "workers": args.workers,
                "threads_per_worker": args.concurrency,
                "flood_drained_s": round(flood_s, 1),
                "bystander_idle_run_s": round(baseline, 3),
                "bystander_delay_s": summary(delays),
                "max_delay_under_2s": max(delays, default=0) <= 2,
            },
        )


if __name__ == "__main__":
    main()
