"""Stepwise and n8n side by side in one run (issue 13).

n8n 2.8.4 (the recipe in ../shared/peers/n8n/: SQLite, a Webhook -> Set
workflow answering on receipt) and Stepwise on PostgreSQL + Redis with its
defaults (2 uvicorn workers, 1 Celery worker, a 1-step LLM workflow behind a
signed webhook, the fake OpenAI server at 0 latency) get the same constant
arrival rate, one after the other at each rate. Latency is measured from each
request's due time (bench/loadgen.py, which reports its own CPU); CPU is read
from /proc for each server's processes: n8n's process tree; Stepwise's web
processes, its worker and the PostgreSQL backends of its database. The fake
OpenAI server and Redis are reported apart. Each phase's CPU is counted until
its runs have finished.

    python -m bench.compare_n8n [--rates 10,20,50,100] [--seconds 15]
        [--n8n-url http://127.0.0.1:5678/webhook/bench] [--n8n-pid PID | --start-n8n]
        [--stepwise-env DB_POOL_MAX_SIZE=0 ...]

Without --n8n-pid, the pid is read from $BASE/n8n.pid (BASE as for the
recipe, default ~/.cache/peer-n8n); --start-n8n runs the recipe's
install_and_start.sh first (about 3 minutes the first time, 2.3 GB, outside
the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import loadgen
from bench.harness import (
    PG,
    ROOT,
    Stack,
    chain,
    percentile,
    web_start,
    workspace_and_workflow,
    write_result,
)

RECIPE = ROOT.parent / "shared" / "peers" / "n8n"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _tree(pids: list[int]) -> set[int]:
    seen, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return seen


def _ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU seconds of a set of processes between `start` and `stop` (pids found at both ends)."""

    def __init__(self, pids: callable) -> None:  # type: ignore[valid-type]
        self.pids = pids
        self.before: dict[int, int | None] = {}

    def start(self) -> None:
        self.before = {pid: _ticks(pid) for pid in self.pids()}

    def stop(self) -> float:
        after = {pid: _ticks(pid) for pid in self.pids()}
        ticks = 0
        for pid in set(self.before) | set(after):
            end = after.get(pid)
            if end is not None:
                ticks += end - (self.before.get(pid) or 0)
        return ticks / CLK_TCK


def _postgres_pids(database: str) -> list[int]:
    """The backends of `database` (pooled: they live through the phase). The server's shared
    background processes (WAL writer, checkpointer) are left out: other databases use them too."""
    out = subprocess.run(
        [
            "psql",
            PG + "/postgres",
            "-tAc",
            f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'",
        ],
        capture_output=True,
        text=True,
    ).stdout
    return [int(x) for x in out.split()]


def _redis_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _n8n_pid(args: argparse.Namespace) -> int:
    base = Path(os.environ.get("BASE", Path.home() / ".cache" / "peer-n8n"))
    if args.start_n8n:
        subprocess.run(
            ["bash", str(RECIPE / "install_and_start.sh")],
            env={**os.environ, "BASE": str(base)},
            check=True,
        )
    if args.n8n_pid:
        return args.n8n_pid
    return int((base / "n8n.pid").read_text())


def _plain(n: int) -> tuple[bytes, dict[str, str]]:
    return json.dumps({"text": f"load {n}"}).encode(), {"content-type": "application/json"}


def _direct_sdk_cpu_ms(fake_url: str, calls: int = 100) -> float:
    """CPU of one call made directly with the openai SDK (the floor of a worker's LLM step)."""
    import openai

    client = openai.OpenAI(base_url=f"{fake_url}/v1", api_key="bench", max_retries=0)

    def call(i: int) -> None:
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": f"Step 1 of direct {i}"}],
            max_tokens=16,
        )

    for i in range(10):
        call(i)
    before = time.process_time()
    for i in range(calls):
        call(i)
    return (time.process_time() - before) * 1000 / calls


def _latency(phase: loadgen.Phase) -> dict[str, float]:
    return {
        "p50": round(percentile(phase.latencies_ms, 50), 1),
        "p99": round(percentile(phase.latencies_ms, 99), 1),
        "max": round(max(phase.latencies_ms), 1),
    }


def measure_n8n(url: str, pid: int, rate: int, seconds: float) -> dict:
    meter = CpuMeter(lambda: _tree([pid]))
    meter.start()
    phase = loadgen.run(url, rate, seconds, _plain)
    time.sleep(1.0)  # the executions answered on receipt finish after their answers
    cpu = meter.stop()
    n = phase.requests
    return {
        "requests": n,
        "errors": phase.errors(200),
        "statuses": phase.statuses,
        "transport_errors": phase.transport_errors,
        "latency_ms": _latency(phase),
        "cpu_ms_per_request": round(cpu * 1000 / n, 2),
        "generator_cpu_ms_per_request": round(phase.generator_cpu_s * 1000 / n, 2),
        "generator_max_send_lag_ms": round(phase.max_send_lag_ms, 1),
    }


def measure_stepwise(
    url: str, build, meters: dict[str, CpuMeter], rate: int, seconds: float, workflow_id: int
) -> dict:  # type: ignore[no-untyped-def]
    from workflows.models import Run

    runs = Run.objects.filter(workflow_id=workflow_id)
    before = runs.count()
    for meter in meters.values():
        meter.start()
    phase = loadgen.run(url, rate, seconds, build)
    answered = time.monotonic()
    accepted = phase.statuses.get(202, 0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if runs.filter(status__in=Run.FINISHED).count() >= before + accepted:
            break
        time.sleep(0.2)
    drained = time.monotonic()
    time.sleep(1.0)  # the same idle second n8n gets
    cpu = {name: meter.stop() for name, meter in meters.items()}
    finished = runs.filter(status__in=Run.FINISHED).count() - before
    succeeded = runs.filter(status=Run.Status.SUCCEEDED).count()
    n = phase.requests
    per = lambda s, d: round(s * 1000 / d, 2) if d else None  # noqa: E731
    return {
        "requests": n,
        "accepted": accepted,
        "errors": phase.errors(202),
        "statuses": phase.statuses,
        "transport_errors": phase.transport_errors,
        "runs_finished": finished,
        "runs_succeeded_total": succeeded,
        "drain_s_after_last_answer": round(drained - answered, 1),
        "latency_ms": _latency(phase),
        "web_cpu_ms_per_request": per(cpu["web"], n),
        "worker_cpu_ms_per_run": per(cpu["worker"], finished),
        "postgres_cpu_ms_per_run": per(cpu["postgres"], finished),
        "fake_openai_cpu_ms_per_run": per(cpu["fake"], finished),
        "redis_cpu_ms_per_run": per(cpu["redis"], finished),
        "cpu_ms_per_run": per(cpu["web"] + cpu["worker"] + cpu["postgres"], finished),
        "generator_cpu_ms_per_request": per(phase.generator_cpu_s, n),
        "generator_max_send_lag_ms": round(phase.max_send_lag_ms, 1),
    }


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def table(rows: list[dict]) -> str:
    out = [
        "| rate | n8n p50 / p99 | Stepwise p50 / p99 | p99 ratio | errors n8n / Stepwise"
        " | n8n CPU per request | Stepwise CPU per webhook-started run (web, worker, PostgreSQL)"
        " | CPU ratio | generator CPU per request (n8n / Stepwise) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        n, s = row["n8n"], row["stepwise"]
        out.append(
            f"| {row['rate']}/s | {n['latency_ms']['p50']} / {n['latency_ms']['p99']} ms"
            f" | {s['latency_ms']['p50']} / {s['latency_ms']['p99']} ms"
            f" | {_ratio(s['latency_ms']['p99'], n['latency_ms']['p99'])}"
            f" | {n['errors']} / {s['errors']} of {s['requests']}"
            f" | {n['cpu_ms_per_request']} ms"
            f" | {s['cpu_ms_per_run']} ms ({s['web_cpu_ms_per_request']},"
            f" {s['worker_cpu_ms_per_run']}, {s['postgres_cpu_ms_per_run']})"
            f" | {_ratio(s['cpu_ms_per_run'], n['cpu_ms_per_request'])}"
            f" | {n['generator_cpu_ms_per_request']} / {s['generator_cpu_ms_per_request']} ms |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="10,20,50,100")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--n8n-url", default="http://127.0.0.1:5678/webhook/bench")
    parser.add_argument("--n8n-pid", type=int)
    parser.add_argument("--start-n8n", action="store_true")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--stepwise-env", action="append", default=[], help="NAME=VALUE for Stepwise's processes"
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    n8n_pid = _n8n_pid(args)
    extra = dict(item.split("=", 1) for item in args.stepwise_env)
    load_before = os.getloadavg()

    # Stepwise's defaults: no DB_POOL_MAX_SIZE unless given, 1 worker at the default 32 threads.
    with Stack(workers=1, concurrency=32, pool_size=None, extra_env=extra) as stack:
        from workflows.integrations.triggers import trigger_create

        _, workflow, _ = workspace_and_workflow(chain(1))
        created = trigger_create(workflow=workflow, user=None, rate_limit_per_minute=1_000_000)
        web, port = web_start(stack.env, args.web_workers)
        try:
            url = f"http://127.0.0.1:{port}/hooks/{created.trigger.public_id}"
            build = loadgen.signed_webhooks(created.secret)
            assert stack.fake and stack.workers[0].process
            worker_pid, fake_pid = stack.workers[0].process.pid, stack.fake.pid
            meters = {
                "web": CpuMeter(lambda: _tree([web.pid])),
                "worker": CpuMeter(lambda: _tree([worker_pid])),
                "postgres": CpuMeter(lambda: _postgres_pids(stack.db)),
                "fake": CpuMeter(lambda: [fake_pid]),
                "redis": CpuMeter(_redis_pids),
            }
            # Warm-up: connections, pools, imports and caches on both sides.
            loadgen.run(args.n8n_url, 20, 3, _plain)
            loadgen.run(url, 20, 3, build)
            time.sleep(2)
            direct_sdk = _direct_sdk_cpu_ms(stack.fake_url)
            rows = []
            for rate in rates:
                n8n = measure_n8n(args.n8n_url, n8n_pid, rate, args.seconds)
                time.sleep(1)
                stepwise = measure_stepwise(url, build, meters, rate, args.seconds, workflow.id)
                rows.append({"rate": rate, "n8n": n8n, "stepwise": stepwise})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                time.sleep(1)
        finally:
            web.terminate()
            web.wait()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_rate": args.seconds,
        "stepwise": f"{args.web_workers} uvicorn workers, 1 Celery worker x 32 threads",
        "stepwise_env": extra,
        "direct_sdk_call_cpu_ms": round(direct_sdk, 2),
        "rows": rows,
    }
    write_result("compare_n8n", result)
    print()
    print(table(rows))
    print(
        f"\ndirect SDK call: {direct_sdk:.2f} ms CPU; load average before {load_before[0]:.2f},"
        f" after {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
