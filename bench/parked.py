"""Parked runs cost nothing while they wait (issue 14).

10,000 runs parked at a step that waits a week (a `wait` step; an approval
parks the same way, `waiting_for` with a `wake_at` timeout): the first 200
are started through `run_start` and parked by a real worker, the rest are
copies of those rows (the same columns, the same step row), because parking
10,000 runs one by one takes the worker minutes and measures nothing more.
Then, with everything parked:

- the broker holds no message for them (the queue's length in Redis);
- the worker holds no thread for them (its thread count and RSS, before and
  after) and spends no CPU on them (its CPU over 10 s);
- the reaper (beat's job every 10 s) stays fast: `engine.reap()` timed 30
  times, and EXPLAIN ANALYZE of its two wake-up queries.

    python -m bench.parked [--runs 10000]
"""

from __future__ import annotations

import argparse
import time

from bench.harness import Stack, summary, workspace_and_workflow, write_result

PARKED_BY_WORKER = 200


def _proc_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def _proc_cpu_seconds(pid: int) -> float:
    import os

    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    with Stack(workers=1, concurrency=8) as stack:
        import redis
        from django.db import connection

        from workflows import services
        from workflows.models import Run, StepRun
        from workflows.runtime import engine

        definition = {
            "name": "Waits a week",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [
                {"key": "pause", "type": "wait", "seconds": 7 * 86400},
                {"key": "say", "type": "llm", "prompt": "About {{ topic }}", "max_tokens": 16},
            ],
        }
        _, workflow, version = workspace_and_workflow(definition)
        worker = stack.workers[0]
        # Warm the worker up first (its pool threads start with its first tasks).
        quick = workspace_and_workflow(
            {"name": "Quick", "steps": [{"key": "t", "type": "template", "template": "x"}]}
        )[1]
        warm = [
            services.run_start(workflow=quick, trigger=Run.Trigger.API, inputs={}).id
            for _ in range(16)
        ]
        while Run.objects.filter(id__in=warm).exclude(status__in=Run.FINISHED).exists():
            time.sleep(0.1)
        threads_idle = _proc_threads(worker.process.pid)  # type: ignore[union-attr]
        rss_idle = worker.rss_kib()
        ids = [
            services.run_start(
                workflow=workflow,
                version=version,
                trigger=Run.Trigger.API,
                inputs={"topic": str(i)},
            ).id
            for i in range(PARKED_BY_WORKER)
        ]
        deadline = time.monotonic() + 120
        while Run.objects.filter(id__in=ids, status=Run.Status.WAITING).count() < len(ids):
            assert time.monotonic() < deadline, "the runs did not park"
            time.sleep(0.2)
        # The rest: copies of the parked rows (runs and their waiting step).
        copies = args.runs - PARKED_BY_WORKER
        run_table, step_table = Run._meta.db_table, StepRun._meta.db_table
        columns = [
            f.column
            for f in Run._meta.concrete_fields
            if f.column != "id" and f.column != "idempotency_key"
        ]
        step_columns = [
            f.column for f in StepRun._meta.concrete_fields if f.column not in ("id", "run_id")
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {run_table} ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM {run_table} "
                f"CROSS JOIN generate_series(1, %s) AS copy WHERE id = %s",
                [copies, ids[0]],
            )
            cursor.execute(
                f"INSERT INTO {step_table} (run_id, {', '.join(step_columns)}) "
                f"SELECT r.id, {', '.join('s.' + c for c in step_columns)} FROM {run_table} r "
                f"JOIN {step_table} s ON s.run_id = %s "
                f"WHERE r.id > %s AND r.workflow_id = %s",
                [ids[0], max(ids), workflow.id],
            )
            cursor.execute(f"ANALYZE {run_table}")
        parked = Run.objects.filter(status=Run.Status.WAITING).count()
        queue_length = redis.Redis.from_url(stack.env["CELERY_BROKER_URL"]).llen(stack.queue)
        cpu_before = _proc_cpu_seconds(worker.process.pid)  # type: ignore[union-attr]
        time.sleep(10)
        cpu_idle_10s = _proc_cpu_seconds(worker.process.pid) - cpu_before  # type: ignore[union-attr]
        threads_parked = _proc_threads(worker.process.pid)  # type: ignore[union-attr]
        rss_parked = worker.rss_kib()
        reap_ms = []
        parts_ms: dict[str, list[float]] = {}
        from workflows.billing import budget
        from workflows.runtime import dispatch, waking

        for part, call in (
            ("dispatch_all_waiting", dispatch.dispatch_all_waiting),
            ("budget_recheck_waiting", budget.recheck_waiting),
            ("wake_due", waking.wake_due),
        ):
            for _ in range(30):
                started = time.perf_counter()
                call()
                parts_ms.setdefault(part, []).append((time.perf_counter() - started) * 1000)
        for _ in range(30):
            started = time.perf_counter()
            woken = engine.reap()
            reap_ms.append((time.perf_counter() - started) * 1000)
            assert woken == [], woken
        plans = {}
        with connection.cursor() as cursor:
            for name, sql_text in (
                (
                    "due",
                    f"SELECT id FROM {run_table} "
                    "WHERE status = 'waiting' AND wake_at <= now() LIMIT 1000",
                ),
                (
                    "missed_children",
                    f"SELECT DISTINCT p.id FROM {run_table} p "
                    f"JOIN {run_table} c ON c.parent_id = p.id "
                    "WHERE p.status = 'waiting' AND p.waiting_for = 'children' "
                    "AND c.finished_at >= p.waiting_since LIMIT 1000",
                ),
            ):
                cursor.execute("EXPLAIN ANALYZE " + sql_text)
                plans[name] = [row[0] for row in cursor.fetchall()]
        result = {
            "parked_runs": parked,
            "parked_by_the_worker": PARKED_BY_WORKER,
            "broker_messages_for_them": queue_length,
            "worker_threads": {"idle": threads_idle, "with_all_parked": threads_parked},
            "worker_rss_kib": {"idle": rss_idle, "with_all_parked": rss_parked},
            "worker_cpu_seconds_over_10s_while_parked": round(cpu_idle_10s, 3),
            "reap_ms": summary(reap_ms),
            "reap_parts_ms": {part: summary(values) for part, values in parts_ms.items()},
            "plans": plans,
        }
        write_result("parked", result)


if __name__ == "__main__":
    main()
