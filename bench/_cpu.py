import os
import subprocess
import sys
import time

from bench.harness import Stack, chain, workspace_and_workflow


def cpu(pids):
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as stat:
                f = stat.read().rsplit(")", 1)[1].split()
            tot += int(f[11]) + int(f[12])
        except FileNotFoundError:
            pass
    return tot / os.sysconf("SC_CLK_TCK")


def pg_pids():
    return [
        int(x)
        for x in subprocess.run(
            ["pgrep", "-f", "postgres"], capture_output=True, text=True
        ).stdout.split()
    ]


def redis_pids():
    return [
        int(x)
        for x in subprocess.run(
            ["pgrep", "-f", "redis-server"], capture_output=True, text=True
        ).stdout.split()
    ]


N = int(sys.argv[3]) if len(sys.argv) > 3 else 600
with Stack(workers=int(sys.argv[1]), concurrency=int(sys.argv[2])) as stack:
    from workflows import services
    from workflows.models import Run

    _, wf, v = workspace_and_workflow(chain(1))
    groups = {
        "worker": [w.process.pid for w in stack.workers],
        "fake": [stack.fake.pid],
        "postgres": pg_pids(),
        "redis": redis_pids(),
        "bench": [os.getpid()],
    }
    before = {k: cpu(p) for k, p in groups.items()}
    t = time.perf_counter()
    ids = [
        services.run_start(workflow=wf, version=v, trigger="api", inputs={"topic": str(i)}).id
        for i in range(N)
    ]
    created = {k: cpu(p) - before[k] for k, p in groups.items()}
    while Run.objects.filter(id__in=ids).exclude(status__in=Run.FINISHED).exists():
        time.sleep(0.1)
    el = time.perf_counter() - t
    after = {k: cpu(p) - before[k] for k, p in groups.items()}
    print(f"{N} runs in {el:.2f}s = {N / el:.1f}/s")
    print(
        "cpu ms per run:",
        {k: round(v * 1000 / N, 2) for k, v in after.items()},
        "total",
        round(sum(after.values()) * 1000 / N, 2),
    )
    print("during creation:", {k: round(v * 1000 / N, 2) for k, v in created.items()})
