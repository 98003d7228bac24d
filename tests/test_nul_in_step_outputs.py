"""Text a step produces at run time may hold the NUL character, which PostgreSQL's text and JSON
refuse: an http answer (`{"a": "\\u0000"}` or raw bytes), a model's JSON answer, what templates
build from them, a map's items, a streamed answer so far, an error quoting a response. Each is
stored with NUL replaced by U+FFFD (docs/workflow-format.md, "Text a step produces"), on both
databases alike. On PostgreSQL the step's write used to fail with a DataError that the engine
took for a database blip: the run stayed `running` until the reaper sent it again, to fail the
same way (calling a paid step again each time) until its time limit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from config.lib.json_storable import REPLACEMENT, storable
from tests.conftest import Personas
from tests.factories import published_workflow, steps_of
from tests.test_http_step import Target
from workflows import services
from workflows.evals import datasets, execution
from workflows.evals.services import check_add
from workflows.models import EvalItem, Run, StepItem, StepRun
from workflows.runtime.lease import partial_writer

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "string"}},
    "required": ["a"],
    "additionalProperties": False,
}


@pytest.fixture
def allowed(settings) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    server = Target()
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def start(personas: Personas, definition: dict, **inputs: object) -> Run:
    workflow = published_workflow(personas.workspace, definition)
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs)
    run.refresh_from_db()
    return run


def fetch_then_quote(url: str) -> dict:
    return {
        "name": "Fetch",
        "inputs": [],
        "steps": [
            {"key": "call", "type": "http", "url": url},
            {"key": "quote", "type": "template", "template": "[{{ call.json.a }}]"},
        ],
    }


def test_an_http_answer_holding_nul_is_stored_with_the_replacement_character(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/nul"] = (200, {"Content-Type": "application/json"}, b'{"a": "x\\u0000y"}')
    run = start(personas, fetch_then_quote(allowed.url("/nul")))
    assert run.status == Run.Status.SUCCEEDED, run.error
    call = steps_of(run)["call"]
    assert call.output["json"] == {"a": "x\ufffdy"}
    assert "\x00" not in json.dumps(call.output, ensure_ascii=False)
    assert run.output == "[x\ufffdy]"


def test_raw_nul_bytes_in_an_http_answer_are_replaced_too(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/raw"] = (200, {"Content-Type": "text/plain"}, b"a\x00b")
    definition = fetch_then_quote(allowed.url("/raw"))
    definition["steps"][1]["template"] = "<{{ call.text }}>"
    run = start(personas, definition)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert steps_of(run)["call"].output["text"] == "a\ufffdb"
    assert run.output == "<a\ufffdb>"


def test_an_error_quoting_an_answer_with_nul_fails_the_run_with_the_replacement_character(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/down"] = (503, {}, b"broken \x00 here")
    run = start(personas, fetch_then_quote(allowed.url("/down")))
    assert run.status == Run.Status.FAILED
    assert "broken \ufffd here" in run.error
    step = steps_of(run)["call"]
    assert step.status == StepRun.Status.FAILED and "broken \ufffd here" in step.error


def test_an_error_branch_gets_the_error_with_the_replacement_character(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/down"] = (503, {}, b"broken \x00 here")
    definition = fetch_then_quote(allowed.url("/down"))
    definition["steps"][0]["on_error"] = "oops"
    definition["steps"][1]["next"] = "end"
    definition["steps"].append(
        {"key": "oops", "type": "template", "template": "failed: {{ call.error.message }}"}
    )
    run = start(personas, definition)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert "broken \ufffd here" in run.output
    assert "\x00" not in json.dumps(steps_of(run)["call"].output, ensure_ascii=False)


def test_a_json_answer_holding_nul_is_stored_with_the_replacement_character(
    engine_in_process: None, personas: Personas
) -> None:
    definition = {
        "name": "Ask",
        "inputs": [],
        "steps": [
            {
                "key": "ask",
                "type": "llm",
                "prompt": '[[fake:reply={"a": "x\\u0000y"}]]',
                "max_tokens": 30,
                "response_format": {"type": "json_schema", "name": "a", "schema": ANSWER_SCHEMA},
            }
        ],
    }
    run = start(personas, definition)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == {"a": "x\ufffdy"}
    ask = steps_of(run)["ask"]
    assert ask.output == {"a": "x\ufffdy"} and ask.cost_nanousd > 0 and ask.attempts == 1


def test_map_items_whose_answers_hold_nul_are_stored_with_the_replacement_character(
    engine_in_process: None, personas: Personas
) -> None:
    definition = {
        "name": "Mapper",
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ things }}",
                "prompt": 'Item {{ index }} [[fake:reply={"a": "x\\u0000{{ index }}"}]]',
                "max_tokens": 30,
                "response_format": {"type": "json_schema", "name": "a", "schema": ANSWER_SCHEMA},
            }
        ],
    }
    run = start(personas, definition, things=["p", "q"])
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == [{"a": "x\ufffd0"}, {"a": "x\ufffd1"}]
    items = StepItem.objects.filter(run=run).order_by("index")
    assert [item.output for item in items] == run.output


def test_a_judge_reason_holding_nul_is_stored_with_the_replacement_character(
    engine_in_process: None, personas: Personas
) -> None:
    definition = {
        "name": "About",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [{"key": "s1", "type": "llm", "prompt": "{{ topic }} [[fake:reply=fine]]"}],
    }
    workflow = published_workflow(personas.workspace, definition)
    verdict = '{"verdict": "pass", "reason": "x\\u0000y"}'
    check_add(
        workflow=workflow,
        name="judge",
        kind="llm_judge",
        config={"rubric": f"Fine? [[fake:reply={verdict}]]"},
    )
    dataset = datasets.dataset_create(
        workflow=workflow, name="One", rows=[datasets.NewRow({"topic": "otters"}, None)], user=None
    )
    evaluation = execution.eval_start(
        workflow=workflow, dataset=dataset, versions=[1], concurrency=1, user=None
    )
    item = EvalItem.objects.get(eval=evaluation)
    assert item.status == EvalItem.Status.SCORED
    assert item.results[0]["reason"] == "x\ufffdy" and item.passed


def test_a_partial_answer_holding_nul_is_written_with_the_replacement_character(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.STREAM_PERSIST_SECONDS = 0
    definition = {
        "name": "Plain",
        "inputs": [],
        "steps": [{"key": "t", "type": "template", "template": "x"}],
    }
    run = start(personas, definition)
    Run.objects.filter(id=run.id).update(status=Run.Status.RUNNING, lease_owner="me")
    StepRun.objects.filter(run=run, key="t").update(status=StepRun.Status.RUNNING, output=None)
    write = partial_writer(
        StepRun,
        {"run_id": run.id, "key": "t", "status": StepRun.Status.RUNNING},
        run_id=run.id,
        token="me",
        what="step t",
    )
    write("so far\x00")
    assert StepRun.objects.get(run=run, key="t").output == "so far\ufffd"


def test_storable_replaces_nul_in_keys_and_values_and_returns_clean_values_unchanged() -> None:
    clean = {"a": ["b", {"c": 1, "d": None}], "e": "f" * 10_000}
    assert storable(clean) is clean
    assert storable("plain") == "plain"
    assert storable({"k\x00": ["v\x00", 1, {"n": "\x00\x00"}], "ok": "ok"}) == {
        f"k{REPLACEMENT}": [f"v{REPLACEMENT}", 1, {"n": REPLACEMENT * 2}],
        "ok": "ok",
    }
    assert storable(("t\x00",)) == [f"t{REPLACEMENT}"]
    # The text "\\u0000" (a backslash, then u0000) is not a NUL and is kept.
    assert storable({"s": "\\u0000 \\\x00 \x00"}) == {"s": f"\\u0000 \\{REPLACEMENT} {REPLACEMENT}"}


def test_nan_and_infinity_in_an_http_answer_are_stored_as_null(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    """Python's json reads them; PostgreSQL's JSON refuses them (the run looped until its time
    limit); they are stored as null, as JavaScript's JSON.stringify writes them."""
    allowed.routes["/nan"] = (
        200,
        {"Content-Type": "application/json"},
        b'{"a": NaN, "b": [1.5, Infinity, -Infinity], "c": "NaN"}',
    )
    run = start(personas, fetch_then_quote(allowed.url("/nan")))
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert steps_of(run)["call"].output["json"] == {"a": None, "b": [1.5, None, None], "c": "NaN"}
    assert storable({"x": [float("nan")], "y": 2.5}) == {"x": [None], "y": 2.5}
    clean = {"y": [2.5, "z"]}
    assert storable(clean) is clean
