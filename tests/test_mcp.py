"""/mcp: a workspace's exposed workflows as MCP tools, through the official SDK's own client
over real HTTP (pytest-django's live server; the ASGI path with uvicorn and a real worker in
test_mcp_asgi.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from django.urls import reverse
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from accounts.models import AuditEntry, Membership, Role
from accounts.services import secret_create
from tests.conftest import Personas
from tests.factories import GREETING, api_token, client_for, published_workflow, run_row
from tests.test_http_step import SECRET, Target
from workflows import services
from workflows.integrations.api_auth import token_revoke
from workflows.integrations.mcp_exposure import workflow_mcp_expose
from workflows.integrations.mcp_tools import declared_output_schema, input_schema, tool_name_for
from workflows.models import ApiToken, Run, Workflow

TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["billing", "bug", "other"]}},
    "required": ["category"],
    "additionalProperties": False,
}
TRIAGE = {
    "name": "Triage",
    "description": "Sorts a support ticket into billing, bug or other.",
    "inputs": [{"name": "ticket", "type": "text", "description": "The ticket's text."}],
    "steps": [
        {
            "key": "triage",
            "type": "llm",
            "prompt": "Classify this ticket: {{ ticket }} [[fake:choose=bug]]",
            "max_tokens": 50,
            "response_format": {"type": "json_schema", "name": "triage", "schema": TRIAGE_SCHEMA},
        }
    ],
}


def with_client(url: str, token: str, use: Callable[[Client], Awaitable[Any]]) -> Any:
    """`use(client)` with an MCP client connected to `url`/mcp with `token`, as an agent would."""

    async def session() -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
        ):
            return await use(client)

    try:
        return anyio.run(session)
    except BaseExceptionGroup as group:
        # The SDK's task groups wrap what went wrong: the one error itself, for pytest.raises.
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        raise error from None


def tools_of(url: str, token: str) -> dict[str, Any]:
    async def use(client: Client) -> Any:
        return (await client.list_tools()).tools

    return {tool.name: tool for tool in with_client(url, token, use)}


def call(url: str, token: str, name: str, arguments: dict[str, Any]) -> Any:
    async def use(client: Client) -> Any:
        await client.list_tools()  # as agents do: the client checks answers against the schemas
        return await client.call_tool(name, arguments)

    return with_client(url, token, use)


def exposed(workspace: Any, definition: dict, user: Any = None) -> Workflow:
    workflow = published_workflow(workspace, definition)
    return workflow_mcp_expose(workflow=workflow, exposed=True, user=user)


def raw_call(url: str, token: str, request_id: int, name: str, arguments: dict) -> Any:
    """One JSON-RPC tools/call POSTed as it is, with the id we choose."""
    response = httpx2.post(
        f"{url}/mcp",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        content=json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        ),
        timeout=30,
    )
    return response


# Listing -------------------------------------------------------------------------------


def test_it_lists_only_the_exposed_published_workflows_of_the_tokens_workspace(
    live_server, transactional_db: None, personas: Personas
) -> None:
    exposed(personas.workspace, GREETING, personas.alice)
    published_workflow(personas.workspace, {**GREETING, "name": "Not exposed"})
    draft = services.workflow_create(
        workspace=personas.workspace, definition={**GREETING, "name": "Draft only"}, user=None
    )
    workflow_mcp_expose(workflow=draft, exposed=True, user=None)
    archived = exposed(personas.workspace, {**GREETING, "name": "Archived"})
    services.workflow_archive(workflow=archived, user=None)
    exposed(personas.other_workspace, {**GREETING, "name": "Charlie's"})

    alice_token = api_token(personas.workspace, personas.alice)
    charlie_token = api_token(personas.other_workspace, personas.charlie)

    assert sorted(tools_of(live_server.url, alice_token)) == ["greeting", "runs_get"]
    assert sorted(tools_of(live_server.url, charlie_token)) == ["charlie_s", "runs_get"]


def test_a_tool_describes_the_workflows_inputs_and_its_declared_output(
    live_server, transactional_db: None, personas: Personas
) -> None:
    exposed(personas.workspace, GREETING)
    exposed(personas.workspace, TRIAGE)

    tools = tools_of(live_server.url, api_token(personas.workspace, personas.alice))

    greeting = tools["greeting"]
    assert greeting.title == "Greeting"
    assert greeting.description.startswith("Greets someone, without calling a model")
    assert greeting.input_schema == {
        "type": "object",
        "properties": {
            "who": {"type": "string", "title": "who"},
            "times": {"type": "number", "title": "times", "default": 1},
        },
        "required": ["who"],
        "additionalProperties": False,
    }
    # A text output: the envelope says nothing of its shape.
    assert greeting.output_schema["properties"]["output"] == {}
    assert greeting.output_schema["required"] == ["run_id", "status"]

    triage = tools["triage"]
    assert triage.input_schema["properties"]["ticket"]["description"] == "The ticket's text."
    assert triage.output_schema["properties"]["output"] == TRIAGE_SCHEMA


# Calling -------------------------------------------------------------------------------


def test_a_call_runs_the_workflow_and_answers_its_output(
    live_server, engine_in_process: None, personas: Personas, fake_calls
) -> None:
    exposed(personas.workspace, TRIAGE)
    token = api_token(personas.workspace, personas.alice, name="agent")

    result = call(live_server.url, token, "triage", {"ticket": "The app crashes on login."})

    assert result.is_error is False
    run = Run.objects.get()
    assert result.structured_content == {
        "run_id": run.id,
        "status": "succeeded",
        "output": {"category": "bug"},
    }
    assert json.loads(result.content[0].text) == result.structured_content
    assert run.trigger == Run.Trigger.MCP
    assert run.api_token == ApiToken.objects.get(name="agent")
    assert run.inputs == {"ticket": "The app crashes on login."}
    assert fake_calls("The app crashes on login.") == 1


def test_a_failed_run_is_a_tool_error_with_the_runs_error(
    live_server, engine_in_process: None, personas: Personas
) -> None:
    exposed(personas.workspace, TRIAGE)

    result = call(
        live_server.url,
        api_token(personas.workspace, personas.alice),
        "triage",
        {"ticket": "[[fake:400 times=20]]"},
    )

    run = Run.objects.get()
    assert run.status == Run.Status.FAILED
    assert result.is_error is True
    assert result.structured_content == {"run_id": run.id, "status": "failed", "error": run.error}
    assert "triage" in run.error


@pytest.fixture
def internal_api(settings) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    """test_http_step's local JSON API, allowed by the operator (its port on 127.0.0.1 only)."""
    api = Target()
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{api.port}"]
    yield api
    api.httpd.shutdown()
    api.httpd.server_close()


def test_the_issues_workflow_calls_an_internal_api_with_a_secret_as_a_tool(
    live_server, engine_in_process: None, personas: Personas, internal_api: Target
) -> None:
    """Done when (issue 15): an internal JSON API allowed by the operator, called with a
    bearer secret, its answer summarized by the model; called by an agent through /mcp.
    The secret reaches the API and never the agent."""
    secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=Membership.objects.get(user=personas.alice, workspace=personas.workspace),
    )
    exposed(
        personas.workspace,
        {
            "name": "Ticket digest",
            "inputs": [{"name": "api", "type": "text", "description": "The API's address."}],
            "steps": [
                {
                    "key": "fetch",
                    "type": "http",
                    "url": "{{ api }}",
                    "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"},
                    # When the API is down: one more try, then the default text.
                    "retries": 1,
                    "on_error": "offline",
                },
                {
                    "key": "summary",
                    "type": "llm",
                    "prompt": "Summarize: {{ fetch.json | json }} [[fake:reply=All quiet.]]",
                    "max_tokens": 50,
                    "next": "end",
                },
                {
                    "key": "offline",
                    "type": "template",
                    "template": "No digest today: the ticket API answered "
                    "{{ fetch.error.status }}.",
                },
            ],
        },
    )
    token = api_token(personas.workspace, personas.alice)

    result = call(live_server.url, token, "ticket_digest", {"api": internal_api.url("/echo")})

    assert result.structured_content["status"] == "succeeded", result.structured_content
    assert result.structured_content["output"] == "All quiet."
    assert internal_api.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    read = call(live_server.url, token, "runs_get", {"run_id": result.structured_content["run_id"]})
    assert read.structured_content["steps"][0]["key"] == "fetch"
    assert SECRET not in json.dumps(read.structured_content)
    assert SECRET not in result.content[0].text + read.content[0].text

    # The API is down (it answers 500): the default text, after one more try.
    down = call(live_server.url, token, "ticket_digest", {"api": internal_api.url("/fail")})
    assert down.structured_content["status"] == "succeeded", down.structured_content
    assert down.structured_content["output"] == "No digest today: the ticket API answered 500."
    assert [r["path"] for r in internal_api.requests].count("/fail") == 2
    failed_run = Run.objects.get(id=down.structured_content["run_id"])
    assert failed_run.steps.get(key="fetch").attempts == 2
    assert failed_run.steps.get(key="summary").status == "skipped"
    assert SECRET not in json.dumps(down.structured_content)


def test_a_tool_cannot_send_a_secret_to_a_host_the_secret_does_not_name(
    live_server, engine_in_process: None, personas: Personas, internal_api: Target, settings
) -> None:  # type: ignore[no-untyped-def]
    """The agent chooses the address; the secret still goes only to its own hosts."""
    port = internal_api.port
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{port}", f"localhost:{port}"]
    secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=Membership.objects.get(user=personas.alice, workspace=personas.workspace),
    )
    exposed(
        personas.workspace,
        {
            "name": "Fetch",
            "inputs": [{"name": "api", "type": "text", "description": "The API's address."}],
            "steps": [
                {
                    "key": "fetch",
                    "type": "http",
                    "url": "{{ api }}",
                    "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"},
                    "retries": 2,
                }
            ],
        },
    )
    token = api_token(personas.workspace, personas.alice)

    result = call(live_server.url, token, "fetch", {"api": internal_api.url("/echo", "localhost")})

    assert result.structured_content["status"] == "failed", result.structured_content
    assert "The secret API_KEY may be sent only to 127.0.0.1" in result.structured_content["error"]
    assert "not to localhost" in result.structured_content["error"]
    assert internal_api.requests == []
    assert SECRET not in json.dumps(result.structured_content)
    assert Run.objects.get(id=result.structured_content["run_id"]).steps.get().attempts == 1


def test_missing_inputs_are_a_tool_error_naming_them(
    live_server, transactional_db: None, personas: Personas
) -> None:
    exposed(personas.workspace, GREETING)

    result = call(
        live_server.url, api_token(personas.workspace, personas.alice), "greeting", {"times": 2}
    )

    assert result.is_error is True
    assert "Missing required inputs: who." in result.content[0].text
    assert not Run.objects.exists()


def test_a_hidden_workflow_cannot_be_called_by_its_old_name(
    live_server, transactional_db: None, personas: Personas
) -> None:
    workflow = exposed(personas.workspace, GREETING)
    workflow_mcp_expose(workflow=workflow, exposed=False, user=None)

    with pytest.raises(MCPError, match="Unknown tool: greeting"):
        call(
            live_server.url, api_token(personas.workspace, personas.alice), "greeting", {"who": "x"}
        )
    assert not Run.objects.exists()


def test_a_run_still_going_at_the_deadline_answers_its_id_and_status(
    live_server, transactional_db: None, personas: Personas, settings
) -> None:
    # No worker consumes the test queue here: the run stays queued.
    settings.MCP_CALL_WAIT_SECONDS = 1
    exposed(personas.workspace, GREETING)
    token = api_token(personas.workspace, personas.alice)

    result = call(live_server.url, token, "greeting", {"who": "Ada"})

    run = Run.objects.get()
    assert result.is_error is False
    assert result.structured_content == {"run_id": run.id, "status": "queued"}

    later = call(live_server.url, token, "runs_get", {"run_id": run.id})
    assert later.structured_content["id"] == run.id
    assert later.structured_content["status"] == "queued"
    assert later.structured_content["trigger"] == "mcp"


def test_the_same_request_again_is_the_same_run(
    live_server, transactional_db: None, personas: Personas, settings
) -> None:
    settings.MCP_CALL_WAIT_SECONDS = 0
    exposed(personas.workspace, GREETING)
    token = api_token(personas.workspace, personas.alice)

    first = raw_call(live_server.url, token, 7, "greeting", {"who": "Ada"})
    again = raw_call(live_server.url, token, 7, "greeting", {"who": "Ada"})
    other_id = raw_call(live_server.url, token, 8, "greeting", {"who": "Ada"})
    other_args = raw_call(live_server.url, token, 7, "greeting", {"who": "Bob"})

    def run_id(response: Any) -> int:
        assert response.status_code == 200, response.text
        return response.json()["result"]["structuredContent"]["run_id"]

    assert run_id(first) == run_id(again)
    assert len({run_id(first), run_id(other_id), run_id(other_args)}) == 3
    assert Run.objects.count() == 3


# Who may ------------------------------------------------------------------------------


def test_a_wrong_or_missing_token_is_refused_with_a_401(
    live_server, transactional_db: None, personas: Personas
) -> None:
    exposed(personas.workspace, GREETING)

    for headers in ({}, {"Authorization": "Bearer sw_not-a-token"}, {"Authorization": "Basic x"}):
        response = httpx2.post(
            f"{live_server.url}/mcp",
            headers={**headers, "Content-Type": "application/json"},
            content=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}',
        )
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "A valid API token is required" in response.json()["error"]

    # The SDK's client says so its own way (the 401 is above).
    with pytest.raises(MCPError, match="Server returned an error response"):
        tools_of(live_server.url, "sw_not-a-token")


def test_an_address_django_does_not_serve_is_refused_before_the_token_is_looked_at(
    live_server, transactional_db: None, personas: Personas
) -> None:
    """A Django view: ALLOWED_HOSTS applies (DNS rebinding), as on every other address."""
    exposed(personas.workspace, GREETING)
    response = httpx2.post(
        f"{live_server.url}/mcp",
        headers={
            "Host": "attacker.example",
            "Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}",
            "Content-Type": "application/json",
        },
        content=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}',
    )
    assert response.status_code == 400
    assert "greeting" not in response.text


def test_a_revoked_token_is_refused_at_once(
    live_server, transactional_db: None, personas: Personas
) -> None:
    exposed(personas.workspace, GREETING)
    value = api_token(personas.workspace, personas.alice)
    assert "greeting" in tools_of(live_server.url, value)

    token_revoke(token=ApiToken.objects.get(), user=personas.alice)

    response = raw_call(live_server.url, value, 1, "greeting", {"who": "Ada"})
    assert response.status_code == 401
    assert not Run.objects.exists()


def test_a_token_whose_maker_is_now_a_viewer_is_refused(
    live_server, transactional_db: None, personas: Personas
) -> None:
    """Tokens act with an admin's rights (the API's rule): a maker demoted to viewer, or to
    editor, takes their tokens with them, here as at /api/v1."""
    exposed(personas.workspace, GREETING)
    Membership.objects.filter(user=personas.bob).update(role=Role.ADMIN)
    value = api_token(personas.workspace, personas.bob)
    Membership.objects.filter(user=personas.bob).update(role=Role.VIEWER)

    response = raw_call(live_server.url, value, 1, "greeting", {"who": "Ada"})
    assert response.status_code == 401


def test_another_workspaces_runs_are_not_readable(
    live_server, transactional_db: None, personas: Personas
) -> None:
    theirs = run_row(exposed(personas.other_workspace, GREETING), inputs={"who": "Charlie"})
    ours = run_row(exposed(personas.workspace, GREETING), inputs={"who": "Ada"}, output="Hi Ada")
    token = api_token(personas.workspace, personas.alice)

    refused = call(live_server.url, token, "runs_get", {"run_id": theirs.id})
    assert refused.is_error is True
    assert json.loads(refused.content[0].text) == {"error": "No such run."}
    missing = call(live_server.url, token, "runs_get", {"run_id": theirs.id + ours.id + 100})
    assert missing.content[0].text == refused.content[0].text

    read = call(live_server.url, token, "runs_get", {"run_id": ours.id})
    assert read.structured_content["id"] == ours.id
    assert read.structured_content["output"] == "Hi Ada"
    assert read.structured_content["inputs"] == {"who": "Ada"}


def test_their_tools_cannot_be_called_by_name(
    live_server, transactional_db: None, personas: Personas
) -> None:
    exposed(personas.other_workspace, {**GREETING, "name": "Charlie only"})

    with pytest.raises(MCPError, match="Unknown tool: charlie_only"):
        call(
            live_server.url,
            api_token(personas.workspace, personas.alice),
            "charlie_only",
            {"who": "x"},
        )
    assert not Run.objects.exists()


# Stored text is inert ------------------------------------------------------------------

MARKUP_NAME = '<script>alert("name")</script>'
MARKUP_DESCRIPTION = '<img src=x onerror=alert("description")>'


def test_markup_in_names_comes_back_as_plain_strings_and_is_escaped_on_the_page(
    live_server, transactional_db: None, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace, {**GREETING, "name": MARKUP_NAME, "description": MARKUP_DESCRIPTION}
    )
    owner = client_for(personas.alice)
    page = reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id])
    owner.post(
        reverse("workflow_mcp", args=[personas.workspace.slug, workflow.id]), {"mcp_exposed": "on"}
    )

    tools = tools_of(live_server.url, api_token(personas.workspace, personas.alice))
    tool = tools["script_alert_name_script"]
    assert tool.title == MARKUP_NAME
    assert tool.description.startswith(MARKUP_DESCRIPTION)

    html = owner.get(page).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in html
    assert "script_alert_name_script" in html


# The switch on the triggers page --------------------------------------------------------


def test_an_admin_exposes_a_workflow_and_its_name_stays_through_a_rename(
    personas: Personas,
) -> None:
    workflow = published_workflow(personas.workspace, {**GREETING, "name": "Reply to a ticket"})
    Membership.objects.filter(user=personas.bob).update(role=Role.ADMIN)
    bob = client_for(personas.bob)
    url = reverse("workflow_mcp", args=[personas.workspace.slug, workflow.id])

    response = bob.post(url, {"mcp_exposed": "on"})

    assert response.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.mcp_exposed, workflow.mcp_name) == (True, "reply_to_a_ticket")
    Workflow.objects.filter(id=workflow.id).update(name="Answer a ticket")
    bob.post(url, {})
    workflow.refresh_from_db()
    assert (workflow.mcp_exposed, workflow.mcp_name) == (False, "reply_to_a_ticket")
    bob.post(url, {"mcp_exposed": "on"})
    workflow.refresh_from_db()
    assert (workflow.mcp_exposed, workflow.mcp_name) == (True, "reply_to_a_ticket")
    entries = AuditEntry.objects.filter(action="workflow.mcp_expose", actor=personas.bob)
    assert entries.count() == 3


def test_editors_and_viewers_cannot_expose_a_workflow(personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    url = reverse("workflow_mcp", args=[personas.workspace.slug, workflow.id])
    for user in (personas.bob, personas.vera):
        assert client_for(user).post(url, {"mcp_exposed": "on"}).status_code == 403
    assert client_for(personas.charlie).post(url, {"mcp_exposed": "on"}).status_code == 404
    workflow.refresh_from_db()
    assert workflow.mcp_exposed is False


def test_viewers_see_whether_it_is_exposed_without_the_switch(personas: Personas) -> None:
    workflow = exposed(personas.workspace, GREETING)
    page = reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id])

    html = client_for(personas.vera).get(page).content.decode()

    assert "Exposed" in html
    assert "<code>greeting</code>" in html
    assert reverse("workflow_mcp", args=[personas.workspace.slug, workflow.id]) not in html


def test_workflows_whose_names_make_the_same_tool_name_get_different_ones(
    personas: Personas,
) -> None:
    first = exposed(personas.workspace, {**GREETING, "name": "Summarize"})
    second = exposed(personas.workspace, {**GREETING, "name": "summarize!"})
    third = exposed(personas.workspace, {**GREETING, "name": "Runs get"})
    assert (first.mcp_name, second.mcp_name, third.mcp_name) == (
        "summarize",
        "summarize_2",
        "runs_get_2",
    )


# The shapes ----------------------------------------------------------------------------


def test_tool_names_are_ascii_lower_case_and_never_empty() -> None:
    assert tool_name_for("Résumé d'un e-mail", set()) == "resume_d_un_e_mail"
    assert tool_name_for("日本語", set()) == "workflow"
    assert tool_name_for("x" * 300, set()) == "x" * 60
    assert tool_name_for("runs_get", set()) == "runs_get_2"


def test_a_json_input_takes_any_value_and_an_optional_one_is_not_required() -> None:
    definition = services.definition_parse(
        {
            **GREETING,
            "inputs": [
                {"name": "data", "type": "json", "description": "Anything."},
                {"name": "flag", "type": "boolean", "required": False},
            ],
            "steps": [{"key": "t", "type": "template", "template": "{{ data }} {{ flag }}"}],
        }
    )
    assert input_schema(definition) == {
        "type": "object",
        "properties": {
            "data": {"title": "data", "description": "Anything."},
            "flag": {"type": "boolean", "title": "flag"},
        },
        "required": ["data"],
        "additionalProperties": False,
    }


def test_no_output_schema_when_a_step_can_end_the_run_earlier() -> None:
    definition = services.definition_parse(
        {
            **TRIAGE,
            "steps": [
                TRIAGE["steps"][0],
                {
                    "key": "route",
                    "type": "condition",
                    "cases": [
                        {
                            "left": "{{ triage.category }}",
                            "op": "equals",
                            "right": "bug",
                            "goto": "end",
                        }
                    ],
                    "else": "again",
                },
                {**TRIAGE["steps"][0], "key": "again"},
            ],
        }
    )
    assert declared_output_schema(definition) is None
    assert declared_output_schema(services.definition_parse(TRIAGE)) == TRIAGE_SCHEMA
    with_template = services.definition_parse({**TRIAGE, "output": "{{ triage.category }}"})
    assert declared_output_schema(with_template) is None
