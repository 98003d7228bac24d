"""REST API v1: tokens, every endpoint, JSON errors, and one workspace never reaching another's."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEntry
from tests.conftest import Personas
from tests.factories import GREETING, api_token, hook_path, published_workflow, signed
from workflows import services
from workflows.integrations import api_auth, triggers
from workflows.models import ApiToken, Run, Trigger, Workflow
from workflows.selectors import run_json


@pytest.fixture
def token(personas: Personas) -> str:
    return api_token(personas.workspace, personas.alice, "tests")


@pytest.fixture
def api(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def send(api: Client, method: str, path: str, body: object = None, **headers: str):
    data = json.dumps(body) if body is not None else None
    return getattr(api, method)(
        f"/api/v1{path}", data=data, content_type="application/json", headers=headers
    )


# Authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Bearer sw_unknown", "Basic YWxpY2U6cHc=", "Bearer "]
)
def test_requests_without_a_valid_token_get_a_json_401(
    personas: Personas, header: str | None
) -> None:
    client = Client(headers={"Authorization": header} if header else {})
    response = client.get("/api/v1/workflows")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "token" in response.json()["error"]


def test_a_revoked_token_stops_working_at_once(api: Client, token: str, personas: Personas) -> None:
    assert send(api, "get", "/workflows").status_code == 200
    row = ApiToken.objects.get()
    assert api_auth.token_revoke(token=row, user=personas.alice)
    assert send(api, "get", "/workflows").status_code == 401


def test_tokens_are_stored_hashed_and_record_their_last_use(api: Client, token: str) -> None:
    row = ApiToken.objects.get()
    assert token not in (row.token_hash, row.prefix)
    assert row.token_hash == api_auth.token_hash(token)
    assert token.startswith(row.prefix)
    assert row.last_used_at is None
    send(api, "get", "/workflows")
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_create_api_token_prints_a_working_token(personas: Personas) -> None:
    out = StringIO()
    call_command("create_api_token", "alice@example.com", personas.workspace.slug, stdout=out)
    value = out.getvalue().strip()
    assert value.startswith("sw_")
    response = Client(headers={"Authorization": f"Bearer {value}"}).get("/api/v1/workflows")
    assert response.status_code == 200
    assert AuditEntry.objects.filter(action="token.create").exists()


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("bob@example.com", "admin"),
        ("charlie@example.com", "member"),
        ("nobody@example.com", "member"),
    ],
)
def test_create_api_token_refuses_editors_and_outsiders(
    personas: Personas, email: str, message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", email, personas.workspace.slug, stdout=StringIO())


# Workflows -------------------------------------------------------------------


def test_it_creates_gets_lists_replaces_and_deletes_workflows(api: Client) -> None:
    created = send(api, "post", "/workflows", GREETING)
    assert created.status_code == 201, created.content
    workflow_id = created.json()["id"]
    assert created.json()["definition"]["name"] == "Greeting"
    assert created.json()["published_version"] is None

    assert [w["name"] for w in send(api, "get", "/workflows").json()] == ["Greeting"]
    assert (
        send(api, "get", f"/workflows/{workflow_id}").json()["definition"]["steps"][0]["key"]
        == "greet"
    )

    replaced = send(api, "put", f"/workflows/{workflow_id}", {**GREETING, "description": "Changed"})
    assert replaced.status_code == 200
    assert replaced.json()["description"] == "Changed"

    assert send(api, "delete", f"/workflows/{workflow_id}").status_code == 204
    assert not Workflow.objects.filter(id=workflow_id).exists()
    assert send(api, "get", f"/workflows/{workflow_id}").status_code == 404
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"workflow.create", "workflow.edit", "workflow.delete"} <= actions


def test_an_invalid_definition_is_refused_with_its_issues(api: Client) -> None:
    bad = {"name": "Broken", "steps": [{"key": "a", "type": "llm", "promt": "typo"}]}
    response = send(api, "post", "/workflows", bad)
    assert response.status_code == 422
    data = response.json()
    assert data["error"] == "The workflow definition is not valid."
    assert any(issue["step"] == "a" for issue in data["details"])
    assert {"step", "field", "message"} <= set(data["details"][0])
    assert not Workflow.objects.exists()


def test_a_duplicate_name_is_a_409(api: Client) -> None:
    assert send(api, "post", "/workflows", GREETING).status_code == 201
    response = send(api, "post", "/workflows", GREETING)
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]


def test_validate_checks_without_saving(api: Client) -> None:
    assert send(api, "post", "/workflows/validate", GREETING).json() == {
        "valid": True,
        "issues": [],
    }
    response = send(api, "post", "/workflows/validate", {"name": "", "steps": []})
    assert response.status_code == 200
    assert response.json()["valid"] is False and response.json()["issues"]
    assert not Workflow.objects.exists()


def test_publish_and_export(api: Client) -> None:
    workflow_id = send(api, "post", "/workflows", GREETING).json()["id"]
    assert send(api, "post", f"/workflows/{workflow_id}/validate").json()["valid"] is True
    published = send(api, "post", f"/workflows/{workflow_id}/publish", {"summary": "First"})
    assert published.status_code == 201
    assert published.json()["number"] == 1 and published.json()["summary"] == "First"
    assert send(api, "post", f"/workflows/{workflow_id}/publish").json()["number"] == 2
    exported = send(api, "get", f"/workflows/{workflow_id}/export?version=1")
    assert exported.status_code == 200
    assert exported.json()["name"] == "Greeting"
    assert "attachment" in exported["Content-Disposition"]
    assert (
        send(api, "get", f"/workflows/{workflow_id}/export").json()["steps"]
        == exported.json()["steps"]
    )
    assert send(api, "get", f"/workflows/{workflow_id}/export?version=9").status_code == 404
    assert send(api, "get", f"/workflows/{workflow_id}").json()["published_version"] == 2


# Triggers ------------------------------------------------------------------


def test_triggers_can_be_created_listed_rotated_and_deleted(
    api: Client, personas: Personas
) -> None:
    workflow = published_workflow(personas.workspace)
    created = send(api, "post", f"/workflows/{workflow.id}/triggers", {"name": "CRM"})
    assert created.status_code == 201
    data = created.json()
    assert {"id", "url", "secret"} <= set(data)
    assert data["secret"].startswith("whsec_") and "/hooks/" in data["url"]

    listed = send(api, "get", f"/workflows/{workflow.id}/triggers").json()
    assert [t["id"] for t in listed] == [data["id"]]
    assert "secret" not in listed[0]

    # The secret from the API signs a delivery.
    body = json.dumps({"who": "Ada"})
    response = Client().post(
        hook_path(data["url"]),
        data=body,
        content_type="application/json",
        headers=signed(data["secret"], body),
    )
    assert response.status_code == 202

    rotated = send(api, "post", f"/workflows/{workflow.id}/triggers/{data['id']}/rotate").json()
    assert rotated["secret"] != data["secret"] and rotated["previous_secret_expires_at"]
    assert send(api, "delete", f"/workflows/{workflow.id}/triggers/{data['id']}").status_code == 204
    assert not Trigger.objects.exists()
    actions = list(
        AuditEntry.objects.filter(action__startswith="trigger.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["trigger.create", "trigger.delete", "trigger.rotate"]


def test_a_trigger_callback_url_must_be_public(api: Client, personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    response = send(
        api, "post", f"/workflows/{workflow.id}/triggers", {"callback_url": "http://10.0.0.5/cb"}
    )
    assert response.status_code == 400
    assert "private" in response.json()["error"]


# Runs ----------------------------------------------------------------------


def test_it_starts_a_run_and_answers_202(api: Client, personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    response = send(api, "post", f"/workflows/{workflow.id}/runs", {"inputs": {"who": "Ada"}})
    assert response.status_code == 202
    run = Run.objects.get(id=response.json()["run_id"])
    assert run.trigger == Run.Trigger.API
    assert run.created_by == personas.alice
    assert response.json()["status_url"].endswith(f"/api/v1/runs/{run.id}")


def test_an_idempotency_key_returns_the_same_run(api: Client, personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    first = send(
        api,
        "post",
        f"/workflows/{workflow.id}/runs",
        {"inputs": {"who": "Ada"}},
        **{"Idempotency-Key": "k1"},
    )
    again = send(
        api,
        "post",
        f"/workflows/{workflow.id}/runs",
        {"inputs": {"who": "Bo"}},
        **{"Idempotency-Key": "k1"},
    )
    other = send(
        api,
        "post",
        f"/workflows/{workflow.id}/runs",
        {"inputs": {"who": "Ada"}},
        **{"Idempotency-Key": "k2"},
    )
    assert first.json()["run_id"] == again.json()["run_id"] != other.json()["run_id"]
    assert Run.objects.count() == 2


def test_bad_inputs_are_a_422_with_details_per_input(api: Client, personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    response = send(api, "post", f"/workflows/{workflow.id}/runs", {"inputs": {"times": "many"}})
    assert response.status_code == 422
    assert set(response.json()["details"]) == {"who", "times"}


def test_starting_an_unpublished_workflow_is_a_409(api: Client) -> None:
    workflow_id = send(api, "post", "/workflows", GREETING).json()["id"]
    response = send(api, "post", f"/workflows/{workflow_id}/runs", {"inputs": {"who": "Ada"}})
    assert response.status_code == 409
    assert "Publish" in response.json()["error"]


def test_a_run_reads_like_run_json_and_can_be_listed_and_canceled(
    api: Client, personas: Personas
) -> None:
    workflow = published_workflow(personas.workspace)
    run_id = send(api, "post", f"/workflows/{workflow.id}/runs", {"inputs": {"who": "Ada"}}).json()[
        "run_id"
    ]
    got = send(api, "get", f"/runs/{run_id}").json()
    assert got == json.loads(json.dumps(run_json(Run.objects.get(id=run_id))))

    listed = send(api, "get", f"/runs?workflow_id={workflow.id}&status=queued&trigger=api").json()
    assert [item["id"] for item in listed["items"]] == [run_id]
    assert send(api, "get", "/runs?status=succeeded").json()["items"] == []

    canceled = send(api, "post", f"/runs/{run_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert send(api, "post", f"/runs/{run_id}/cancel").status_code == 409


def test_runs_are_listed_newest_first_in_pages(api: Client, personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    ids = [
        services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"who": str(i)}).id
        for i in range(5)
    ]
    page = send(api, "get", "/runs?limit=2").json()
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    page2 = send(api, "get", f"/runs?limit=2&before={page['next_before']}").json()
    assert [item["id"] for item in page2["items"]] == ids[::-1][2:4]


# Errors are JSON ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/nope", None, 404),
        ("get", "/workflows/abc", None, 422),
        ("get", "/workflows/99999999999999999999999", None, 422),
        ("get", "/workflows/9223372036854775808", None, 422),
        ("get", "/runs?limit=1000", None, 422),
        ("get", "/runs?status=exploded", None, 422),
        ("post", "/workflows/1/runs", {"inputs": "not an object"}, 422),
        ("post", "/workflows/1/runs", {"wait": 61}, 422),
    ],
)
def test_errors_are_json_never_html(
    api: Client, method: str, path: str, body: object, status: int
) -> None:
    response = send(api, method, path, body)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]


def test_a_body_that_is_not_json_is_a_json_error(api: Client) -> None:
    response = api.post("/api/v1/workflows", data="{nope", content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json()["error"]


def test_a_body_over_the_limit_is_a_json_413_not_a_500(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Over 2.5 MB (the default MAX_REQUEST_BODY_BYTES). Under uvicorn the ASGI limit answers
    # first (tests/test_body_limits.py); this is the in-process path, where Django refuses it.
    big = json.dumps({**GREETING, "description": "x" * 3_000_000})
    response = api.post("/api/v1/workflows/validate", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error", "details"}
    assert "2.5 MB" in response.json()["error"]
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_an_unknown_api_path_is_a_json_404_whatever_the_method(
    personas: Personas, token: str, method: str
) -> None:
    # enforce_csrf_checks: like a real client, which has no CSRF cookie (a token is not a session).
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})
    for path in ("/api/v1/nope", "/api/v1/workflows/1/nope", "/api/v1/"):
        data = None if method == "get" else "{}"
        response = getattr(client, method)(path, data=data, content_type="application/json")
        assert response.status_code == 404, (method, path, response.content[:200])
        assert response["Content-Type"].startswith("application/json")
        assert response.json() == {"error": "No such API endpoint.", "details": None}


def test_a_method_an_endpoint_does_not_have_is_a_json_405(api: Client) -> None:
    response = send(api, "delete", "/workflows")
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
    assert "GET" in response["Allow"] and "POST" in response["Allow"]
    assert response.json()["error"]


def deep_schema(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {
            "type": "object",
            "properties": {"x": schema},
            "required": ["x"],
            "additionalProperties": False,
        }
    return schema


def test_a_300_level_nested_schema_is_a_422_naming_the_step_not_a_500(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    definition = {
        "name": "Deep",
        "steps": [
            {
                "key": "classify",
                "type": "llm",
                "prompt": "Hi",
                "response_format": {
                    "type": "json_schema",
                    "name": "deep",
                    "schema": deep_schema(300),
                },
            }
        ],
    }
    for path in ("/workflows", "/workflows/validate"):
        response = send(api, "post", path, definition)
        if path == "/workflows":
            assert response.status_code == 422, response.content[:300]
            issues = response.json()["details"]
        else:
            assert response.status_code == 200, response.content[:300]
            assert response.json()["valid"] is False
            issues = response.json()["issues"]
        assert [(issue["step"], issue["field"]) for issue in issues] == [
            ("classify", "response_format.schema")
        ]
        assert "levels" in issues[0]["message"]
    assert not Workflow.objects.exists()
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_the_openapi_document_and_docs_page_need_no_token_and_no_cdn(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/workflows/{workflow_id}/triggers" in paths
    assert "/api/v1/workflows/{workflow_id}/runs" in paths
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "/static/ninja/swagger-ui-init.js" in html
    assert "cdn" not in html.lower()
    assert "<script>" not in html  # no inline code: the CSP forbids it


# Workspace isolation ----------------------------------------------------------------------


def test_workspace_a_token_gets_404_for_everything_of_workspace_b(
    api: Client, personas: Personas
) -> None:
    other = published_workflow(personas.other_workspace)
    made = triggers.trigger_create(workflow=other, user=personas.charlie)
    run = services.run_start(workflow=other, trigger=Run.Trigger.MANUAL, inputs={"who": "Ada"})
    w, t, r = other.id, made.trigger.id, run.id
    calls = [
        ("get", f"/workflows/{w}", None),
        ("put", f"/workflows/{w}", GREETING),
        ("delete", f"/workflows/{w}", None),
        ("post", f"/workflows/{w}/validate", None),
        ("post", f"/workflows/{w}/publish", {}),
        ("get", f"/workflows/{w}/export", None),
        ("get", f"/workflows/{w}/export?version=1", None),
        ("get", f"/workflows/{w}/triggers", None),
        ("post", f"/workflows/{w}/triggers", {}),
        ("post", f"/workflows/{w}/triggers/{t}/rotate", None),
        ("delete", f"/workflows/{w}/triggers/{t}", None),
        ("post", f"/workflows/{w}/runs", {"inputs": {"who": "Ada"}}),
        ("get", f"/runs/{r}", None),
        ("post", f"/runs/{r}/cancel", None),
    ]
    for method, path, body in calls:
        response = send(api, method, path, body)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"]
    assert send(api, "get", "/workflows").json() == []
    assert send(api, "get", "/runs").json()["items"] == []
    assert send(api, "get", f"/runs?workflow_id={w}").json()["items"] == []
    # Nothing of B changed.
    other.refresh_from_db()
    assert other.versions.count() == 1 and Trigger.objects.get(id=t).rotated_at is None
    assert Run.objects.get(id=r).status == Run.Status.QUEUED
    assert Run.objects.filter(workflow=other).count() == 1


def test_a_trigger_of_another_workflow_of_the_same_workspace_is_404(
    api: Client, personas: Personas
) -> None:
    first = published_workflow(personas.workspace)
    second = services.workflow_create(
        workspace=personas.workspace, definition={**GREETING, "name": "Second"}, user=None
    )
    made = triggers.trigger_create(workflow=first, user=None)
    assert (
        send(api, "post", f"/workflows/{second.id}/triggers/{made.trigger.id}/rotate").status_code
        == 404
    )


def test_export_is_the_stored_draft_as_an_indented_file_even_when_it_does_not_validate(
    api: Client, personas: Personas
) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=GREETING, user=None
    )
    draft = {"name": "Grüße", "description": "", "steps": [{"key": "half", "type": "llm"}]}
    services.workflow_save_draft(workflow=workflow, definition=draft, user=None)

    exported = send(api, "get", f"/workflows/{workflow.id}/export")

    assert exported.status_code == 200
    # As stored: PostgreSQL's jsonb keeps its own key order, SQLite the draft's.
    workflow.refresh_from_db()
    stored = json.dumps(workflow.definition, indent=2, ensure_ascii=False)
    assert exported.content.decode() == stored
    assert json.loads(exported.content) == draft
