"""Orchestration overhead per step (issue 7, benchmark 2).

5-step runs, one at a time, with the fake server's latency at 0 and at
1,000 ms. For each run, the same five calls are also made directly with the
openai SDK in a loop, in the same process and moment, so that
(run wall time - direct call time) / 5 is the time Stepwise adds per step:
enqueue, claim, rendering, persistence of every step, totals, finish.
Wall time is measured from `run_start` returning to the run being finished
in the database (the bench polls every 2 ms).

    python -m bench.overhead [--runs 50] [--latencies 0,1000]
"""

from __future__ import annotations

import argparse
import time

from bench.harness import Stack, chain, summary, workspace_and_workflow, write_result


def measure(stack: Stack, latency_ms: int, runs: int) -> dict:
    import openai

    from workflows import services
    from workflows.models import Run

    # The fake server's latency directive sets the latency of each call.
    prompt = f"Step {{i}} of {{{{{{{{ topic }}}}}}}} [[fake:latency={latency_ms}]]"
    _, workflow, version = workspace_and_workflow(chain(5, prompt=prompt))
    client = openai.OpenAI(base_url=f"{stack.fake_url}/v1", api_key="bench", max_retries=0)
    if True:
        per_step, walls, directs = [], [], []
        for i in range(runs + 3):  # the first 3 warm up connections and caches
            topic = f"topic {i}"
            started = time.perf_counter()
            run = services.run_start(
                workflow=workflow, version=version, trigger=Run.Trigger.API, inputs={"topic": topic}
            )
            while not Run.objects.filter(id=run.id, status__in=Run.FINISHED).exists():
                time.sleep(0.002)
            wall = time.perf_counter() - started
            direct_started = time.perf_counter()
            for step in range(1, 6):
                client.chat.completions.create(
                    model="gpt-4.1-mini",
                    max_completion_tokens=16,
                    temperature=0.7,
                    messages=[
                        {
                            "role": "user",
                            "content": (
                                f"Step {step} of {topic} (direct) [[fake:latency={latency_ms}]]"
                            ),
                        }
                    ],
                )
            direct = time.perf_counter() - direct_started
            if i >= 3:
                walls.append(wall * 1000)
                directs.append(direct * 1000)
                per_step.append((wall - direct) * 1000 / 5)
        return {
            "latency_ms": latency_ms,
            "runs": runs,
            "run_wall_ms": summary(walls),
            "direct_sdk_5_calls_ms": summary(directs),
            "overhead_per_step_ms": summary(per_step),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    # `--latencies 0` for a short A/B of two checkouts (docs/benchmarks.md).
    parser.add_argument("--latencies", default="0,1000")
    args = parser.parse_args()
    with Stack(workers=1, concurrency=8) as stack:
        write_result(
            "overhead",
            {
                f"latency_{latency}": measure(
                    stack, latency, args.runs if latency == 0 else max(10, args.runs // 5)
                )
                for latency in map(int, args.latencies.split(","))
            },
        )


if __name__ == "__main__":
    main()
