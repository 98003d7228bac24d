"""Where a worker process spends its time: py-spy samples one worker (8
threads) while it executes N 1-step runs; raw stacks land in /tmp/spy.txt.
Needs `pip install py-spy`.

    python -m bench._spy [N]
"""

import subprocess
import sys
import time

from bench.harness import Stack, chain, workspace_and_workflow

N = int(sys.argv[1]) if len(sys.argv) > 1 else 600
with Stack(workers=1, concurrency=8) as stack:
    from workflows import services
    from workflows.models import Run

    _, wf, v = workspace_and_workflow(chain(1))
    pid = stack.workers[0].process.pid
    spy = subprocess.Popen(
        [
            ".venv/bin/py-spy",
            "record",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            "/tmp/spy.txt",
            "-p",
            str(pid),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    t = time.perf_counter()
    ids = [
        services.run_start(workflow=wf, version=v, trigger="api", inputs={"topic": str(i)}).id
        for i in range(N)
    ]
    while Run.objects.filter(id__in=ids).exclude(status__in=Run.FINISHED).exists():
        time.sleep(0.1)
    print(f"{N} runs in {time.perf_counter() - t:.2f}s")
    spy.send_signal(2)
    spy.wait()
