"""What a new user's walk through evals with hostile input found (issue 16): values a row or a
check cannot keep are refused with a message, never a server error; the draft's problems are
named before the estimate; the publish panel says why the rule refuses; an eval's rows are not
the editor's test run; a confirmation asked is a confirmation shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import Workspace
from tests.conftest import Personas
from tests.factories import api_token, client_for
from workflows import selectors, services
from workflows.evals import datasets, execution
from workflows.models import Dataset, EvalCheck, Run, Workflow

ECHO = {
    "name": "Echo",
    "inputs": [
        {"name": "who", "type": "text"},
        {"name": "data", "type": "json", "required": False},
    ],
    "steps": [{"key": "say", "type": "template", "template": "Hi {{ who }}"}],
}
DEEP = "[" * 3000 + "]" * 3000


@pytest.fixture
def echo(personas: Personas) -> Workflow:
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    return workflow


def _upload(personas: Personas, workflow: Workflow, name: str, body: bytes):  # type: ignore[no-untyped-def]
    return client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/workflows/{workflow.id}/datasets/upload/",
        {"name": "Imported", "file": SimpleUploadedFile(name, body)},
    )


def test_rows_holding_a_nul_character_or_nested_too_deep_are_refused_by_line_and_column(
    personas: Personas, echo: Workflow
) -> None:
    csv_body = f'who,expected\nAda,fine\n"nul\x00here",x\nBo,"{DEEP}"\n'.encode()
    refused = _upload(personas, echo, "rows.csv", csv_body)
    assert refused.status_code == 422
    page = refused.content.decode()
    assert "line 3, column who: The text holds a NUL character" in page
    assert "line 4, column expected: The value is nested more than 64 levels deep" in page

    jsonl = json.dumps({"inputs": {"who": "Cy", "data": json.loads("[" * 70 + "]" * 70)}})
    refused = _upload(personas, echo, "rows.jsonl", jsonl.encode() + b"\n")
    assert refused.status_code == 422
    assert "line 1, column data: The value is nested" in refused.content.decode()

    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    table = client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/datasets/{dataset.id}/",
        {"row_count": "1", "r0-who": "Ada", "r0-expected": DEEP},
    )
    assert table.status_code == 422
    assert "line 1, column expected" in table.content.decode()

    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    answer = api.post(
        f"/api/v1/workflows/{echo.id}/datasets",
        {"name": "API", "rows": [{"inputs": {"who": "a\x00b"}}]},
        content_type="application/json",
    )
    assert answer.status_code == 422
    assert answer.json()["details"][0]["column"] == "who"
    assert Dataset.objects.count() == 1


def test_a_table_post_with_a_row_count_that_is_not_a_number_is_not_a_server_error(
    personas: Personas, echo: Workflow
) -> None:
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    response = client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/datasets/{dataset.id}/", {"row_count": "abc"}
    )
    assert response.status_code == 422
    assert "at least one row" in response.content.decode()
    assert dataset.rows.count() == 1


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("cost_under", '{"max_usd": 1e999}', "NaN or Infinity"),
        ("cost_under", '{"max_usd": NaN}', "NaN or Infinity"),
        ("equals", '{"value": ' + DEEP + "}", "nested more than 64 levels deep"),
        (
            "json_schema",
            '{"schema": ' + '{"items": ' * 2000 + "{}" + "}" * 2000 + "}",
            "nested more than 64 levels deep",
        ),
        ("contains", '{"value": "a\\u0000b"}', "NUL character"),
        ("equals", "[" * 200_000 + "]" * 200_000, "not valid JSON"),
    ],
)
def test_check_settings_that_cannot_be_kept_or_run_are_refused_with_a_message(
    personas: Personas, echo: Workflow, kind: str, config: str, message: str
) -> None:
    response = client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/workflows/{echo.id}/checks/add/",
        {"name": "hostile", "kind": kind, "config": config},
    )
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not EvalCheck.objects.exists()


def test_the_eval_form_names_the_drafts_problems_before_the_estimate(
    personas: Personas, echo: Workflow
) -> None:
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    broken = {**ECHO, "steps": [{"key": "say", "type": "template", "template": "{{ nobody }}"}]}
    services.workflow_save_draft(workflow=echo, definition=broken, user=None)
    response = client_for(personas.bob).post(
        f"/w/{personas.workspace.slug}/workflows/{echo.id}/evals/start/",
        {"dataset": dataset.id, "targets": ["draft", "1"], "concurrency": "2"},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "The draft has problems: fix them in the editor first." in page
    assert "say.template:" in page and "nobody" in page
    assert "Start this eval?" not in page


def test_the_publish_panel_says_why_an_eval_without_checks_does_not_count(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    Workspace.objects.filter(id=personas.workspace.id).update(publish_eval_min_percent=80)
    changed = {**ECHO, "steps": [{"key": "say", "type": "template", "template": "Hello {{ who }}"}]}
    services.workflow_save_draft(workflow=echo, definition=changed, user=None)
    echo.refresh_from_db()
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft", 1], concurrency=2, user=None
    )
    bob = client_for(personas.bob)
    panel = bob.get(f"/w/{personas.workspace.slug}/workflows/{echo.id}/?panel=publish")
    html = panel.content.decode()
    assert "100.0 %" in html  # every row passed, and yet:
    assert 'id="publish-refusal"' in html
    assert "had no checks, so it cannot count for publishing" in html

    refused = bob.post(
        f"/w/{personas.workspace.slug}/workflows/{echo.id}/publish/", headers={"HX-Request": "true"}
    )
    assert refused.status_code == 409
    assert "had no checks, so it cannot count for publishing" in refused.content.decode()


def test_an_eval_run_of_the_draft_is_not_shown_as_the_editors_test_run(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    test_run = services.run_start(
        workflow=echo,
        trigger=Run.Trigger.MANUAL,
        inputs={"who": "Ada"},
        user=personas.bob,
        draft=True,
    )
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Bo"})], user=None
    )
    execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft"], concurrency=1, user=personas.bob
    )
    assert Run.objects.filter(trigger=Run.Trigger.EVAL, created_by=personas.bob).exists()
    run, _ = selectors.draft_run_latest(echo, personas.bob)
    assert run is not None and run.id == test_run.id


def test_the_eval_page_shows_json_inputs_as_json_and_isolates_right_to_left_names(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    dataset = datasets.dataset_create(
        workflow=echo,
        name="evil",
        rows=[datasets.NewRow({"who": "A" * 3000, "data": {"k": "<b>v</b>"}}, {"x": 1})],
        user=None,
    )
    # A name stored before such names were refused (config/lib/names.py) is still isolated.
    Dataset.objects.filter(id=dataset.id).update(name="\u202eevil")
    dataset.refresh_from_db()
    evaluation = execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft"], concurrency=1, user=None
    )
    html = (
        client_for(personas.bob)
        .get(f"/w/{personas.workspace.slug}/evals/{evaluation.id}/")
        .content.decode()
    )
    assert "<bdi>\u202eevil</bdi>" in html
    assert "{&quot;k&quot;: &quot;&lt;b&gt;v&lt;/b&gt;&quot;}" in html  # JSON, not {'k': ...}
    assert "{&quot;x&quot;: 1}" in html
    # A long input is cut in the table (the dataset's page shows it in full).
    assert "<bdi>" + "A" * 299 + "…</bdi>" in html


def test_every_form_asking_for_a_confirmation_is_submitted_by_htmx() -> None:
    """hx-confirm only runs on a request htmx makes: on a plain form it never asks."""
    templates = Path(__file__).resolve().parent.parent / "templates"
    unasked = []
    for path in templates.rglob("*.html"):
        for tag in re.findall(r"<form\b[^>]*>", path.read_text()):
            if "hx-confirm" in tag and not re.search(r'hx-boost="true"|hx-post=', tag):
                unasked.append(f"{path.relative_to(templates)}: {tag}")
    assert unasked == []


def test_a_csv_with_a_misspelt_header_names_the_columns_that_are_not_inputs(
    personas: Personas, echo: Workflow
) -> None:
    refused = _upload(personas, echo, "rows.csv", b"Who,expected\nAda,Hi Ada\n")
    assert refused.status_code == 422
    page = refused.content.decode()
    assert "2 problems; nothing was imported." in page
    assert "line 1, column Who: not an input of the draft (its inputs: who, data)" in page
    assert "line 2, column who: This input is required." in page

    single = _upload(personas, echo, "rows.csv", b"who,data\nAda,{bad\n")
    assert "1 problem; nothing was imported." in single.content.decode()
    # Columns besides the inputs are otherwise left out, as before.
    assert _upload(personas, echo, "rows.csv", b"who,notes\nAda,a note\n").status_code == 302


def test_a_concurrency_over_the_maximum_is_refused_before_the_estimate(
    personas: Personas, echo: Workflow, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EVAL_MAX_CONCURRENCY = 10
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    bob = client_for(personas.bob)
    page = bob.get(f"/w/{personas.workspace.slug}/workflows/{echo.id}/evals/").content.decode()
    assert re.search(r'<input[^>]*name="concurrency"[^>]*max="10"', page)
    response = bob.post(
        f"/w/{personas.workspace.slug}/workflows/{echo.id}/evals/start/",
        {"dataset": dataset.id, "targets": ["draft"], "concurrency": "500"},
    )
    assert response.status_code == 422
    assert "less than or equal to 10" in response.content.decode()
    assert "Start this eval?" not in response.content.decode()


def test_a_running_eval_with_no_row_scored_shows_a_dash_not_a_dash_percent(
    personas: Personas, echo: Workflow
) -> None:
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    evaluation = execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft", 1], concurrency=1, user=None
    )
    html = (
        client_for(personas.bob)
        .get(f"/w/{personas.workspace.slug}/evals/{evaluation.id}/")
        .content.decode()
    )
    assert "<strong>v1 – → draft –</strong>" in html
    assert "– %" not in html


def test_a_refused_form_keeps_what_was_typed_and_names_the_field_in_error(
    personas: Personas, echo: Workflow
) -> None:
    bob = client_for(personas.bob)
    base = f"/w/{personas.workspace.slug}/workflows/{echo.id}"
    typo = '{"rubric": "Pass a reply that greets <b>by name</b>"'  # the closing brace forgotten
    refused = bob.post(
        f"{base}/checks/add/", {"name": "greets", "kind": "llm_judge", "config": typo}
    )
    assert refused.status_code == 422
    html = refused.content.decode()
    assert "The settings are not valid JSON." in html
    assert 'id="check_name" value="greets"' in html or 'value="greets"' in html
    assert "&quot;Pass a reply that greets &lt;b&gt;by name&lt;/b&gt;&quot;" in html
    assert re.search(r'<option value="llm_judge"[^>]*selected', html)

    refused = bob.post(f"{base}/datasets/from-runs/", {"name": "N" * 250, "count": "0"})
    assert refused.status_code == 422
    html = refused.content.decode()
    assert "Name: Ensure this value has at most 200 characters (it has 250)." in html
    assert "Count: Ensure this value is greater than or equal to 1." in html
    assert '<ul class="errorlist"' not in html
    assert not re.search(r'name="keep_outputs"[^>]*checked', html)  # left unticked, kept so


def test_a_right_to_left_override_in_a_workflow_name_stays_inside_it_on_the_runs_list(
    personas: Personas,
) -> None:
    from tests.factories import run_row

    workflow = services.workflow_create(
        workspace=personas.workspace, definition={**ECHO, "name": "evil"}, user=None
    )
    version = services.workflow_publish(workflow=workflow, user=None)
    # A name stored before such names were refused (config/lib/names.py) is still isolated.
    Workflow.objects.filter(id=workflow.id).update(name="\u202eevil")
    run_row(workflow, version, inputs={"who": "Ada"})
    html = (
        client_for(personas.alice)
        .get(f"/w/{personas.workspace.slug}/runs/?workflow={workflow.id}")
        .content.decode()
    )
    # Else "Every finished run of “evil” leaves this list…" reads backwards after the name.
    assert "Every finished run of “<bdi>\u202eevil</bdi>”" in html
    assert '<bdi class="truncate">\u202eevil</bdi>' in html


def test_the_api_refuses_run_ids_and_versions_that_are_not_ids(
    personas: Personas, echo: Workflow
) -> None:
    api = Client(
        headers={"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    )
    made = api.post(
        f"/api/v1/workflows/{echo.id}/datasets",
        {"name": "Runs", "from_runs": [1, 10**30]},
        content_type="application/json",
    )
    assert made.status_code == 422  # was a 500: too large for the database's integer
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    for versions in ([True], [0], ["draft", 10**30]):
        started = api.post(
            f"/api/v1/workflows/{echo.id}/evals",
            {"dataset_id": dataset.id, "versions": versions},
            content_type="application/json",
        )
        assert started.status_code == 422, versions


def test_the_eval_tables_that_stack_on_a_phone_label_every_cell(
    engine_in_process: None, personas: Personas, echo: Workflow
) -> None:
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    evaluation = execution.eval_start(
        workflow=echo, dataset=dataset, versions=["draft", 1], concurrency=2, user=None
    )
    bob = client_for(personas.bob)
    slug = personas.workspace.slug
    for path in [f"/w/{slug}/evals/{evaluation.id}/", f"/w/{slug}/workflows/{echo.id}/evals/"]:
        html = bob.get(path).content.decode()
        stacked = re.findall(r'<table class="table table-stack"[^>]*>.*?</table>', html, re.S)
        assert stacked, path
        for body in stacked:
            cells = re.findall(r"<td\b[^>]*>", body)
            assert cells and all("data-label=" in cell for cell in cells), (path, cells)


def test_deleting_a_check_and_canceling_an_eval_ask_first(
    personas: Personas, echo: Workflow
) -> None:
    from workflows.evals.services import check_add

    check_add(workflow=echo, name="greets", kind="contains", config={"value": "Hi"})
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    evaluation = execution.eval_start(  # stays running: nothing is sent in this transaction
        workflow=echo, dataset=dataset, versions=["draft"], concurrency=1, user=None
    )
    bob = client_for(personas.bob)
    slug = personas.workspace.slug
    evals = bob.get(f"/w/{slug}/workflows/{echo.id}/evals/").content.decode()
    assert re.search(r'<form[^>]*/checks/\d+/delete/"[^>]*hx-confirm="Delete the check', evals)
    page = bob.get(f"/w/{slug}/evals/{evaluation.id}/").content.decode()
    assert re.search(r'<form[^>]*/cancel/"[^>]*hx-confirm="Cancel this eval\?', page)


def test_the_estimate_says_when_the_budget_cannot_pay_for_the_eval(
    personas: Personas, echo: Workflow
) -> None:
    from workflows.evals.services import check_add

    check_add(workflow=echo, name="judged", kind="llm_judge", config={"rubric": "Kind?"})
    dataset = datasets.dataset_create(
        workflow=echo, name="Rows", rows=[datasets.NewRow({"who": "Ada"})], user=None
    )
    path = f"/w/{personas.workspace.slug}/workflows/{echo.id}/evals/start/"
    asked = {"dataset": dataset.id, "targets": ["draft", "1"], "concurrency": "2"}
    bob = client_for(personas.bob)
    Workspace.objects.filter(id=personas.workspace.id).update(budget_nanousd=1)  # $0.000000001
    html = bob.post(path, asked).content.decode()
    assert 'id="eval-over-budget"' in html
    assert "the eval would be refused" in html
    assert "Start the eval" not in html

    Workspace.objects.filter(id=personas.workspace.id).update(budget_nanousd=10**12)  # $1,000
    html = bob.post(path, asked).content.decode()
    assert 'id="eval-over-budget"' not in html
    assert "Start the eval" in html
