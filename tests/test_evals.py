"""Evals: a dataset made from past runs, the draft against the live version with every kind
of check (the LLM judge against the fake OpenAI server, its verdicts scripted), the result
page and the API agreeing, and the figures the publish panel shows.

The engine runs in this process (engine_in_process): each run, and the eval itself, goes
to its end inside the call that starts it."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import BudgetMonth
from tests.conftest import Personas
from tests.factories import api_token, client_for
from workflows import services
from workflows.billing.usage import daily_usage
from workflows.llm.pricing import format_usd
from workflows.models import Dataset, Eval, EvalCheck, Run, Workflow

ROWS = 50


def definition(answer: str, note: str, prompt: str = "Answer about {{ topic }}") -> dict:
    """An LLM step answering `answer` (scripted), then a template making JSON of it with a
    note that scripts the judge's verdict: the judge reads the output last, so its
    `[[fake:choose=...]]` wins over the same directive in the inputs or the expected."""
    return {
        "name": "Answers",
        "inputs": [{"name": "topic", "type": "text"}, {"name": "mark", "type": "text"}],
        "steps": [
            {
                "key": "s1",
                "type": "llm",
                "prompt": f"{prompt} [[fake:reply={answer}]]",
                "max_tokens": 20,
            },
            {
                "key": "s2",
                "type": "template",
                "template": (
                    '{"answer": "{{ s1 }}", "topic": "{{ topic }}", '
                    f'"note": "[[fake:choose={note}]]"' + "}"
                ),
            },
        ],
    }


CHECKS = [
    ("same as before", "equals", {}),
    ("mentions the topic", "contains", {"value": '"topic"'}),
    ("answer shape", "matches", {"pattern": '"answer": "(old|new)"'}),
    ("answer is new", "json_field_equals", {"path": "answer", "value": "new"}),
    ("known topic", "json_field_in", {"path": "topic", "values": [f"t{i}" for i in range(40)]}),
    (
        "schema",
        "json_schema",
        {"schema": {"type": "object", "required": ["answer", "note"]}},
    ),
    ("cheap", "cost_under", {"max_usd": "0.01"}),
    ("fast", "latency_under", {"max_ms": 60000}),
    ("judge", "llm_judge", {"rubric": "Pass an answer that is accurate."}),
]


@pytest.fixture
def answers(engine_in_process: None, personas: Personas) -> Workflow:
    """Version 1 answered "new" and made 50 webhook runs (the dataset's source); version 2,
    live, answers "old"; the draft answers "new" again and scripts every verdict to pass."""
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition("new", "{{ mark }}"), user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    for i in range(ROWS):
        services.run_start(
            workflow=workflow,
            trigger=Run.Trigger.WEBHOOK,
            inputs={"topic": f"t{i}", "mark": "pass" if i % 2 == 0 else "fail"},
        )
    # Not webhook runs: left out of "the last 50 webhook runs".
    for _ in range(3):
        services.run_start(
            workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"topic": "x", "mark": "pass"}
        )
    services.workflow_save_draft(
        workflow=workflow, definition=definition("old", "{{ mark }}"), user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    services.workflow_save_draft(
        workflow=workflow,
        definition=definition("new", "pass", prompt="Answer briefly about {{ topic }}"),
        user=None,
    )
    workflow.refresh_from_db()
    return workflow


def test_an_eval_of_the_draft_against_the_live_version_over_past_runs(
    answers: Workflow, personas: Personas, fake_calls
) -> None:
    workflow = answers
    slug = personas.workspace.slug
    bob = client_for(personas.bob)  # an editor

    # The last 50 webhook runs become a dataset, their outputs its expected outputs.
    response = bob.post(
        f"/w/{slug}/workflows/{workflow.id}/datasets/from-runs/",
        {"name": "Last 50 webhook runs", "trigger": "webhook", "count": 50, "keep_outputs": "on"},
    )
    assert response.status_code == 302
    dataset = Dataset.objects.get(workflow=workflow)
    rows = list(dataset.rows.all())
    assert len(rows) == ROWS
    assert {row.inputs["topic"] for row in rows} == {f"t{i}" for i in range(ROWS)}
    assert all(row.expected and '"answer": "new"' in row.expected for row in rows)

    for name, kind, config in CHECKS:
        response = bob.post(
            f"/w/{slug}/workflows/{workflow.id}/checks/add/",
            {"name": name, "kind": kind, "config": json.dumps(config)},
        )
        assert response.status_code == 302, response.content.decode()[:2000]
    assert EvalCheck.objects.filter(workflow=workflow).count() == len(CHECKS)
    fake_calls()  # reset the counters

    # First the estimate, then the eval.
    start = f"/w/{slug}/workflows/{workflow.id}/evals/start/"
    form = {"dataset": dataset.id, "targets": ["draft", "2"], "concurrency": 4}
    response = bob.post(start, form)
    assert response.status_code == 200
    assert "Start this eval?" in response.content.decode()
    assert "100 runs" in response.content.decode()
    assert not Eval.objects.exists()
    response = bob.post(start, {**form, "confirmed": "True"})
    assert response.status_code == 302
    evaluation = Eval.objects.get()
    assert evaluation.status == Eval.Status.FINISHED
    assert evaluation.targets == ["draft", "v2"]
    assert evaluation.estimate_nanousd > 0

    eval_runs = Run.objects.filter(trigger=Run.Trigger.EVAL)
    assert eval_runs.count() == 2 * ROWS
    assert eval_runs.filter(version__isnull=True).count() == ROWS  # the draft's
    assert eval_runs.filter(version__number=2).count() == ROWS
    # One judging call per row and target (every run succeeded).
    assert fake_calls('"output": ') == 2 * ROWS

    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    answer = api.get(f"/api/v1/evals/{evaluation.id}").json()
    assert answer["status"] == "finished"
    targets = {t["target"]: t for t in answer["targets"]}

    # Draft: same as before only where the mark was "pass" (its note is), known topics t0-t39,
    # the judge passes all: rows 0, 2, ..., 38 pass every check.
    # Live v2: its answer is "old", so "same as before" and "answer is new" fail every row.
    assert targets["draft"]["passed"] == 20
    assert targets["draft"]["pass_rate"] == 40.0
    assert targets["v2"]["passed"] == 0
    by_position = {row["position"]: row for row in answer["rows"]}
    assert len(by_position) == ROWS
    for row in answer["rows"]:
        i = int(row["inputs"]["topic"][1:])
        cells = {c["target"]: {r["name"]: r["passed"] for r in c["checks"]} for c in row["results"]}
        assert cells["draft"] == {
            "same as before": i % 2 == 0,
            "mentions the topic": True,
            "answer shape": True,
            "answer is new": True,
            "known topic": i < 40,
            "schema": True,
            "cheap": True,
            "fast": True,
            "judge": True,
        }, i
        assert cells["v2"]["same as before"] is False
        assert cells["v2"]["answer is new"] is False
        assert cells["v2"]["known topic"] is (i < 40)
        assert cells["v2"]["judge"] is (i % 2 == 0), i  # scripted by the row's mark

    # The judge's cost is counted apart, and is in the month's spend beside the runs'.
    run_cost = sum(r.cost_nanousd for r in eval_runs)
    judge_cost = sum(Decimal(t["judge_cost_usd"]) for t in answer["targets"]) * 1_000_000_000
    assert judge_cost > 0
    assert sum(Decimal(t["cost_usd"]) for t in answer["targets"]) * 1_000_000_000 == run_cost
    spent = BudgetMonth.objects.get(workspace=personas.workspace).spent_nanousd
    all_runs = sum(r.cost_nanousd for r in Run.objects.all())
    assert spent == all_runs + int(judge_cost)

    # The page shows the same figures.
    page = client_for(personas.vera).get(f"/w/{slug}/evals/{evaluation.id}/")  # a viewer
    assert page.status_code == 200
    html = page.content.decode()
    for label, target in targets.items():
        row = re.search(rf'<tr data-target="{label}">(.*?)</tr>', html, re.S)
        assert row is not None
        text = row.group(1)
        assert f"{target['pass_rate']} %" in text
        assert f"{target['passed']} / {target['scored']}" in text
        assert format_usd(int(Decimal(target["cost_usd"]) * 1_000_000_000)) in text
        assert format_usd(int(Decimal(target["judge_cost_usd"]) * 1_000_000_000)) in text
    assert "v2 0.0 % → draft 40.0 %" in html

    # The publish panel compares the draft's latest eval with the live version.
    panel = bob.get(f"/w/{slug}/workflows/{workflow.id}/?panel=publish").content.decode()
    assert "0.0 % → 40.0 %" in panel

    # The CSV export has a line per row and target.
    export = bob.get(f"/w/{slug}/evals/{evaluation.id}/export.csv")
    lines = export.content.decode().splitlines()
    assert len(lines) == 1 + 2 * ROWS
    assert lines[0].startswith("row,target,inputs,expected,output,passed,same as before")


def test_eval_runs_are_flagged_and_left_out_of_what_starts_runs(
    answers: Workflow, personas: Personas
) -> None:
    dataset = Dataset.objects.create(
        workspace=personas.workspace, workflow=answers, name="Two", created_by=None
    )
    dataset.rows.create(position=1, inputs={"topic": "t1", "mark": "pass"})
    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    started = api.post(
        f"/api/v1/workflows/{answers.id}/evals",
        {"dataset_id": dataset.id, "versions": ["draft"]},
        content_type="application/json",
    )
    assert started.status_code == 202
    assert started.json()["status"] in ("running", "finished")
    runs = api.get("/api/v1/runs?trigger=eval").json()["items"]
    assert len(runs) == 1 and runs[0]["trigger"] == "eval"
    eval_cost = Run.objects.get(trigger=Run.Trigger.EVAL).cost_nanousd
    assert eval_cost > 0

    # Usage: the production view leaves the eval's run out; the default view counts it.
    every = sum(d.cost_nanousd for d in daily_usage(personas.workspace))
    production = sum(d.cost_nanousd for d in daily_usage(personas.workspace, production=True))
    assert every - production == eval_cost
    assert every == sum(r.cost_nanousd for r in Run.objects.all())
    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/usage/?view=production")
    assert "Production: eval runs left out" in page.content.decode()


def test_the_api_makes_datasets_from_rows_and_from_runs(
    answers: Workflow, personas: Personas
) -> None:
    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    path = f"/api/v1/workflows/{answers.id}/datasets"
    made = api.post(
        path,
        {"name": "By hand", "rows": [{"inputs": {"topic": "a", "mark": "x"}, "expected": "b"}]},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["rows"] == 1
    run_ids = list(Run.objects.filter(workflow=answers).values_list("id", flat=True)[:5])
    made = api.post(path, {"name": "Runs", "from_runs": run_ids}, content_type="application/json")
    assert made.status_code == 201
    assert made.json()["rows"] == 5
    listed = api.get(path).json()
    assert sorted(d["name"] for d in listed) == ["By hand", "Runs"]

    # A row missing an input: 422 naming it, nothing stored.
    refused = api.post(
        path,
        {"name": "Bad", "rows": [{"inputs": {"topic": "a", "mark": "x"}}, {"inputs": {}}]},
        content_type="application/json",
    )
    assert refused.status_code == 422
    assert {k: refused.json()["details"][0][k] for k in ("line", "column")} == {
        "line": 2,
        "column": "topic",
    }
    assert not Dataset.objects.filter(name="Bad").exists()


def test_an_eval_estimated_over_what_the_budget_has_left_is_refused(
    answers: Workflow, personas: Personas
) -> None:
    dataset = Dataset.objects.create(workspace=personas.workspace, workflow=answers, name="One")
    dataset.rows.create(position=1, inputs={"topic": "t1", "mark": "pass"})
    spent = BudgetMonth.objects.get(workspace=personas.workspace).spent_nanousd
    # Room for a little more than what was spent, not for a run of each of two targets.
    type(personas.workspace).objects.filter(id=personas.workspace.id).update(
        budget_nanousd=spent + 1
    )
    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    refused = api.post(
        f"/api/v1/workflows/{answers.id}/evals",
        {"dataset_id": dataset.id, "versions": ["draft", 2]},
        content_type="application/json",
    )
    assert refused.status_code == 409
    assert "budget has $" in refused.json()["error"]
    assert not Eval.objects.exists()
    assert not Run.objects.filter(trigger=Run.Trigger.EVAL).exists()
    # The page says so too, before anything starts.
    page = client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/workflows/{answers.id}/evals/start/",
        {"dataset": dataset.id, "targets": ["draft", "2"], "concurrency": 2, "confirmed": "True"},
    )
    assert page.status_code == 422
    assert "budget has" in page.content.decode()
    assert not Eval.objects.exists()
