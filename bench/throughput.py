"""Sustained throughput (issue 7, benchmark 3).

1-step runs at rising constant arrival rates: for each rate, runs are started
on a fixed schedule (open loop: a slow system does not slow the arrivals) for
`--seconds`, then the backlog is measured. A rate is held when the number of
unfinished runs stays bounded (below one second of arrivals) through the
window. Runs are started through `services.run_start`, as the API does.

    python -m bench.throughput [--rates 100,150,200,250] [--seconds 60] [--workers 2] \
        [--concurrency 32]
"""

from __future__ import annotations

import argparse
import threading
import time

from bench.harness import Stack, chain, summary, workspace_and_workflow, write_result


def hold(rate: int, seconds: int, workflow, version, starters: int = 4) -> dict:  # type: ignore[no-untyped-def]
    from django.db import connection

    from workflows import services
    from workflows.models import Run

    first_id = (Run.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    start = time.perf_counter() + 0.5
    total = rate * seconds
    lag: list[float] = []
    backlog: list[int] = []

    def starter(offset: int) -> None:
        for n in range(offset, total, starters):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                lag.append(-delay)
            services.run_start(
                workflow=workflow,
                version=version,
                trigger=Run.Trigger.API,
                inputs={"topic": str(n)},
            )
        connection.close()

    threads = [threading.Thread(target=starter, args=(i,)) for i in range(starters)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        backlog.append(
            Run.objects.filter(id__gte=first_id).exclude(status__in=Run.FINISHED).count()
        )
    for t in threads:
        t.join()
    arrivals_done = time.perf_counter()
    while Run.objects.filter(id__gte=first_id).exclude(status__in=Run.FINISHED).exists():
        time.sleep(0.1)
        if time.perf_counter() - arrivals_done > 120:
            break
    drained = time.perf_counter() - arrivals_done
    runs = Run.objects.filter(id__gte=first_id)
    statuses = {s: runs.filter(status=s).count() for s in (Run.Status.SUCCEEDED, Run.Status.FAILED)}
    latencies = [
        (r.finished_at - r.created_at).total_seconds() * 1000
        for r in runs.exclude(finished_at=None).only("created_at", "finished_at")
    ]
    late_arrivals = sum(1 for x in lag if x > 0.05)
    held = (
        max(backlog[len(backlog) // 2 :] or [0]) < rate
        and drained < 2
        and late_arrivals < total * 0.01
    )
    return {
        "rate": rate,
        "seconds": seconds,
        "runs": total,
        "statuses": statuses,
        "backlog_per_second": backlog,
        "drain_after_arrivals_s": round(drained, 2),
        "late_arrivals": late_arrivals,
        "run_latency_ms": summary(latencies),
        "held": held,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="100,150,200,250")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    results = []
    with Stack(workers=args.workers, concurrency=args.concurrency):
        _, workflow, version = workspace_and_workflow(chain(1))
        rates = list(map(int, args.rates.split(",")))
        # Warm-up, not reported: fresh worker threads open their database
        # connections and HTTP pools on their first runs.
        hold(rates[0], 5, workflow, version)
        for rate in rates:
            result = hold(rate, args.seconds, workflow, version)
            print(
                rate,
                result["held"],
                result["backlog_per_second"][-5:],
                result["run_latency_ms"],
                flush=True,
            )
            results.append(result)
            if not result["held"]:
                break
        layout = {
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
            "starters": "4 threads in the bench process (services.run_start)",
            "fake_openai": "1 process, latency 0",
        }
    best = max((r["rate"] for r in results if r["held"]), default=0)
    write_result("throughput", {"layout": layout, "highest_rate_held": best, "rates": results})


if __name__ == "__main__":
    main()
