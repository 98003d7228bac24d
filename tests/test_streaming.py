"""LLM steps and a map's items stream: the answer is persisted as it grows,
priced from the final usage chunk, and a stream cut mid-way (a dropped
connection, a killed worker) is billed as estimated from what arrived and
tried again."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import Personas
from tests.factories import chain, run_started, steps_of
from tests.polling import wait_for_run
from tests.servers import WorkerProcess
from workflows.llm import tokens
from workflows.llm.pricing import cost_nanousd
from workflows.models import Run, StepItem, StepRun
from workflows.runtime import engine


def fake_requests(fake_openai: str, prompt_contains: str) -> list[dict]:
    query = urllib.parse.quote(prompt_contains)
    with urllib.request.urlopen(
        f"{fake_openai}/_fake/requests?prompt_contains={query}", timeout=5
    ) as response:
        return json.load(response)["requests"]


def price(tokens_in: int, tokens_out: int) -> int:
    return cost_nanousd(
        model="gpt-4.1-mini", prompt_tokens=tokens_in, cached_tokens=0, completion_tokens=tokens_out
    )


def prompt_tokens(step: StepRun) -> int:
    return tokens.count_messages(step.messages)


def test_an_llm_step_streams_and_its_cost_is_exact_from_the_usage_chunk(
    engine_in_process: None, personas: Personas, fake_openai: str, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Streamed", ["About {{ topic }}"])
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "owls"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    [sent] = fake_requests(fake_openai, "About owls")
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    step = steps_of(run)["s1"]
    # The fake server reports o200k counts; the step holds exactly what it reported.
    assert step.output.startswith("Simulated answer to: About owls")
    assert step.tokens_in == prompt_tokens(step)
    assert step.tokens_out == tokens.count_text(step.output)
    assert step.cost_nanousd == price(step.tokens_in, step.tokens_out)
    assert run.cost_nanousd == step.cost_nanousd
    assert step.attempts == 1


def test_calls_in_a_row_share_one_connection_to_the_model(
    engine_in_process: None, personas: Personas, fake_openai: str, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    # A stream is read to its end, so its connection goes back to the pool
    # (against OpenAI, no TLS handshake per call).
    definition = chain("Reuse", ["First {{ topic }}", "Second {{ topic }}", "Third {{ topic }}"])
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "eels"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert fake_calls() == 3
    with urllib.request.urlopen(f"{fake_openai}/_fake/calls", timeout=5) as response:
        assert json.load(response)["connections"] == 1


def test_a_stream_cut_mid_way_is_billed_as_estimated_and_tried_again(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Cut", ["Cut about {{ topic }} [[fake:cut after=3 times=1]]"])
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "eels"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert fake_calls("Cut about eels") == 2
    step = steps_of(run)["s1"]
    assert step.attempts == 2
    # The cut attempt: the prompt and the three pieces that arrived ("Simulated
    # answer to:"), estimated offline; then the answer's own usage chunk.
    cut_out = tokens.count_text("Simulated answer to:")
    assert step.tokens_in == 2 * prompt_tokens(step)
    assert step.tokens_out == tokens.count_text(step.output) + cut_out
    assert step.cost_nanousd == price(prompt_tokens(step), cut_out) + price(
        prompt_tokens(step), tokens.count_text(step.output)
    )
    assert run.cost_nanousd == step.cost_nanousd


def test_a_stream_cut_every_time_fails_with_what_it_cost(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Always cut", ["Always cut {{ topic }} [[fake:cut after=2]]"])
    definition["steps"][0]["retries"] = 1
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "x"}).id)
    assert run.status == Run.Status.FAILED
    assert "broke off" in run.error and "after 2 attempts" in run.error
    step = steps_of(run)["s1"]
    assert step.status == StepRun.Status.FAILED
    assert step.tokens_in == 2 * prompt_tokens(step)
    assert step.tokens_out == 2 * tokens.count_text("Simulated answer")
    assert run.cost_nanousd == step.cost_nanousd > 0


def test_a_json_schema_step_streams_and_is_validated_at_the_end(
    engine_in_process: None, personas: Personas, fake_openai: str
) -> None:
    definition = chain("Json", ["Classify {{ topic }} [[fake:choose=bug]]"])
    definition["steps"][0]["response_format"] = {
        "type": "json_schema",
        "name": "triage",
        "schema": {
            "type": "object",
            "properties": {"category": {"type": "string", "enum": ["billing", "bug"]}},
            "required": ["category"],
            "additionalProperties": False,
        },
    }
    run = wait_for_run(run_started(personas.workspace, definition, {"topic": "a crash"}).id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert steps_of(run)["s1"].output == {"category": "bug"}
    [sent] = fake_requests(fake_openai, "Classify a crash")
    assert sent["stream"] is True


@pytest.mark.integration
def test_the_answer_is_persisted_as_it_grows(worker: WorkerProcess, personas: Personas) -> None:  # type: ignore[no-untyped-def]
    definition = chain("Grows", ["Grow {{ topic }} " + "word " * 30 + "[[fake:token_ms=60]]"])
    definition["steps"][0]["max_tokens"] = 200
    run = run_started(personas.workspace, definition, {"topic": "slowly"})
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while not Run.objects.get(id=run.id).is_finished:
        assert time.monotonic() < deadline
        step = StepRun.objects.filter(run=run, key="s1", status=StepRun.Status.RUNNING).first()
        if step is not None and isinstance(step.output, str) and step.output not in seen:
            seen.append(step.output)
        time.sleep(0.05)
    final = steps_of(Run.objects.get(id=run.id))["s1"]
    assert final.status == StepRun.Status.SUCCEEDED
    # Several growing prefixes of the final answer were visible while it ran.
    assert len(seen) >= 3, seen
    assert all(final.output.startswith(text) for text in seen)
    assert [len(text) for text in seen] == sorted(len(text) for text in seen)


@pytest.mark.integration
def test_a_worker_killed_mid_stream_leaves_an_estimated_attempt_and_the_run_succeeds_once(
    worker: WorkerProcess, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_LEASE_SECONDS = 3
    prompt = "Killed {{ topic }} " + "word " * 40 + "[[fake:token_ms=80]]"
    definition = chain("Killed", [prompt])
    definition["steps"][0]["max_tokens"] = 200
    run = run_started(personas.workspace, definition, {"topic": "mid-stream"})
    deadline = time.monotonic() + 30
    partial = None
    while partial is None or len(partial) < 40:
        assert time.monotonic() < deadline, "no partial answer was persisted"
        step = StepRun.objects.filter(run=run, key="s1").first()
        partial = step.output if step and isinstance(step.output, str) else None
        time.sleep(0.05)
    worker.kill()
    killed_at = time.monotonic()
    step = StepRun.objects.get(run=run, key="s1")
    assert step.status == StepRun.Status.RUNNING and step.attempts == 1
    cut_text = step.output
    worker.start()
    while not Run.objects.get(id=run.id).is_finished:
        engine.reap()  # beat's job, on a short period
        assert time.monotonic() - killed_at < 60, "the run was not recovered within 60 s"
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert fake_calls("Killed mid-stream") == 2
    step = steps_of(run)["s1"]
    assert step.attempts == 2
    prompt_in = prompt_tokens(step)
    # The lost attempt is billed from the text persisted before the kill (at
    # least what was seen), the answered one from its usage chunk.
    lost_out = step.tokens_out - tokens.count_text(step.output)
    assert lost_out == tokens.count_text(cut_text) > 0
    assert step.output.startswith(cut_text[: len(cut_text) // 2])
    assert step.tokens_in == 2 * prompt_in
    assert step.cost_nanousd == price(prompt_in, lost_out) + price(
        prompt_in, tokens.count_text(step.output)
    )
    assert run.cost_nanousd == step.cost_nanousd
    assert run.steps.filter(status=StepRun.Status.SUCCEEDED).count() == 1


def mapping(prompt: str, *, concurrency: int = 2) -> dict:
    return {
        "name": "Streamed items",
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ things }}",
                "concurrency": concurrency,
                "prompt": prompt,
                "max_tokens": 200,
            }
        ],
    }


@pytest.mark.integration
def test_a_map_item_s_answer_is_persisted_as_it_grows(
    worker: WorkerProcess, personas: Personas
) -> None:  # type: ignore[no-untyped-def]
    prompt = "Item {{ index }} of {{ item }} " + "word " * 30 + "[[fake:token_ms=60]]"
    run = run_started(personas.workspace, mapping(prompt), {"things": ["owls", "eels"]})
    seen: dict[int, list[str]] = {0: [], 1: []}
    deadline = time.monotonic() + 30
    while not Run.objects.get(id=run.id).is_finished:
        assert time.monotonic() < deadline
        for index, output in StepItem.objects.filter(
            run=run, status=StepItem.Status.RUNNING
        ).values_list("index", "output"):
            if isinstance(output, str) and output not in seen[index]:
                seen[index].append(output)
        time.sleep(0.05)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    items = {item.index: item for item in StepItem.objects.filter(run=run)}
    for index, texts in seen.items():
        final = items[index].output
        assert items[index].status == StepItem.Status.SUCCEEDED
        # Several growing prefixes of each item's answer were visible while it ran.
        assert len(texts) >= 3, (index, texts)
        assert all(final.startswith(text) for text in texts)
        assert [len(text) for text in texts] == sorted(len(text) for text in texts)
    assert run.output == [items[0].output, items[1].output]


@pytest.mark.integration
def test_a_worker_killed_mid_stream_of_an_item_leaves_an_estimated_attempt(
    worker: WorkerProcess, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_LEASE_SECONDS = 3
    prompt = "Killed item {{ item }} " + "word " * 40 + "[[fake:token_ms=80]]"
    run = run_started(personas.workspace, mapping(prompt, concurrency=1), {"things": ["x"]})
    deadline = time.monotonic() + 30
    partial = None
    while partial is None or len(partial) < 40:
        assert time.monotonic() < deadline, "no partial answer of the item was persisted"
        item = StepItem.objects.filter(run=run, index=0).first()
        partial = item.output if item and isinstance(item.output, str) else None
        time.sleep(0.05)
    worker.kill()
    killed_at = time.monotonic()
    item = StepItem.objects.get(run=run, index=0)
    assert item.status == StepItem.Status.RUNNING and item.attempts == 1
    cut_text = item.output
    worker.start()
    while not Run.objects.get(id=run.id).is_finished:
        engine.reap()  # beat's job, on a short period
        assert time.monotonic() - killed_at < 60, "the run was not recovered within 60 s"
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert fake_calls("Killed item x") == 2
    item = StepItem.objects.get(run=run, index=0)
    assert item.status == StepItem.Status.SUCCEEDED and item.attempts == 2
    prompt_in = tokens.count_messages(item.messages)
    # The lost attempt is billed from the text persisted before the kill, the
    # answered one from its usage chunk; on the item, its step and the run.
    lost_out = item.tokens_out - tokens.count_text(item.output)
    assert lost_out == tokens.count_text(cut_text) > 0
    assert item.tokens_in == 2 * prompt_in
    assert item.cost_nanousd == price(prompt_in, lost_out) + price(
        prompt_in, tokens.count_text(item.output)
    )
    step = StepRun.objects.get(run=run, key="each")
    assert step.cost_nanousd == item.cost_nanousd == run.cost_nanousd
    assert step.tokens_out == item.tokens_out == run.tokens_out
    assert run.output == [item.output]
