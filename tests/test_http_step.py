"""The http step: requests through the guarded client, internal hosts only when allowed,
workspace secrets sent but never stored, logged or shown.

The target of the requests is a real HTTP server on 127.0.0.1 started here,
allowed through OUTBOUND_ALLOWED_HOSTS in the tests that reach it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.test import Client

from accounts.models import Membership
from accounts.services import secret_create
from tests.conftest import Personas
from tests.factories import api_token, client_for, published_workflow, steps_of
from workflows import services
from workflows.builder.definition import validate_definition
from workflows.models import Run

SECRET = "sk-test-4f9c2a1b8d7e6f5a-never-stored"


class Target:
    """A local HTTP API: answers per path, and records what it received (headers included)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        target = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path, _, query = self.path.partition("?")
                seen = {
                    "method": self.command,
                    "path": path,
                    "query": query,
                    "headers": dict(self.headers.items()),
                    "body": body,
                }
                target.requests.append(seen)
                if path == "/echo":  # says back everything it received, secrets included
                    status, headers, content = (
                        200,
                        {"Content-Type": "application/json"},
                        json.dumps(seen).encode(),
                    )
                elif path == "/fail":
                    status, headers = (
                        500,
                        {
                            "Content-Type": "text/plain",
                            "X-Echo": seen["headers"].get("Authorization", ""),
                        },
                    )
                    content = ("It broke while handling " + json.dumps(seen)).encode()
                else:
                    status, headers, content = target.routes.get(path, (404, {}, b"not here"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def allowed(target: Target, settings) -> Target:  # type: ignore[no-untyped-def]
    """The local target, allowed by the operator (only its port on 127.0.0.1)."""
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{target.port}"]
    return target


def call(url: str, **fields: object) -> dict:
    """A workflow of one http step (key `call`) to a URL given as the `target` input."""
    step = {"key": "call", "type": "http", "url": url, **fields}
    return {
        "name": "Call",
        "inputs": [{"name": "target", "type": "text", "required": False}],
        "steps": [step],
    }


def run(personas: Personas, definition: dict, **inputs: object) -> Run:
    definition = {**definition, "name": f"Call {uuid.uuid4().hex[:8]}"}
    workflow = published_workflow(personas.workspace, definition)
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs)
    run.refresh_from_db()
    return run


def admin(personas: Personas) -> Membership:
    return Membership.objects.get(user=personas.alice, workspace=personas.workspace)


# --- Reaching a URL ------------------------------------------------------------------------------


def test_it_calls_an_allowed_internal_api_and_passes_its_json_on(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/items"] = (
        200,
        {"Content-Type": "application/json"},
        b'{"items": [{"name": "otter"}]}',
    )
    definition = call(
        "{{ target }}",
        query={"page": "{{ target | json }}"},
        headers={"X-Team": "stepwise"},
    )
    definition["steps"].append(
        {
            "key": "name",
            "type": "template",
            "template": "{{ call.json.items.0.name }} ({{ call.status }})",
        }
    )
    done = run(personas, definition, target=allowed.url("/items"))
    assert done.status == Run.Status.SUCCEEDED, done.error
    assert done.output == "otter (200)"
    step = steps_of(done)["call"]
    assert step.output["status"] == 200 and step.output["json"] == {"items": [{"name": "otter"}]}
    assert step.output["headers"]["content-type"] == "application/json"
    assert step.messages[0]["content"].startswith(f"GET {allowed.url('/items')}?page=")
    assert step.messages[1]["status"] == "200"
    assert step.latency_ms is not None
    (seen,) = allowed.requests
    assert seen["headers"]["X-Team"] == "stepwise"


def test_a_json_body_is_built_from_variables_with_their_types(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    definition = call(
        "{{ target }}",
        method="POST",
        body_type="json",
        body='{"who": "{{ target }}", "n": "{{ n }}", "note": "n is {{ n }}"}',
    )
    definition["inputs"].append({"name": "n", "type": "number"})
    done = run(personas, definition, target=allowed.url("/echo"), n=3)
    assert done.status == Run.Status.SUCCEEDED, done.error
    sent = json.loads(allowed.requests[0]["body"])
    assert sent == {"who": allowed.url("/echo"), "n": 3, "note": "n is 3"}
    assert allowed.requests[0]["headers"]["Content-Type"] == "application/json"


def test_an_answer_outside_2xx_fails_the_step_with_its_status_and_the_start_of_its_body(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/down"] = (503, {}, b"maintenance " + b"x" * 2000)
    done = run(personas, call("{{ target }}"), target=allowed.url("/down"))
    assert done.status == Run.Status.FAILED
    assert "HTTP 503: maintenance xxx" in done.error
    step = steps_of(done)["call"]
    assert step.status == "failed" and len(step.error) < 600
    assert step.messages[1]["status"] == "503"


def test_a_response_schema_is_checked_statically_and_at_run_time(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    definition = call("{{ target }}", response_schema=schema)
    definition["steps"].append(
        {"key": "t", "type": "template", "template": "{{ call.json.cuont }}"}
    )
    _, issues = validate_definition(definition, models={"gpt-4.1-mini": 100})
    assert any(
        'call has no field "cuont"' in issue.message or "cuont" in issue.message for issue in issues
    )
    assert any("Did you mean" in issue.message for issue in issues)
    definition["steps"][1]["template"] = "{{ call.json.count }}"
    allowed.routes["/n"] = (200, {"Content-Type": "application/json"}, b'{"count": "many"}')
    done = run(personas, definition, target=allowed.url("/n"))
    assert done.status == Run.Status.FAILED
    assert "does not match the response schema" in done.error


def test_a_response_over_5_mb_fails_the_step(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/big"] = (200, {}, b"x" * (5 * 1024 * 1024 + 10))
    done = run(personas, call("{{ target }}"), target=allowed.url("/big"))
    assert done.status == Run.Status.FAILED
    assert "larger than" in done.error


def test_the_timeout_is_at_most_120_seconds() -> None:
    _, issues = validate_definition(call("https://example.com/", timeout_seconds=121), models={})
    assert [issue.field for issue in issues] == ["timeout_seconds"]
    _, issues = validate_definition(call("https://example.com/"), models={})
    assert issues == []


# --- What it may reach -------------------------------------------------------------------------

SSRF = [
    "http://127.0.0.1:{port}/echo",
    "http://localhost:{port}/echo",
    "http://[::1]:{port}/echo",
    "http://127.1:{port}/echo",
    "http://2130706433:{port}/echo",  # decimal
    "http://0x7f000001:{port}/echo",  # hex
    "http://0177.0.0.1:{port}/echo",  # octal
    "http://0.0.0.0:{port}/echo",
    "http://[::]:{port}/echo",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::ffff:127.0.0.1]:{port}/echo",  # IPv4-mapped IPv6
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]:{port}/",  # 6to4 around 127.0.0.1
    "http://[2002:a9fe:a9fe::]/",  # 6to4 around 169.254.169.254
    "http://[64:ff9b::7f00:1]:{port}/",  # NAT64 around 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around 169.254.169.254
]


@pytest.mark.parametrize("url", SSRF)
def test_it_refuses_every_address_inside_our_network(
    engine_in_process: None, personas: Personas, target: Target, url: str
) -> None:
    url = url.format(port=target.port)
    done = run(personas, call("{{ target }}"), target=url)
    assert done.status == Run.Status.FAILED
    assert "Refused" in done.error, done.error
    assert target.requests == []
    # Written as a literal address in its usual spelling, publishing refuses it already.
    _, issues = validate_definition(call(url), models={})
    try:
        ipaddress.ip_address((urlsplit(url).hostname or "").strip("[]"))
    except ValueError:
        return  # a name, or an odd spelling: only resolving it says where it leads
    assert [issue.field for issue in issues] == ["url"]


def test_a_redirect_to_a_private_address_is_refused(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    allowed.routes["/hop"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    done = run(personas, call("{{ target }}"), target=allowed.url("/hop"))
    assert done.status == Run.Status.FAILED
    assert "Refused" in done.error and "169.254.169.254" in done.error
    assert [r["path"] for r in allowed.requests] == ["/hop"]


def test_a_redirect_to_another_origin_does_not_carry_the_credentials(
    engine_in_process: None, personas: Personas, allowed: Target, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{allowed.port}", f"localhost:{allowed.port}"]
    allowed.routes["/hop"] = (307, {"Location": allowed.url("/echo", host="localhost")}, b"")
    definition = call("{{ target }}", headers={"Authorization": "Bearer t0ken", "X-Key": "k3y"})
    done = run(personas, definition, target=allowed.url("/hop"))
    assert done.status == Run.Status.SUCCEEDED, done.error
    first, second = allowed.requests
    assert first["headers"]["Authorization"] == "Bearer t0ken"
    assert "Authorization" not in second["headers"] and "X-Key" not in second["headers"]


def test_dns_rebinding_between_the_check_and_the_connection_does_not_move_the_request(
    engine_in_process: None, personas: Personas, allowed: Target, monkeypatch, settings
) -> None:  # type: ignore[no-untyped-def]
    """A name that resolves to the allowed address when checked, and to the metadata
    service afterwards: the connection goes to the address that was checked."""
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{allowed.port}"]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "rebind.example":
            address = next(answers, "169.254.169.254")
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    done = run(personas, call("{{ target }}"), target=f"http://rebind.example:{allowed.port}/echo")
    assert done.status == Run.Status.SUCCEEDED, done.error
    (seen,) = allowed.requests
    assert seen["headers"]["Host"] == f"rebind.example:{allowed.port}"


def test_an_internal_host_is_reachable_only_when_the_operator_allows_it_and_the_workspace_too(
    engine_in_process: None, personas: Personas, target: Target, settings
) -> None:  # type: ignore[no-untyped-def]
    definition = call("{{ target }}")
    url = target.url("/echo")
    assert run(personas, definition, target=url).status == Run.Status.FAILED
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]
    assert run(personas, definition, target=url).status == Run.Status.SUCCEEDED
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{target.port + 1}"]  # another port only
    assert run(personas, definition, target=url).status == Run.Status.FAILED
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]
    owner = admin(personas)
    services_narrow(personas, owner, "10.0.0.0/8")
    narrowed = run(personas, definition, target=url)
    assert narrowed.status == Run.Status.FAILED and "Refused" in narrowed.error
    services_narrow(personas, owner, f"127.0.0.1:{target.port}")
    assert run(personas, definition, target=url).status == Run.Status.SUCCEEDED
    services_narrow(personas, owner, "")  # narrowed to nothing
    assert run(personas, definition, target=url).status == Run.Status.FAILED
    assert len(target.requests) == 2


def services_narrow(personas: Personas, owner: Membership, hosts: str) -> None:
    from accounts.services import outbound_narrow

    personas.workspace.refresh_from_db()
    outbound_narrow(workspace=personas.workspace, narrowed=True, allowed_hosts=hosts, actor=owner)


# --- Secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        {"key": "s", "type": "llm", "prompt": "Use {{ secrets.API_KEY }}"},
        {"key": "s", "type": "llm", "prompt": "Hi", "system": "Key: {{ secrets.API_KEY }}"},
        {"key": "s", "type": "template", "template": "{{ secrets.API_KEY }}"},
        {
            "key": "s",
            "type": "condition",
            "cases": [
                {"left": "{{ secrets.API_KEY }}", "op": "equals", "right": "x", "goto": "end"}
            ],
            "else": "end",
        },
    ],
    ids=["prompt", "system", "template", "condition"],
)
def test_validation_refuses_secrets_outside_an_http_step(where: dict) -> None:
    definition = {"name": "Leak", "steps": [where]}
    _, issues = validate_definition(definition, models={"gpt-4.1-mini": 1000})
    assert any("secrets can be used only in an http step" in issue.message for issue in issues), (
        issues
    )


def test_validation_refuses_secrets_in_the_output_and_as_a_name() -> None:
    definition = call("https://example.com/?k={{ secrets.API_KEY }}")
    assert validate_definition(definition, models={})[1] == []
    definition["output"] = "{{ secrets.API_KEY }}"
    _, issues = validate_definition(definition, models={})
    assert [issue.field for issue in issues] == ["output"]
    named = {
        "name": "N",
        "inputs": [{"name": "secrets"}],
        "steps": [{"key": "t", "type": "template", "template": "x"}],
    }
    assert any("reserved" in issue.message for issue in validate_definition(named, models={})[1])
    # An http step's fallback becomes its output: no secrets there either.
    fallback = call("https://example.com/", on_error="continue", fallback="{{ secrets.API_KEY }}")
    _, issues = validate_definition(fallback, models={})
    assert [issue.field for issue in issues] == ["fallback"]
    whole = call("https://example.com/", headers={"X": "{{ secrets }}"})
    assert any(
        "name one secret" in issue.message for issue in validate_definition(whole, models={})[1]
    )


def test_a_secret_is_sent_but_never_stored_logged_or_shown(
    engine_in_process: None, personas: Personas, allowed: Target, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=admin(personas),
    )
    ok = call(
        "{{ target }}",
        method="POST",
        query={"key": "{{ secrets.API_KEY }}"},
        headers={"Authorization": "Bearer {{ secrets.API_KEY }}"},
        body_type="json",
        body='{"token": "{{ secrets.API_KEY }}", "note": "key={{ secrets.API_KEY }}"}',
    )
    ok["steps"].append(
        {
            "key": "said",
            "type": "template",
            "template": "{{ call.json.headers.Authorization }} {{ call }}",
        }
    )
    good = run(personas, ok, target=allowed.url("/echo"))
    assert good.status == Run.Status.SUCCEEDED, good.error
    failing = call("{{ target }}", headers={"Authorization": "Bearer {{ secrets.API_KEY }}"})
    bad = run(personas, failing, target=allowed.url("/fail"))
    assert bad.status == Run.Status.FAILED
    assert "HTTP 500" in bad.error and "•••" in bad.error
    # The server got the secret, where it was asked for.
    sent = allowed.requests[0]
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert f"key={SECRET}" in str(sent["query"])
    assert json.loads(str(sent["body"])) == {"token": SECRET, "note": f"key={SECRET}"}
    assert allowed.requests[1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    # The record says what was sent, with the secret redacted.
    record = steps_of(good)["call"].messages[0]["content"]
    assert "Authorization: Bearer •••" in record and "key=%E2%80%A2%E2%80%A2%E2%80%A2" in record
    assert "•••" in good.output
    # Not in any row of any table.
    for model in apps.get_models():
        for row in model.objects.all().values():
            assert SECRET not in str(row), f"{model.__name__}: {row}"
    # Not in any log line.
    assert SECRET not in caplog.text
    # Not on any page that shows these runs.
    alice = client_for(personas.alice)
    slug = personas.workspace.slug
    for done in (good, bad):
        for address in (f"/w/{slug}/runs/{done.id}/", f"/w/{slug}/workflows/{done.workflow_id}/"):
            html = alice.get(address).content.decode()
            assert SECRET not in html
    for address in ("audit/", "settings/secrets/", "runs/", "usage/"):
        response = alice.get(f"/w/{slug}/{address}")
        assert response.status_code == 200 and SECRET not in response.content.decode()
    api = Client(
        headers={"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    )
    for done in (good, bad):
        answer = api.get(f"/api/v1/runs/{done.id}")
        assert answer.status_code == 200 and SECRET not in answer.content.decode()


def test_a_missing_secret_fails_the_step_with_its_name(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    done = run(
        personas,
        call("{{ target }}", headers={"X-Key": "{{ secrets.NOPE }}"}),
        target=allowed.url("/echo"),
    )
    assert done.status == Run.Status.FAILED
    assert "The secret NOPE does not exist" in done.error
    assert allowed.requests == []


def test_another_workspaces_secret_is_not_used(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    charlie = Membership.objects.get(user=personas.charlie, workspace=personas.other_workspace)
    secret_create(
        workspace=personas.other_workspace,
        name="THEIRS",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=charlie,
    )
    done = run(
        personas,
        call("{{ target }}", headers={"X-Key": "{{ secrets.THEIRS }}"}),
        target=allowed.url("/echo"),
    )
    assert done.status == Run.Status.FAILED and "THEIRS does not exist" in done.error
    assert allowed.requests == []


def test_an_export_names_the_secrets_and_an_import_lists_the_missing_ones(
    personas: Personas,
) -> None:
    secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=admin(personas),
    )
    definition = call(
        "https://example.com/{{ secrets.PATH_KEY }}",
        headers={"Authorization": "Bearer {{ secrets.API_KEY }}"},
    )
    token = api_token(personas.workspace, personas.alice)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    created = api.post("/api/v1/workflows", definition, content_type="application/json")
    assert created.status_code == 201, created.content
    answer = created.json()
    assert answer["secrets"] == ["API_KEY", "PATH_KEY"]
    assert answer["missing_secrets"] == ["PATH_KEY"]
    exported = api.get(f"/api/v1/workflows/{answer['id']}/export").content.decode()
    assert "{{ secrets.API_KEY }}" in exported and SECRET not in exported


def test_the_run_page_shows_the_request_as_sent_and_the_answers_status(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=admin(personas),
    )
    allowed.routes["/items"] = (200, {"Content-Type": "application/json"}, b'{"n": 1}')
    definition = call("{{ target }}", headers={"Authorization": "Bearer {{ secrets.API_KEY }}"})
    done = run(personas, definition, target=allowed.url("/items"))
    html = (
        client_for(personas.alice)
        .get(f"/w/{personas.workspace.slug}/runs/{done.id}/")
        .content.decode()
    )
    assert ">Request</span>" in html and ">Response</span>" in html
    assert f"GET {allowed.url('/items')}" in html
    assert "Authorization: Bearer •••" in html and SECRET not in html
    assert "HTTP 200" in html and "8 bytes" in html


# --- The editor ---------------------------------------------------------------------------------


def test_the_editor_saves_the_query_and_headers_as_lines_and_keeps_a_bad_line_as_typed(
    personas: Personas,
) -> None:
    from tests.test_editor import draft, url

    workflow = services.workflow_create(
        workspace=personas.workspace, definition=call("https://example.com/"), user=personas.bob
    )
    client = client_for(personas.bob)
    save = url(personas, "workflow_step_save", workflow, 0)
    fields = {
        "key": "call",
        "method": "POST",
        "url": "https://api.example.com/items",
        "query": "page=1\r\nq={{ target }}",
        "headers": "Authorization: Bearer {{ secrets.API_KEY }}\r\nX-Team: stepwise",
        "body_type": "json",
        "body": '{"q": "{{ target }}"}',
        "timeout_seconds": "10",
        "response_schema": "",
    }
    assert client.post(save, fields, HTTP_HX_REQUEST="true").status_code == 200
    step = draft(workflow)["steps"][0]
    assert step["query"] == {"page": "1", "q": "{{ target }}"}
    assert step["headers"] == {
        "Authorization": "Bearer {{ secrets.API_KEY }}",
        "X-Team": "stepwise",
    }
    assert (step["method"], step["body_type"], step["timeout_seconds"]) == ("POST", "json", 10.0)
    assert validate_definition(draft(workflow), models={})[1] == []
    response = client.post(
        save, {"key": "call", "headers": "no separator here"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422  # saved as typed, and said why
    assert draft(workflow)["steps"][0]["headers"] == "no separator here"
    assert "Line 1: write Name: value." in response.content.decode()
    page = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=0")
    html = page.content.decode()
    assert 'name="headers"' in html and "no separator here" in html
    client.post(
        save, {"key": "call", "headers": "X: {{ secrets.API_KEY }}"}, HTTP_HX_REQUEST="true"
    )
    page = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=0")
    assert "secrets this workspace does not have: <code>API_KEY</code>" in page.content.decode()


def test_an_internal_api_answer_is_summarised_by_the_model_without_the_secret_reaching_it(
    engine_in_process: None, personas: Personas, allowed: Target, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: an internal JSON API (allowed by the operator) called with a bearer
    secret, its answer summarised with gpt-4.1-mini. The API echoes the header back; the
    model sees it redacted."""
    secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=["127.0.0.1"],
        actor=admin(personas),
    )
    definition = call("{{ target }}", headers={"Authorization": "Bearer {{ secrets.API_KEY }}"})
    definition["steps"].append(
        {
            "key": "summary",
            "type": "llm",
            "prompt": "Summarise this answer: {{ call.json }}",
            "max_tokens": 50,
        }
    )
    done = run(personas, definition, target=allowed.url("/echo"))
    assert done.status == Run.Status.SUCCEEDED, done.error
    assert allowed.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert fake_calls("Summarise this answer") == 1
    assert fake_calls("Bearer •••") == 1
    assert fake_calls(SECRET) == 0
    assert SECRET not in str(steps_of(done)["summary"].messages)
