"""Datasets imported from CSV and JSONL (bad rows reported by line and column, nothing
half-imported), the workspace rule requiring a passing eval before publishing, another
workspace's ids, and hostile strings in cells and outputs (escaped on the page, defused in
the CSV export). Workflows here call no model: their runs need no fake server."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import Workspace
from tests.conftest import Personas
from tests.factories import api_token, client_for
from workflows import services
from workflows.evals import datasets, execution
from workflows.evals.services import check_add
from workflows.models import Dataset, Eval, EvalCheck, Workflow

ECHO = {
    "name": "Echo",
    "inputs": [{"name": "who", "type": "text"}, {"name": "times", "type": "number"}],
    "steps": [{"key": "say", "type": "template", "template": "{{ who }} x{{ times }}"}],
}

HOSTILE = '<img src=x onerror=alert(1)> <div hx-post="/w/x/workflows/1/delete/">'


@pytest.fixture
def echo(personas: Personas) -> Workflow:
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    return workflow


def upload(personas: Personas, workflow: Workflow, name: str, body: bytes):
    return client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/workflows/{workflow.id}/datasets/upload/",
        {"name": "Imported", "file": SimpleUploadedFile(name, body)},
    )


def test_it_imports_a_csv_with_an_expected_column(personas: Personas, echo: Workflow) -> None:
    body = b'who,times,expected\nAda,2,Ada x2\n"Bob, Jr",3,"{""a"": 1}"\n'
    response = upload(personas, echo, "rows.csv", body)
    assert response.status_code == 302
    rows = list(Dataset.objects.get(workflow=echo).rows.all())
    assert [(r.inputs, r.expected) for r in rows] == [
        ({"who": "Ada", "times": 2}, "Ada x2"),
        ({"who": "Bob, Jr", "times": 3}, {"a": 1}),
    ]


def test_a_csv_with_bad_rows_is_refused_whole_naming_line_and_column(
    personas: Personas, echo: Workflow
) -> None:
    body = b"who,times\nAda,2\nBob,many\nCy\n,4\n"
    response = upload(personas, echo, "rows.csv", body)
    assert response.status_code == 422
    html = response.content.decode()
    assert "line 4: 1 cells, the header has 2" in html
    with pytest.raises(datasets.DatasetInvalid) as refused:
        datasets.dataset_import(
            workflow=echo,
            name="x",
            filename="rows.csv",
            data=b"who,times\nAda,2\nBob,many\n,4\n",
            user=None,
        )
    where = {(p.line, p.column) for p in refused.value.problems}
    assert where == {(3, "times"), (4, "who")}
    assert not Dataset.objects.exists()


def test_a_jsonl_with_bad_lines_is_refused_whole(personas: Personas, echo: Workflow) -> None:
    body = b'{"inputs": {"who": "Ada", "times": 1}}\n{"inputs": {"who": "B"\n[1, 2]\n'
    response = upload(personas, echo, "rows.jsonl", body)
    assert response.status_code == 422
    html = response.content.decode()
    assert "line 2, column 23: not JSON" in html
    assert "line 3, column inputs" in html
    assert not Dataset.objects.exists()
    good = b'{"inputs": {"who": "Ada", "times": 1}, "expected": "Ada x1"}\n'
    assert upload(personas, echo, "rows.jsonl", good).status_code == 302
    assert Dataset.objects.get().rows.get().expected == "Ada x1"


def test_imports_over_the_limits_are_refused(personas: Personas, echo: Workflow, settings) -> None:
    settings.DATASET_MAX_ROWS = 2
    body = b"who,times\na,1\nb,2\nc,3\n"
    response = upload(personas, echo, "rows.csv", body)
    assert response.status_code == 422
    assert "at most 2 rows" in response.content.decode()
    settings.DATASET_MAX_UPLOAD_BYTES = 10
    response = upload(personas, echo, "rows.csv", b"who,times\na,1\n")
    assert "at most 10 are read" in response.content.decode()
    assert not Dataset.objects.exists()


def _dataset(workflow: Workflow, rows: list[dict]) -> Dataset:
    return datasets.dataset_create(
        workflow=workflow,
        name="Rows",
        rows=[datasets.NewRow(row) for row in rows],
        user=None,
    )


def test_publishing_waits_for_a_passing_eval_when_the_workspace_requires_one(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    Workspace.objects.filter(id=personas.workspace.id).update(publish_eval_min_percent=100)
    echo.refresh_from_db()
    draft = {**ECHO, "steps": [{"key": "say", "type": "template", "template": "Hi {{ who }}"}]}
    services.workflow_save_draft(workflow=echo, definition=draft, user=None)
    echo.refresh_from_db()
    with pytest.raises(services.EvalRequired, match="has none"):
        services.workflow_publish(workflow=echo, user=None)

    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    refused = api.post(f"/api/v1/workflows/{echo.id}/publish", {}, content_type="application/json")
    assert refused.status_code == 409
    assert "requires" in refused.json()["error"]

    dataset = _dataset(echo, [{"who": "Ada", "times": 1}, {"who": "Bo", "times": 2}])
    check = check_add(workflow=echo, name="greets", kind="contains", config={"value": "Hi Ada"})
    execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft", 1], concurrency=2, user=None
    )
    with pytest.raises(services.EvalRequired, match="passed 50 %"):
        services.workflow_publish(workflow=echo, user=None)
    panel = client_for(personas.bob).get(
        f"/w/{personas.workspace.slug}/workflows/{echo.id}/?panel=publish"
    )
    assert (
        "Publishing is refused. The draft&#x27;s latest eval passed 50 %" in panel.content.decode()
    )
    assert "0.0 % → 50.0 %" in panel.content.decode()

    check.delete()
    check_add(workflow=echo, name="greets", kind="matches", config={"pattern": "^Hi "})
    execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft"], concurrency=1, user=None
    )
    assert Eval.objects.filter(status=Eval.Status.FINISHED).count() == 2
    version = services.workflow_publish(workflow=echo, user=None)
    assert version.number == 2

    # An eval of an older draft does not count: the draft changed since.
    services.workflow_save_draft(workflow=echo, definition=ECHO, user=None)
    echo.refresh_from_db()
    with pytest.raises(services.EvalRequired):
        services.workflow_publish(workflow=echo, user=None)

    # An eval without checks passes every row and proves nothing: it does not count.
    EvalCheck.objects.filter(workflow=echo).delete()
    execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft"], concurrency=1, user=None
    )
    with pytest.raises(services.EvalRequired, match="no checks"):
        services.workflow_publish(workflow=echo, user=None)


def test_another_workspaces_datasets_and_evals_are_404(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    dataset = _dataset(echo, [{"who": "Ada", "times": 1}])
    evaluation = execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft"], concurrency=1, user=None
    )
    charlie = client_for(personas.charlie)
    own = personas.other_workspace.slug
    for path in (
        f"/w/{own}/datasets/{dataset.id}/",
        f"/w/{own}/evals/{evaluation.id}/",
        f"/w/{own}/evals/{evaluation.id}/export.csv",
    ):
        assert charlie.get(path).status_code == 404, path
    assert charlie.post(f"/w/{own}/datasets/{dataset.id}/delete/").status_code == 404

    token = api_token(personas.other_workspace, personas.charlie)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    assert api.get(f"/api/v1/evals/{evaluation.id}").status_code == 404
    assert api.get(f"/api/v1/workflows/{echo.id}/datasets").status_code == 404
    other = services.workflow_create(workspace=personas.other_workspace, definition=ECHO, user=None)
    answer = api.post(
        f"/api/v1/workflows/{other.id}/evals",
        {"dataset_id": dataset.id, "versions": ["draft"]},
        content_type="application/json",
    )
    assert answer.status_code == 404
    assert set(answer.json()) == {"error", "details"}
    assert Dataset.objects.filter(id=dataset.id).exists()


def test_hostile_strings_stay_text_on_the_page_and_inert_in_the_csv(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    dataset = _dataset(
        echo,
        [
            {"who": HOSTILE, "times": 1},
            {"who": '=HYPERLINK("http://evil.example")', "times": 2},
            {"who": "@SUM(A1)", "times": 3},
        ],
    )
    dataset.rows.filter(position=1).update(expected=HOSTILE)
    check_add(workflow=echo, name="say", kind="contains", config={})
    evaluation = execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft", 1], concurrency=2, user=None
    )
    bob = client_for(personas.bob)
    slug = personas.workspace.slug
    for path in (f"/w/{slug}/evals/{evaluation.id}/", f"/w/{slug}/datasets/{dataset.id}/"):
        html = bob.get(path).content.decode()
        assert "<img src=x" not in html, path
        assert 'hx-post="/w/x' not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path

    export = bob.get(f"/w/{slug}/evals/{evaluation.id}/export.csv").content.decode()
    cells = [cell for line in csv.reader(io.StringIO(export)) for cell in line]
    assert '\'=HYPERLINK("http://evil.example") x2' in cells
    assert not any(cell[:1] in "=+-@" for cell in cells if cell)
    assert any(cell.startswith("<img src=x") for cell in cells)  # text in a CSV, not markup


def test_only_owners_set_the_publishing_rule(personas: Personas) -> None:
    slug = personas.workspace.slug
    path = f"/w/{slug}/settings/publish-rule/"
    assert client_for(personas.bob).post(path, {"eval_min_percent": "90"}).status_code == 403
    response = client_for(personas.alice).post(path, {"eval_min_percent": "90"})
    assert response.status_code == 302
    personas.workspace.refresh_from_db()
    assert personas.workspace.publish_eval_min_percent == 90
    assert client_for(personas.alice).post(path, {"eval_min_percent": "101"}).status_code == 422
    client_for(personas.alice).post(path, {"eval_min_percent": ""})
    personas.workspace.refresh_from_db()
    assert personas.workspace.publish_eval_min_percent is None


def test_the_table_editor_saves_rows_whole_or_not_at_all(
    personas: Personas, echo: Workflow
) -> None:
    dataset = _dataset(echo, [{"who": "Ada", "times": 1}, {"who": "Bo", "times": 2}])
    path = f"/w/{personas.workspace.slug}/datasets/{dataset.id}/"
    assert 'name="r1-who"' not in client_for(personas.vera).get(path).content.decode()
    bob = client_for(personas.bob)
    assert 'name="r1-who"' in bob.get(path).content.decode()
    edit = {
        "row_count": "2",
        "r0-who": "Ada",
        "r0-times": "5",
        "r0-expected": "Ada x5",
        "r1-who": "Bo",
        "r1-times": "2",
        "r1-delete": "1",
        "r2-who": "Cy",
        "r2-times": "3",
    }
    assert bob.post(path, edit).status_code == 302
    rows = [(r.inputs, r.expected) for r in dataset.rows.all()]
    assert rows == [({"who": "Ada", "times": 5}, "Ada x5"), ({"who": "Cy", "times": 3}, None)]
    refused = bob.post(path, {**edit, "r2-times": "three"})
    assert refused.status_code == 422
    assert "line 2, column times" in refused.content.decode()
    assert [(r.inputs, r.expected) for r in dataset.rows.all()] == rows
    assert client_for(personas.vera).post(path, edit).status_code == 403


def test_the_runs_list_makes_a_dataset_of_the_runs_it_shows(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    for i in range(3):
        services.run_start(workflow=echo, trigger="webhook", inputs={"who": f"w{i}", "times": i})
    services.run_start(workflow=echo, trigger="manual", inputs={"who": "m", "times": 9})
    bob = client_for(personas.bob)
    slug = personas.workspace.slug
    runs = bob.get(f"/w/{slug}/runs/?workflow={echo.id}&trigger=webhook").content.decode()
    link = f"/w/{slug}/workflows/{echo.id}/evals/?trigger=webhook&amp;status="
    assert link in runs
    page = bob.get(link.replace("&amp;", "&")).content.decode()
    assert '<option value="webhook" selected>' in page
    assert 'value="Last 50 webhook runs"' in page
    response = bob.post(
        f"/w/{slug}/workflows/{echo.id}/datasets/from-runs/",
        {"name": "Hooks", "trigger": "webhook", "count": "50", "keep_outputs": "on"},
    )
    assert response.status_code == 302
    rows = list(Dataset.objects.get(name="Hooks").rows.all())
    assert [(r.inputs["who"], r.expected) for r in rows] == [
        ("w0", "w0 x0"),
        ("w1", "w1 x1"),
        ("w2", "w2 x2"),
    ]


def test_deleting_a_dataset_keeps_its_evals_and_their_results(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    dataset = datasets.dataset_create(
        workflow=echo,
        name=HOSTILE,
        rows=[datasets.NewRow({"who": "a", "times": 2}, "a x2")],
        user=None,
    )
    check_add(workflow=echo, name="same", kind="equals", config={})
    evaluation = execution.eval_start(
        workflow=echo, dataset=dataset, versions=[1], concurrency=1, user=None
    )
    evaluation.refresh_from_db()
    assert evaluation.status == Eval.Status.FINISHED
    slug = personas.workspace.slug

    bob = client_for(personas.bob)
    assert bob.post(f"/w/{slug}/datasets/{dataset.id}/delete/").status_code == 302
    assert not Dataset.objects.filter(id=dataset.id).exists()
    evaluation.refresh_from_db()
    assert evaluation.dataset_id is None
    assert evaluation.items.get().passed is True

    page = bob.get(f"/w/{slug}/evals/{evaluation.id}/").content.decode()
    assert "(deleted)" in page
    assert HOSTILE not in page  # the kept name is still escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    listed = bob.get(f"/w/{slug}/workflows/{echo.id}/evals/").content.decode()
    assert f"#{evaluation.id}" in listed and "(deleted)" in listed
    api = Client(
        headers={"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    )
    answer = api.get(f"/api/v1/evals/{evaluation.id}").json()
    assert answer["dataset_id"] is None
    assert answer["dataset_name"] == HOSTILE
    assert answer["targets"][0]["passed"] == 1
