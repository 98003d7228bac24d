"""Exporting runs as JSONL (the runs page with its filters, and GET /api/v1/runs/export):
streamed, one run per line in the API's run shape, every stored string exactly as it was."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.models import Membership, Role
from tests.conftest import Personas
from tests.factories import api_token, client_for
from tests.test_retention import HOSTILE, paid_run
from tests.test_retention import days_ago as ago
from tests.test_retention import workflow as new_workflow
from workflows import retention
from workflows.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(personas: Personas) -> dict[str, Run]:
    flow = new_workflow(personas.workspace, "Triage")
    other = new_workflow(personas.workspace, "Digest")
    made = {
        "done": paid_run(flow, finished=ago(1), user=personas.alice),
        "failed": paid_run(flow, finished=ago(2), status="failed"),
        "old": paid_run(other, finished=ago(40)),
        "deleted": paid_run(other, finished=ago(3)),
        "theirs": paid_run(new_workflow(personas.other_workspace, "Theirs"), finished=ago(1)),
    }
    retention.runs_prune()  # "old" loses its details
    retention.run_delete(run=made["deleted"])
    return made


def lines(response) -> list[dict]:  # type: ignore[no-untyped-def]
    body = b"".join(response.streaming_content)
    assert body.endswith(b"\n")
    # Only "\n" separates lines: a U+2028 inside a string is part of its line.
    return [json.loads(line) for line in body.split(b"\n")[:-1]]


def test_an_editor_exports_every_run_as_jsonl(personas: Personas, runs: dict[str, Run]) -> None:
    response = client_for(personas.bob).get(f"/w/{personas.workspace.slug}/runs/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith(
        f'attachment; filename="runs-{personas.workspace.slug}-'
    )
    exported = lines(response)
    by_id = {run["id"]: run for run in exported}
    assert list(by_id) == sorted([runs["done"].id, runs["failed"].id, runs["old"].id], reverse=True)
    done = by_id[runs["done"].id]
    assert done["inputs"] == {"topic": HOSTILE}
    assert done["output"] == {"answer": HOSTILE}
    assert [step["output"] for step in done["steps"]] == [HOSTILE, HOSTILE]
    assert done["cost_nanousd"] == 2_000_000
    assert done["details_removed"] is None
    old = by_id[runs["old"].id]
    assert old["details_removed"].startswith("Details removed after 40 days")
    assert (old["inputs"], old["output"]) == (None, None)


def test_the_export_takes_the_lists_filters(personas: Personas, runs: dict[str, Run]) -> None:
    client = client_for(personas.bob)
    failed = lines(client.get(f"/w/{personas.workspace.slug}/runs/export/?status=failed"))
    assert [run["id"] for run in failed] == [runs["failed"].id]
    flow = runs["done"].workflow_id
    listed = client.get(f"/w/{personas.workspace.slug}/runs/?workflow={flow}").content.decode()
    assert f'href="/w/{personas.workspace.slug}/runs/export/?workflow={flow}"' in listed
    of_flow = lines(client.get(f"/w/{personas.workspace.slug}/runs/export/?workflow={flow}"))
    assert {run["id"] for run in of_flow} == {runs["done"].id, runs["failed"].id}


def test_viewers_and_outsiders_cannot_export(personas: Personas, runs: dict[str, Run]) -> None:
    address = f"/w/{personas.workspace.slug}/runs/export/"
    assert client_for(personas.vera).get(address).status_code == 403
    assert (
        "Export"
        not in client_for(personas.vera)
        .get(f"/w/{personas.workspace.slug}/runs/")
        .content.decode()
        .split('id="run-results"')[1]
    )
    assert client_for(personas.charlie).get(address).status_code == 404
    Membership.objects.filter(user=personas.vera, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    assert client_for(personas.vera).get(address).status_code == 200


def test_the_api_exports_runs_as_jsonl(personas: Personas, runs: dict[str, Run]) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    response = Client().get("/api/v1/runs/export", **auth)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith("attachment;")
    exported = lines(response)
    assert [run["id"] for run in exported] == sorted(
        [runs["done"].id, runs["failed"].id, runs["old"].id], reverse=True
    )
    # The same shape as runs_get, line for line.
    assert exported[-1] == Client().get(f"/api/v1/runs/{runs['done'].id}", **auth).json()
    only = lines(Client().get(f"/api/v1/runs/export?workflow_id={runs['old'].workflow_id}", **auth))
    assert [run["id"] for run in only] == [runs["old"].id]
    assert Client().get("/api/v1/runs/export?status=nope", **auth).status_code == 422
    assert Client().get("/api/v1/runs/export").status_code == 401
