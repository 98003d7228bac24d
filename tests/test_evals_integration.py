"""An eval on a real worker: the eval's task starts rows up to its concurrency, sends itself
again while runs are in flight, scores them (the judge against the fake server) and
finishes, with never more of its runs in flight than its concurrency."""

from __future__ import annotations

import pytest

from tests.conftest import Personas
from tests.polling import wait_until
from tests.servers import WorkerProcess
from workflows import services
from workflows.evals import datasets, execution
from workflows.evals.services import check_add
from workflows.models import Eval, EvalItem, Run

pytestmark = pytest.mark.integration

SLOW = {
    "name": "Slow",
    "inputs": [{"name": "topic", "type": "text"}],
    "steps": [
        {
            "key": "s1",
            "type": "llm",
            "prompt": "About {{ topic }} [[fake:latency=300]] [[fake:reply=fine]]",
            "max_tokens": 20,
        }
    ],
}


def test_an_eval_runs_on_the_workers_within_its_concurrency(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    workflow = services.workflow_create(workspace=personas.workspace, definition=SLOW, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    dataset = datasets.dataset_create(
        workflow=workflow,
        name="Six",
        rows=[datasets.NewRow({"topic": f"t{i}"}, "fine") for i in range(6)],
        user=None,
    )
    check_add(workflow=workflow, name="same", kind="equals", config={})
    check_add(
        workflow=workflow,
        name="judge",
        kind="llm_judge",
        config={"rubric": "Pass it. [[fake:choose=pass]]"},
    )
    evaluation = execution.eval_start(
        workflow=workflow, dataset=dataset, versions=["draft", 1], concurrency=2, user=None
    )
    most = 0

    def finished() -> bool:
        nonlocal most
        in_flight = (
            Run.objects.filter(trigger=Run.Trigger.EVAL).exclude(status__in=Run.FINISHED).count()
        )
        most = max(most, in_flight)
        return Eval.objects.filter(id=evaluation.id, status=Eval.Status.FINISHED).exists()

    wait_until(finished, timeout=90, message="the eval never finished")
    assert most <= 2
    items = EvalItem.objects.filter(eval=evaluation)
    assert items.count() == 12
    assert all(item.passed for item in items), [item.results for item in items]
    assert sum(item.judge_cost_nanousd for item in items) > 0
    assert Run.objects.filter(trigger=Run.Trigger.EVAL, status=Run.Status.SUCCEEDED).count() == 12
