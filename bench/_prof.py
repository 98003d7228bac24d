import cProfile
import os
import pstats
import time

from bench.harness import Stack, chain, workspace_and_workflow

with Stack(workers=0, concurrency=1) as stack:
    os.environ["OPENAI_BASE_URL"] = stack.env["OPENAI_BASE_URL"]
    from django.conf import settings

    settings.OPENAI_BASE_URL = stack.env["OPENAI_BASE_URL"]
    settings.OPENAI_API_KEY = "x"
    from django.db import transaction

    from workflows import services
    from workflows.llm import tokens
    from workflows.runtime import engine

    _, wf, v = workspace_and_workflow(chain(1))
    tokens.warm_up()
    # create runs without enqueueing
    transaction.on_commit = lambda f, using=None, robust=False: None
    ids = [
        services.run_start(workflow=wf, version=v, trigger="api", inputs={"topic": str(i)}).id
        for i in range(300)
    ]
    for i in ids[:20]:
        engine.run_execute(i)
    pr = cProfile.Profile(time.process_time)
    t = time.process_time()
    pr.enable()
    for i in ids[20:]:
        engine.run_execute(i)
    pr.disable()
    print("cpu ms per run in-process:", (time.process_time() - t) * 1000 / 280)
    pstats.Stats(pr).sort_stats("cumulative").print_stats(70)
