"""Chaos (issue 7, benchmark 5): kill -9 workers and restart Redis under load.

Part 1: 200 five-step runs on two worker processes while a random worker is
killed with SIGKILL 20 times and restarted. Proven: every run succeeds; no
step that had finished (committed) before a kill is ever called again (the
fake server's per-prompt counters, snapshotted at each kill, do not move for
those steps); and after each kill every run that was in flight makes
progress again within 60 s (lease expiry + the reaper on the real beat).

Part 2: Redis is restarted (it keeps nothing on disk here, so every queued
message is lost) in the middle of 200 more runs. Proven: 0 runs lost; the
reaper re-sends what the broker forgot.

    python -m bench.chaos [--runs 200] [--kills 20]

Under a backlog (issue 13, target 9): with `--backlog` part 1's runs are
inserted in one transaction and all sent to the broker at its commit (fair
sharing's limit raised to --runs), so the runs the reaper re-sends after a
kill are sent while hundreds of new ones queue (`backlog_at_kills`: runs not
started yet at each kill); `--kill-gap 20` leaves a killed worker time to
start again before the next kill, so that a recovery measures the lease, the
reaper and the queue rather than a machine too loaded to boot a worker.
`--no-redis-restart` skips part 2: it restarts
the Redis server on 6379, which other work on a shared machine may be using.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import time
from pathlib import Path

from bench.harness import Stack, summary, workspace_and_workflow, write_result

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def definition() -> dict:
    steps = [
        {
            "key": f"s{i}",
            "type": "llm",
            "max_tokens": 16,
            "prompt": f"Chaos step {i} of run {{{{ topic }}}} [[fake:latency=400]]",
        }
        for i in range(1, 6)
    ]
    return {"name": "Chaos", "inputs": [{"name": "topic", "type": "text"}], "steps": steps}


def finished_steps():  # type: ignore[no-untyped-def]
    from workflows.models import StepRun

    return {
        (run_id, key)
        for run_id, key in StepRun.objects.filter(status=StepRun.Status.SUCCEEDED).values_list(
            "run_id", "key"
        )
    }


def prompt_of(topic: str, key: str) -> str:
    return f"Chaos step {key[1:]} of run {topic} [[fake:latency=400]]"


def part_kills(  # type: ignore[no-untyped-def]
    stack: Stack, workflow, version, runs: int, kills: int, backlog: bool, kill_gap: float | None
) -> dict:
    from django.db import transaction
    from django.db.models import Count

    from workflows import services
    from workflows.models import Run, StepRun

    # With `backlog`, one transaction: every run is sent at its commit.
    with transaction.atomic() if backlog else contextlib.nullcontext():
        ids = [
            services.run_start(
                workflow=workflow,
                version=version,
                trigger=Run.Trigger.API,
                inputs={"topic": f"k{i}"},
            ).id
            for i in range(runs)
        ]
    topics = dict(Run.objects.filter(id__in=ids).values_list("id", "inputs__topic"))
    snapshots = []
    recoveries = []
    not_started = []  # at each kill
    # When the reaper re-sent each run in flight at a kill: its enqueued_at moves then
    # (the database's clock), watched until the next re-send could overwrite it.
    sent_before: dict[tuple[int, int], object] = {}
    resent_at: dict[tuple[int, int], float] = {}

    def watch_resends(seconds: float) -> None:
        until = time.monotonic() + seconds
        while True:
            pending = {run_id for (_, run_id) in set(sent_before) - set(resent_at)}
            now_sent = dict(Run.objects.filter(id__in=pending).values_list("id", "enqueued_at"))
            for key, before in sent_before.items():
                after = now_sent.get(key[1])
                if key not in resent_at and after is not None and after != before:
                    resent_at[key] = after.timestamp()
            if time.monotonic() >= until:
                return
            time.sleep(0.5)

    for kill in range(kills):
        watch_resends(kill_gap or random.uniform(1.0, 3.0))
        in_flight = dict(
            StepRun.objects.filter(run_id__in=ids, status=StepRun.Status.SUCCEEDED)
            .values_list("run_id")
            .annotate(n=Count("id"))
        )
        running = list(
            Run.objects.filter(id__in=ids, status=Run.Status.RUNNING).values_list("id", flat=True)
        )
        done = finished_steps()
        calls = stack.fake_calls()["by_prompt"]
        snapshots.append(
            {(r, k): calls.get(prompt_of(topics[r], k), 0) for r, k in done if r in topics}
        )
        not_started.append(Run.objects.filter(id__in=ids, status=Run.Status.QUEUED).count())
        sent_before.update(
            {
                (kill, run_id): enqueued_at
                for run_id, enqueued_at in Run.objects.filter(id__in=running).values_list(
                    "id", "enqueued_at"
                )
            }
        )
        victim = random.choice(stack.workers)
        killed_at = time.monotonic()
        victim.kill()  # its supervisor starts a new one
        recoveries.append((killed_at, running, in_flight))
    deadline = time.monotonic() + 600
    while Run.objects.filter(id__in=ids).exclude(status__in=Run.FINISHED).exists():
        assert time.monotonic() < deadline, "runs did not finish"
        watch_resends(0)
        time.sleep(0.5)
    final = stack.fake_calls()["by_prompt"]
    recalled = [
        key
        for snap in snapshots
        for key, count in snap.items()
        if final.get(prompt_of(topics[key[0]], key[1]), 0) != count
    ]
    # Recovery: for each kill, when did each run in flight then finish a further step (or end)?
    recovery_s = []
    resend_s, after_resend_s = [], []  # kill -> re-sent, re-sent -> next step finished
    for kill, (killed_at, running, before) in enumerate(recoveries):
        for run_id in running:
            progressed = StepRun.objects.filter(
                run_id=run_id, status=StepRun.Status.SUCCEEDED
            ).order_by("finished_at")
            counts = list(progressed.values_list("finished_at", flat=True))
            n = before.get(run_id, 0)
            if len(counts) > n:
                # seconds from the kill to the next finished step (wall clock)
                wall_kill = time.time() - (time.monotonic() - killed_at)
                recovery_s.append(max(0.0, counts[n].timestamp() - wall_kill))
                if (kill, run_id) in resent_at and resent_at[kill, run_id] > wall_kill:
                    resend_s.append(resent_at[kill, run_id] - wall_kill)
                    after_resend_s.append(counts[n].timestamp() - resent_at[kill, run_id])
    statuses = dict(Run.objects.filter(id__in=ids).values_list("status").annotate(n=Count("id")))
    return {
        "runs": runs,
        "kills": kills,
        "statuses": statuses,
        "finished_steps_called_again": len(recalled),
        "backlog_at_kills": not_started,
        "recovery_seconds": summary(recovery_s),
        # The killed worker's runs: the survivor's make their next step within seconds,
        # a killed run only after its lease expired and the reaper re-sent it.
        "recovery_seconds_of_runs_over_10s": summary([x for x in recovery_s if x > 10]),
        # Where a re-sent run's recovery went: the lease and the reaper, then the queue,
        # the claim and the step itself.
        "kill_to_resend_seconds": summary(resend_s),
        "resend_to_next_step_finished_seconds": summary(after_resend_s),
        "recovered_within_60s": all(x <= 60 for x in recovery_s),
    }


def part_redis(stack: Stack, workflow, version, runs: int) -> dict:  # type: ignore[no-untyped-def]
    from django.db.models import Count

    from workflows import services
    from workflows.models import Run

    ids = []
    restarted_at = None
    for i in range(runs):
        ids.append(
            services.run_start(
                workflow=workflow,
                version=version,
                trigger=Run.Trigger.API,
                inputs={"topic": f"r{i}"},
            ).id
        )
        if i == runs // 2:
            subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True
            )
            time.sleep(2)
            subprocess.run(REDIS_START, check=True, capture_output=True)
            restarted_at = time.monotonic()
        time.sleep(0.01)
    deadline = time.monotonic() + 600
    while Run.objects.filter(id__in=ids).exclude(status__in=Run.FINISHED).exists():
        assert time.monotonic() < deadline, "runs were lost"
        time.sleep(0.5)
    statuses = dict(Run.objects.filter(id__in=ids).values_list("status").annotate(n=Count("id")))
    return {
        "runs": runs,
        "statuses": statuses,
        "lost": runs - statuses.get("succeeded", 0),
        "worker_exits_on_broker_loss": sum(
            Path(f"/tmp/{w.name}.log").read_text().count("Unrecoverable error")
            for w in stack.workers
        ),
        "all_done_after_restart_s": round(time.monotonic() - (restarted_at or 0), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--backlog", action="store_true")
    parser.add_argument(
        "--kill-gap", type=float, help="seconds between kills (default: 1 to 3 s at random)"
    )
    parser.add_argument("--no-redis-restart", action="store_true")
    args = parser.parse_args()
    with Stack(
        workers=2,
        concurrency=32,
        extra_env={
            "RUN_LEASE_SECONDS": "15",
            "RUN_REAPER_INTERVAL_SECONDS": "5",
            "RUN_QUEUED_GRACE_SECONDS": "20",
            "RUN_MAX_IN_FLIGHT_PER_WORKSPACE": str(args.runs if args.backlog else 50),
        },
    ) as stack:
        stack.start_beat()
        for worker in stack.workers:
            worker.supervise()
        _, workflow, version = workspace_and_workflow(definition())
        kills = part_kills(
            stack, workflow, version, args.runs, args.kills, args.backlog, args.kill_gap
        )
        print(kills, flush=True)
        redis = None if args.no_redis_restart else part_redis(stack, workflow, version, args.runs)
        write_result(
            "chaos",
            {
                "kill_9": kills,
                "redis_restart": redis,
                "settings": {
                    "RUN_LEASE_SECONDS": 15,
                    "RUN_REAPER_INTERVAL_SECONDS": 5,
                    "RUN_QUEUED_GRACE_SECONDS": 20,
                    "RUN_MAX_IN_FLIGHT_PER_WORKSPACE": args.runs if args.backlog else 50,
                    "backlog": args.backlog,
                    "kill_gap_s": args.kill_gap,
                },
            },
        )


if __name__ == "__main__":
    main()
