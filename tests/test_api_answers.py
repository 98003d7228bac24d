"""Every API operation's successful answer validates against the schema its OpenAPI
document declares for that status: the schemas build the answers, so the document
cannot drift from what is sent. A new operation fails here until it is called below."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from django.test import Client

from tests.conftest import Personas
from tests.factories import published_workflow
from workflows.evals import execution
from workflows.integrations import api_auth
from workflows.integrations.api import api as ninja_api
from workflows.models import Run
from workflows.runtime import engine
from workflows.selectors import run_json

# As served: JSON, so the status codes are strings.
DOCUMENT = json.loads(json.dumps(ninja_api.get_openapi_schema(path_prefix="/api/v1")))


def declared(operation_id: str, status: int) -> dict[str, Any] | None:
    for methods in DOCUMENT["paths"].values():
        for operation in methods.values():
            if operation.get("operationId") == operation_id:
                answer = operation["responses"][str(status)]
                content = answer.get("content")
                if content is None:
                    return None
                if "text/event-stream" in content:
                    return {"type": "string", "event-stream": True}
                return {
                    **content["application/json"]["schema"],
                    "components": DOCUMENT["components"],
                }
    raise AssertionError(f"No operation {operation_id}")


def test_every_operation_answers_with_its_declared_shape(personas: Personas) -> None:
    token = api_auth.token_create(workspace=personas.workspace, name="t", user=personas.alice)
    client = Client(headers={"Authorization": f"Bearer {token.value}"})
    checked: set[str] = set()

    def call(operation_id: str, method: str, path: str, body: object = None, **headers: str) -> Any:
        response = getattr(client, method)(
            f"/api/v1{path}",
            data=json.dumps(body) if body is not None else None,
            content_type="application/json",
            headers=headers,
        )
        assert 200 <= response.status_code < 300, (operation_id, response.content)
        schema = declared(operation_id, response.status_code)
        if schema is None:
            assert response.content == b""
            data = None
        elif schema.get("event-stream"):
            assert response["Content-Type"].startswith("text/event-stream")
            data = b"".join(response.streaming_content).decode()
        else:
            data = response.json()
            jsonschema.validate(data, schema)
        checked.add(f"{operation_id}:{response.status_code}")
        return data

    workflow = published_workflow(personas.workspace)
    definition = {**workflow.definition, "name": "Second"}
    call("workflows_list", "get", "/workflows")
    second = call("workflows_create", "post", "/workflows", definition)
    call("workflows_validate", "post", "/workflows/validate", definition)
    call("workflows_get", "get", f"/workflows/{workflow.id}")
    call("workflows_replace", "put", f"/workflows/{second['id']}", definition)
    call("workflows_validate_draft", "post", f"/workflows/{workflow.id}/validate")
    call("workflows_publish", "post", f"/workflows/{second['id']}/publish", {"summary": "v"})
    call("workflows_export", "get", f"/workflows/{workflow.id}/export")
    trigger = call("triggers_create", "post", f"/workflows/{workflow.id}/triggers", {})
    call("triggers_list", "get", f"/workflows/{workflow.id}/triggers")
    call("triggers_rotate", "post", f"/workflows/{workflow.id}/triggers/{trigger['id']}/rotate")
    call("triggers_delete", "delete", f"/workflows/{workflow.id}/triggers/{trigger['id']}")

    start = {"inputs": {"who": "Ada"}}
    accepted = call(
        "runs_start", "post", f"/workflows/{workflow.id}/runs", start, **{"Idempotency-Key": "k"}
    )
    engine.run_execute(accepted["run_id"])  # in-process: a template step calls no model
    finished = call(
        "runs_start",
        "post",
        f"/workflows/{workflow.id}/runs",
        {**start, "wait": 1},
        **{"Idempotency-Key": "k"},
    )
    assert finished == run_json(Run.objects.get(id=accepted["run_id"]))
    call("runs_list", "get", "/runs")
    assert call("runs_get", "get", f"/runs/{accepted['run_id']}") == finished
    events = call("runs_events", "get", f"/runs/{accepted['run_id']}/events")
    end = {"status": "succeeded", "output": finished["output"], "error": "", "cost_nanousd": 0}
    assert events.endswith(
        f"id: run\nevent: run.finished\ndata: {json.dumps(end, ensure_ascii=False)}\n\n"
    )
    other = call("runs_start", "post", f"/workflows/{workflow.id}/runs", start)
    call("runs_cancel", "post", f"/runs/{other['run_id']}/cancel")
    asking = published_workflow(
        personas.workspace,
        {"name": "Ask", "steps": [{"key": "ok", "type": "approval", "message": "Fine?"}]},
    )
    waiting = call("runs_start", "post", f"/workflows/{asking.id}/runs", {})
    engine.run_execute(waiting["run_id"])  # parks, waiting for a decision
    asked = call("runs_get", "get", f"/runs/{waiting['run_id']}")
    assert asked["steps"][0]["decision"]["approved"] is None
    decided = call("runs_decide", "post", f"/runs/{waiting['run_id']}/decision", {"approve": True})
    assert decided["steps"][0]["decision"]["by"] == "alice@example.com"
    datasets = f"/workflows/{workflow.id}/datasets"
    rows = {"name": "Rows", "rows": [{"inputs": {"who": "Ada"}, "expected": "Hello Ada"}]}
    dataset = call("datasets_create", "post", datasets, rows)
    call("datasets_create", "post", datasets, {"name": "Runs", "from_runs": [accepted["run_id"]]})
    call("datasets_list", "get", datasets)
    versions = {"dataset_id": dataset["id"], "versions": ["draft", 1]}
    started = call("evals_start", "post", f"/workflows/{workflow.id}/evals", versions)
    assert call("evals_get", "get", f"/evals/{started['id']}")["status"] == "running"
    execution.eval_advance(started["id"])  # starts the rows' runs; executed here:
    for run_id in Run.objects.filter(trigger="eval").values_list("id", flat=True):
        engine.run_execute(run_id)
    execution.eval_advance(started["id"])
    done = call("evals_get", "get", f"/evals/{started['id']}")
    assert done["status"] == "finished"
    assert [t["passed"] for t in done["targets"]] == [1, 1]  # no checks: succeeding passes
    exported = client.get("/api/v1/runs/export")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "application/x-ndjson"
    run_schema = {"$ref": "#/components/schemas/RunOut", "components": DOCUMENT["components"]}
    for line in b"".join(exported.streaming_content).split(b"\n")[:-1]:
        jsonschema.validate(json.loads(line), run_schema)
    checked.add("runs_export:200")
    call("runs_delete", "delete", f"/runs/{accepted['run_id']}")
    call("workflows_delete", "delete", f"/workflows/{second['id']}")

    successes = {
        f"{operation['operationId']}:{status}"
        for methods in DOCUMENT["paths"].values()
        for operation in methods.values()
        for status in operation["responses"]
        if status.startswith("2")
    }
    assert checked == successes


@pytest.mark.parametrize("status", ["queued", "running", "succeeded"])
def test_run_json_is_the_declared_run_shape(personas: Personas, status: str) -> None:
    workflow = published_workflow(personas.workspace)
    run = Run.objects.create(
        workspace=personas.workspace,
        workflow=workflow,
        definition=workflow.definition,
        trigger=Run.Trigger.API,
        status=status,
        inputs={"who": "Ada"},
    )
    schema = {"$ref": "#/components/schemas/RunOut", "components": DOCUMENT["components"]}
    jsonschema.validate(run_json(run), schema)


def test_a_map_runs_json_carries_its_items_in_the_declared_shape(personas: Personas) -> None:
    from workflows.models import StepItem, StepRun

    definition = {
        "name": "Map",
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [{"key": "each", "type": "map", "over": "{{ things }}", "prompt": "{{ item }}"}],
    }
    workflow = published_workflow(personas.workspace, definition)
    run = Run.objects.create(
        workspace=personas.workspace,
        workflow=workflow,
        definition=workflow.definition,
        trigger=Run.Trigger.API,
        status=Run.Status.RUNNING,
        inputs={"things": ["a", {"b": 1}]},
    )
    StepRun.objects.create(
        run=run, key="each", position=0, type="map", status="running", state={"total": 2}
    )
    StepItem.objects.create(
        run=run, step_key="each", index=0, status="succeeded", input="a", output="A", latency_ms=5
    )
    StepItem.objects.create(run=run, step_key="each", index=1, input={"b": 1})
    answer = run_json(run)
    schema = {"$ref": "#/components/schemas/RunOut", "components": DOCUMENT["components"]}
    jsonschema.validate(answer, schema)
    items = answer["steps"][0]["items"]
    assert [(i["index"], i["status"], i["input"], i["output"]) for i in items] == [
        (0, "succeeded", "a", "A"),
        (1, "pending", {"b": 1}, None),
    ]
    assert items[0]["run_id"] is None and items[0]["cost_usd"] == "0.000000000"
