"""The nightly prune over 100,000 runs on PostgreSQL (issue 16, retention).

One run is made through the ORM with realistic details (inputs, payload and
output of a few KB, two LLM steps with their messages and outputs, a map
item), then copied with one INSERT ... SELECT over generate_series, as
bench/parked.py does: finished 0 to 59 days ago (about half past the
workspace's 30 days), every 100th one still waiting, with costs and tokens
that vary per run, and its two steps copied with it. Then:

- the usage page's figures (by day over 90 days, by workflow, by starter, this
  month's ledger) are computed before and after, and must be identical;
- `retention.runs_prune()` (beat's task) is timed, and must finish in under a
  minute; the runs it blanked are counted against those due;
- while it runs, another connection writes a run that is not pruned (as the
  engine does) every 20 ms and times each write: the prune's short batches
  hold no lock that others wait on;
- EXPLAIN ANALYZE of the query that finds the next batch, and the table sizes
  before and after (and after a VACUUM, which gives the space back to new rows).

    python -m bench.prune [--runs 100000]
"""

from __future__ import annotations

import argparse
import threading
import time

from bench.harness import Stack, summary, workspace_and_workflow, write_result

DETAIL = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40  # ~2.3 KB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    with Stack(workers=0):
        from django.db import connection, connections
        from django.db.models import F
        from django.utils import timezone

        from workflows import retention
        from workflows.billing.usage import (
            daily_usage,
            month_budget,
            usage_by_member,
            usage_by_workflow,
        )
        from workflows.models import Run, StepItem, StepRun

        definition = {
            "name": "Two calls",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [
                {"key": "s1", "type": "llm", "prompt": "About {{ topic }}", "max_tokens": 16},
                {"key": "s2", "type": "llm", "prompt": "More on {{ topic }}", "max_tokens": 16},
            ],
        }
        workspace, workflow, version = workspace_and_workflow(definition)
        now = timezone.now()
        template = Run.objects.create(
            workspace=workspace,
            workflow=workflow,
            version=version,
            definition=version.definition,
            trigger=Run.Trigger.API,
            status=Run.Status.SUCCEEDED,
            inputs={"topic": DETAIL},
            payload={"topic": DETAIL, "source": "bench"},
            output={"answer": DETAIL},
            tokens_in=400,
            tokens_out=120,
            cost_nanousd=352_000,
            created_at=now,
            started_at=now,
            finished_at=now,
        )
        for position, key in enumerate(("s1", "s2")):
            StepRun.objects.create(
                run=template,
                key=key,
                position=position,
                type="llm",
                status=StepRun.Status.SUCCEEDED,
                model="gpt-4.1-mini",
                messages=[{"role": "user", "content": DETAIL}],
                output=DETAIL,
                tokens_in=200,
                tokens_out=60,
                cost_nanousd=176_000,
                latency_ms=900,
                attempts=1,
                started_at=now,
                finished_at=now,
            )
        StepItem.objects.create(
            run=template, step_key="s1", index=0, status="succeeded", input=DETAIL, output=DETAIL
        )
        run_table, step_table = Run._meta.db_table, StepRun._meta.db_table
        item_table = StepItem._meta.db_table
        varied = {
            "finished_at": "now() - (g %% 60) * interval '1 day' - interval '1 hour'",
            "created_at": "now() - (g %% 60) * interval '1 day' - interval '2 hours'",
            "started_at": "now() - (g %% 60) * interval '1 day' - interval '2 hours'",
            "status": "CASE WHEN g %% 100 = 0 THEN 'waiting' ELSE r.status END",
            "cost_nanousd": "2 * (1000 + g %% 997)",
            "tokens_in": "2 * (100 + g %% 89)",
        }
        columns = [
            f.column for f in Run._meta.concrete_fields if f.column not in ("id", "idempotency_key")
        ]
        select = [varied.get(c, f"r.{c}") for c in columns]
        step_varied = {
            "finished_at": "r.finished_at",
            "started_at": "r.started_at",
            "cost_nanousd": "r.cost_nanousd / 2",
            "tokens_in": "r.tokens_in / 2",
        }
        step_columns = [
            f.column for f in StepRun._meta.concrete_fields if f.column not in ("id", "run_id")
        ]
        item_columns = [
            f.column for f in StepItem._meta.concrete_fields if f.column not in ("id", "run_id")
        ]
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {run_table} ({', '.join(columns)}) "
                f"SELECT {', '.join(select)} FROM {run_table} r "
                f"CROSS JOIN generate_series(1, %s) AS g WHERE r.id = %s",
                [args.runs - 1, template.id],
            )
            # Unfinished runs have no finish: their steps are still in flight.
            cursor.execute(
                f"UPDATE {run_table} SET finished_at = NULL WHERE status = 'waiting' "
                "AND workflow_id = %s",
                [workflow.id],
            )
            cursor.execute(
                f"INSERT INTO {step_table} (run_id, {', '.join(step_columns)}) "
                f"SELECT r.id, {', '.join(step_varied.get(c, 's.' + c) for c in step_columns)} "
                f"FROM {run_table} r JOIN {step_table} s ON s.run_id = %s "
                f"WHERE r.id > %s AND r.workflow_id = %s",
                [template.id, template.id, workflow.id],
            )
            cursor.execute(
                f"INSERT INTO {item_table} (run_id, {', '.join(item_columns)}) "
                f"SELECT r.id, {', '.join('i.' + c for c in item_columns)} "
                f"FROM {run_table} r JOIN {item_table} i ON i.run_id = %s "
                f"WHERE r.id > %s AND r.workflow_id = %s",
                [template.id, template.id, workflow.id],
            )
            for table in (run_table, step_table, item_table):
                cursor.execute(f"ANALYZE {table}")
        insert_s = time.perf_counter() - started

        def sizes() -> dict[str, int]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_total_relation_size(%s), pg_total_relation_size(%s), "
                    "pg_total_relation_size(%s)",
                    [run_table, step_table, item_table],
                )
                run_bytes, step_bytes, item_bytes = cursor.fetchone()
            return {"runs": run_bytes, "steps": step_bytes, "items": item_bytes}

        def figures() -> object:
            return (
                daily_usage(workspace, days=90),
                usage_by_workflow(workspace, days=90),
                usage_by_member(workspace, days=90),
                month_budget(workspace),
            )

        cutoff = retention.retention_cutoff(workspace)
        due = Run.objects.filter(
            workspace=workspace, status__in=Run.FINISHED, finished_at__lt=cutoff
        ).count()
        unfinished = Run.objects.filter(workspace=workspace).exclude(status__in=Run.FINISHED)
        unfinished_count = unfinished.count()
        total_runs = Run.objects.filter(workspace=workspace).count()
        before = figures()
        sizes_before = sizes()
        next_batch = (
            retention._prunable(Run.objects.filter(workspace=workspace, finished_at__lt=cutoff))
            .order_by("id")
            .values("id")[: retention.BATCH_SIZE]
        )
        plan = next_batch.explain(analyze=True).splitlines()

        # Another writer meanwhile: a recent run's row, as the engine writes runs.
        probe = Run.objects.filter(workspace=workspace, finished_at__gte=cutoff).first()
        assert probe is not None
        write_ms: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            try:
                while not stop.is_set():
                    began = time.perf_counter()
                    Run.objects.filter(id=probe.id).update(tokens_cached=F("tokens_cached") + 0)
                    write_ms.append((time.perf_counter() - began) * 1000)
                    time.sleep(0.02)
            finally:
                connections.close_all()

        # What the other backends wait on meanwhile (a lock, or the WAL and the disk).
        waits: dict[str, int] = {}

        def watcher() -> None:
            try:
                with connections["default"].cursor() as cursor:
                    while not stop.is_set():
                        cursor.execute(
                            "SELECT wait_event_type, wait_event FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND state = 'active' AND wait_event IS NOT NULL"
                        )
                        for kind, event in cursor.fetchall():
                            waits[f"{kind}:{event}"] = waits.get(f"{kind}:{event}", 0) + 1
                        time.sleep(0.02)
            finally:
                connections.close_all()

        thread = threading.Thread(target=writer)
        watching = threading.Thread(target=watcher)
        thread.start()
        watching.start()
        started = time.perf_counter()
        pruned = retention.runs_prune()
        prune_s = time.perf_counter() - started
        stop.set()
        thread.join()
        watching.join()

        after = figures()
        assert after == before, "the usage figures changed"
        assert pruned == due, (pruned, due)
        assert Run.objects.filter(workspace=workspace).count() == total_runs
        assert not unfinished.filter(details_pruned_at__isnull=False).exists()
        assert not Run.objects.filter(details_pruned_at__isnull=False, finished_at__gte=cutoff)
        assert not StepRun.objects.filter(
            run__details_pruned_at__isnull=False, output__isnull=False
        ).exists()
        sizes_after = sizes()
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {run_table}, {step_table}, {item_table}")
        sizes_vacuumed = sizes()
        started = time.perf_counter()
        again = retention.runs_prune()
        second_s = time.perf_counter() - started
        result = {
            "runs": total_runs,
            "runs_due": due,
            "runs_unfinished": unfinished_count,
            "insert_seconds": round(insert_s, 2),
            "prune_seconds": round(prune_s, 2),
            "runs_pruned": pruned,
            "batches": -(-pruned // retention.BATCH_SIZE),
            "usage_figures_identical": after == before,
            "second_prune": {"runs_pruned": again, "seconds": round(second_s, 3)},
            "seconds_per_batch": round(prune_s / max(1, -(-pruned // retention.BATCH_SIZE)), 3),
            "concurrent_write_ms": summary(write_ms),
            "waits_seen_every_20ms": dict(sorted(waits.items(), key=lambda kv: -kv[1])),
            "bytes_before": sizes_before,
            "bytes_after": sizes_after,
            "bytes_after_vacuum": sizes_vacuumed,
            "next_batch_plan": plan,
        }
        write_result("prune", result)
        assert prune_s < 60, f"the prune took {prune_s:.1f} s"


if __name__ == "__main__":
    main()
