"""Concurrency (issue 7, benchmark 4).

2,000 one-step runs against a fake server that takes 5 s per call, on ONE
worker process with a threads pool. Reports the peak number of LLM calls in
flight (the fake server counts them), the completion time against the ideal
(ceil(runs / threads) waves of 5 s), and resident memory per in-flight call
(the worker's RSS at peak minus its RSS when idle, divided by the peak).

    python -m bench.concurrency [--runs 2000] [--threads 600] [--latency-ms 5000]
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time

from bench.compare_n8n import CpuMeter, _postgres_pids
from bench.harness import Stack, chain, workspace_and_workflow, write_result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=600)
    parser.add_argument("--latency-ms", type=int, default=5000)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument(
        "--worker-env", action="append", default=[], help="NAME=VALUE for the worker process"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    with Stack(
        workers=1,
        concurrency=args.threads,
        latency_ms=args.latency_ms,
        pool_size=args.pool,
        extra_env={
            "RUN_MAX_IN_FLIGHT_PER_WORKSPACE": str(args.runs),
            **dict(item.split("=", 1) for item in args.worker_env),
        },
    ) as stack:
        from workflows import services
        from workflows.models import Run

        worker = stack.workers[0]
        _, workflow, version = workspace_and_workflow(chain(1))
        time.sleep(2)
        idle_rss = worker.rss_kib()
        peak_rss = idle_rss
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_rss
            while not stop.is_set():
                peak_rss = max(peak_rss, worker.rss_kib())
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # Where the time goes: a worker near one core of CPU is bound by its GIL.
        assert worker.process
        worker_pid = worker.process.pid
        worker_cpu = CpuMeter(lambda: [worker_pid])
        postgres_cpu = CpuMeter(lambda: _postgres_pids(stack.db))
        from django.db import transaction

        # One transaction: the runs are inserted first and their messages all
        # sent at commit, so the workers see the whole batch at once.
        with transaction.atomic():
            ids = [
                services.run_start(
                    workflow=workflow,
                    version=version,
                    trigger=Run.Trigger.API,
                    inputs={"topic": str(i)},
                ).id
                for i in range(args.runs)
            ]
            worker_cpu.start()
            postgres_cpu.start()
            started = time.perf_counter()
        enqueued = time.perf_counter() - started
        while Run.objects.filter(id__in=ids).exclude(status__in=Run.FINISHED).exists():
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        worker_s, postgres_s = worker_cpu.stop(), postgres_cpu.stop()
        stop.set()
        calls = stack.fake_calls()
        succeeded = Run.objects.filter(id__in=ids, status=Run.Status.SUCCEEDED).count()
        peak = calls["max_in_flight"]
        ideal = math.ceil(args.runs / args.threads) * args.latency_ms / 1000
        write_result(
            "concurrency",
            {
                "runs": args.runs,
                "threads": args.threads,
                "db_pool": args.pool,
                "latency_ms": args.latency_ms,
                "succeeded": succeeded,
                "enqueue_s": round(enqueued, 2),
                "elapsed_s": round(elapsed, 2),
                "ideal_s": ideal,
                "efficiency": round(ideal / elapsed, 3),
                "peak_in_flight_per_worker_process": peak,
                "idle_rss_mib": round(idle_rss / 1024, 1),
                "peak_rss_mib": round(peak_rss / 1024, 1),
                "kib_per_in_flight_call": round((peak_rss - idle_rss) / max(peak, 1), 1),
                "worker_cpu_ms_per_run": round(worker_s * 1000 / args.runs, 2),
                "worker_cpu_cores_busy": round(worker_s / elapsed, 2),
                "postgres_cpu_ms_per_run": round(postgres_s * 1000 / args.runs, 2),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "worker_env": args.worker_env,
            },
        )


if __name__ == "__main__":
    main()
