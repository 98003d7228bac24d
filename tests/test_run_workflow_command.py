"""`manage.py run_workflow`: a stable interface, run as a separate process against a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Personas
from tests.servers import ROOT, WorkerProcess
from tests.test_engine import TRIAGE
from workflows.models import Run, Workflow

pytestmark = pytest.mark.integration


def run_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "run_workflow", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def hand_cost_nanousd(step: dict) -> int:
    uncached = step["tokens_in"] - step["tokens_cached"]
    return uncached * 400 + step["tokens_cached"] * 100 + step["tokens_out"] * 1600


def test_it_runs_the_triage_example_end_to_end_and_prices_it_exactly(
    worker: WorkerProcess, worker_env: dict[str, str], personas: Personas, tmp_path: Path
) -> None:
    path = tmp_path / "triage.json"
    path.write_text(json.dumps(TRIAGE))
    result = run_command(
        worker_env,
        str(path),
        "--workspace",
        personas.workspace.slug,
        "--input",
        "ticket=I was charged twice! [[fake:choose=billing]]",
        "--input",
        "tone=warm",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded"
    steps = {s["key"]: s for s in run["steps"]}
    assert [s["status"] for s in run["steps"]] == ["succeeded", "succeeded", "succeeded", "skipped"]
    assert steps["triage"]["output"] == {"category": "billing"}
    assert run["output"] == steps["billing_reply"]["output"]
    for step in run["steps"]:
        assert Decimal(step["cost_usd"]) * 10**9 == hand_cost_nanousd(step)
        assert set(step) >= {
            "key",
            "status",
            "output",
            "tokens_in",
            "tokens_cached",
            "tokens_out",
            "cost_usd",
            "latency_ms",
            "attempts",
            "error",
        }
    total = sum(hand_cost_nanousd(s) for s in run["steps"])
    assert total > 0
    assert Decimal(run["cost_usd"]) * 10**9 == total
    assert run["tokens_in"] == sum(s["tokens_in"] for s in run["steps"])
    assert Run.objects.get(id=run["id"]).trigger == Run.Trigger.CLI


def test_it_updates_the_workflow_of_the_same_name_on_a_second_import(
    worker: WorkerProcess, worker_env: dict[str, str], personas: Personas, tmp_path: Path
) -> None:
    path = tmp_path / "triage.json"
    path.write_text(json.dumps(TRIAGE))
    for _ in range(2):
        result = run_command(
            worker_env,
            str(path),
            "--workspace",
            personas.workspace.slug,
            "--input",
            "ticket=@" + str(path),
        )
        assert result.returncode == 0, result.stdout + result.stderr
    workflow = Workflow.objects.get(workspace=personas.workspace, name="Support triage")
    assert workflow.versions.count() == 2


def test_it_exits_2_with_the_errors_as_json_when_the_file_is_invalid(
    worker_env: dict[str, str], personas: Personas, tmp_path: Path, transactional_db: None
) -> None:
    broken = json.loads(json.dumps(TRIAGE))
    broken["steps"][2]["prompt"] = "Reply to {{ tiket }}"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = run_command(
        worker_env, str(path), "--workspace", personas.workspace.slug, "--input", "ticket=x"
    )
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    error = report["errors"][0]
    assert error["step"] == "billing_reply" and error["field"] == "prompt"
    assert "tiket" in error["message"] and "ticket" in error["message"]
    assert not Workflow.objects.exists()


def test_it_exits_2_naming_a_missing_required_input(
    worker_env: dict[str, str], personas: Personas, tmp_path: Path, transactional_db: None
) -> None:
    path = tmp_path / "triage.json"
    path.write_text(json.dumps(TRIAGE))
    result = run_command(worker_env, str(path), "--workspace", personas.workspace.slug)
    assert result.returncode == 2
    assert "ticket" in result.stdout
    assert not Run.objects.exists()


def test_it_exits_1_when_the_run_fails(
    worker: WorkerProcess, worker_env: dict[str, str], personas: Personas, tmp_path: Path
) -> None:
    definition = {
        "name": "Doomed",
        "inputs": [],
        "steps": [{"key": "a", "type": "llm", "prompt": "Fail [[fake:context_length_exceeded]]"}],
    }
    path = tmp_path / "doomed.json"
    path.write_text(json.dumps(definition))
    result = run_command(worker_env, str(path), "--workspace", personas.workspace.slug)
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert run["status"] == "failed"
    assert "context" in run["steps"][0]["error"].lower()
