"""CPU per 1-step run inside one process: the statements one run sends, then
CPU and wall time per run for 279 runs executed in this process (no Celery),
with the percentiles of each run's CPU (the thread's own: PostgreSQL and the
fake server are other processes).

    python -m bench._cpurun [steps]
"""

import sys
import time

from django.db import connection

from bench.harness import Stack, chain, summary, workspace_and_workflow

with Stack(workers=0, concurrency=1) as stack:
    from django.conf import settings

    settings.OPENAI_BASE_URL = stack.env["OPENAI_BASE_URL"]
    settings.OPENAI_API_KEY = "x"
    from django.db import transaction

    from workflows import services
    from workflows.llm import tokens
    from workflows.runtime import engine

    _, wf, v = workspace_and_workflow(chain(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
    tokens.warm_up()
    transaction.on_commit = lambda f, using=None, robust=False: None
    ids = [
        services.run_start(workflow=wf, version=v, trigger="api", inputs={"topic": str(i)}).id
        for i in range(300)
    ]
    for i in ids[:20]:
        engine.run_execute(i)
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as q:
        engine.run_execute(ids[20])
    for x in q.captured_queries:
        print(x["sql"][:150])
    t = time.process_time()
    w = time.perf_counter()
    per_run = []
    for i in ids[21:]:
        started = time.thread_time()
        engine.run_execute(i)
        per_run.append((time.thread_time() - started) * 1000)
    print(
        "cpu ms per run in-process:",
        (time.process_time() - t) * 1000 / 279,
        "wall",
        (time.perf_counter() - w) * 1000 / 279,
    )
    print("cpu ms per run, percentiles:", summary(per_run))
    from django.db.models import Count

    from workflows.models import Run

    print(list(Run.objects.values_list("status").annotate(Count("id"))))
