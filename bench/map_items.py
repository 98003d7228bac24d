"""A map's items at scale (issue 14): 1,000 items, 50 at once, each call
answered by the fake OpenAI server after 1 s. The ideal is 1,000 / 50 x 1 s =
20 s; measured from `run_start` to the run finished in the database (polled
every 50 ms), with the worker's peak RSS over its idle RSS (its memory per item
in flight) and the worker's CPU per item, read from /proc.

    python -m bench.map_items [--items 1000] [--concurrency 50] [--latency-ms 1000]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from bench.harness import Stack, workspace_and_workflow, write_result


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=1000)
    args = parser.parse_args()
    with Stack(workers=1, concurrency=8, latency_ms=args.latency_ms) as stack:
        from workflows import services
        from workflows.models import Run, StepItem

        definition = {
            "name": "Map at scale",
            "inputs": [{"name": "things", "type": "json"}],
            "steps": [
                {
                    "key": "each",
                    "type": "map",
                    "over": "{{ things }}",
                    "concurrency": args.concurrency,
                    "prompt": "One line about {{ item }}",
                    "max_tokens": 16,
                }
            ],
        }
        _, workflow, version = workspace_and_workflow(definition)
        worker = stack.workers[0]
        pid = worker.process.pid  # type: ignore[union-attr]
        # Warm the worker up (its threads, its connections) with a small map first.
        warm = services.run_start(
            workflow=workflow, version=version, trigger=Run.Trigger.API, inputs={"things": [1, 2]}
        )
        while not Run.objects.filter(id=warm.id, status__in=Run.FINISHED).exists():
            time.sleep(0.05)
        rss_idle = worker.rss_kib()
        peak = {"rss": rss_idle}
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak["rss"] = max(peak["rss"], worker.rss_kib())
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        cpu_before = _cpu_seconds(pid)
        started = time.perf_counter()
        run = services.run_start(
            workflow=workflow,
            version=version,
            trigger=Run.Trigger.API,
            inputs={"things": [f"thing {i}" for i in range(args.items)]},
        )
        while not Run.objects.filter(id=run.id, status__in=Run.FINISHED).exists():
            time.sleep(0.05)
        wall = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu_before
        stop.set()
        watcher.join()
        run.refresh_from_db()
        items = StepItem.objects.filter(run=run)
        ideal = args.items / args.concurrency * args.latency_ms / 1000
        calls = stack.fake_calls()["total"]
        result = {
            "items": args.items,
            "concurrency": args.concurrency,
            "latency_ms": args.latency_ms,
            "status": run.status,
            "items_succeeded": items.filter(status="succeeded").count(),
            "model_calls": calls,
            "wall_s": round(wall, 2),
            "ideal_s": ideal,
            "ratio_to_ideal": round(wall / ideal, 3),
            "worker_rss_kib": {"idle": rss_idle, "peak": peak["rss"]},
            "worker_rss_kib_per_item_in_flight": round(
                (peak["rss"] - rss_idle) / args.concurrency, 1
            ),
            "worker_cpu_ms_per_item": round(cpu * 1000 / args.items, 2),
            "load_average": os.getloadavg(),
        }
        write_result("map_items", result)


if __name__ == "__main__":
    main()
