"""Where a secret may go: each workspace secret names its hosts, and an http step that uses
it reaches no other host, on any hop, from any way a run starts (a run, the editor's test
run, MCP in test_mcp.py). The target is the real local server of test_http_step.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from django.urls import reverse

from accounts.models import Membership, WorkspaceSecret
from accounts.services import SecretRefused, secret_create, secret_rotate
from config.lib.secret_hosts import host_allowed, normalise_host, parse_hosts
from tests.conftest import Personas
from tests.factories import client_for
from tests.test_http_step import SECRET, Target, admin, call, run
from workflows import services
from workflows.models import Run

pytestmark = pytest.mark.django_db

BEARER = {"Authorization": "Bearer {{ secrets.API_KEY }}"}


@pytest.fixture
def both_names(settings) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    """The local target, reachable by the operator's rules as 127.0.0.1 and as localhost."""
    target = Target()
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{target.port}", f"localhost:{target.port}"]
    yield target
    target.httpd.shutdown()
    target.httpd.server_close()


def key_for(personas: Personas, *hosts: str) -> WorkspaceSecret:
    return secret_create(
        workspace=personas.workspace,
        name="API_KEY",
        value=SECRET,
        allowed_hosts=list(hosts),
        actor=admin(personas),
    )


def refused(done: Run, host: str) -> None:
    """The run failed on the secret's hosts, naming the secret and the host, not the value."""
    assert done.status == Run.Status.FAILED
    assert "The secret API_KEY may be sent only to" in done.error, done.error
    assert f"not to {host}" in done.error
    step = done.steps.get(key="call")
    assert step.attempts == 1  # not retried, whatever the step's retries
    everything = json.dumps([done.error, step.error, step.messages, step.output])
    assert SECRET not in everything


# --- At run time -------------------------------------------------------------------------------


def test_a_secret_goes_to_a_host_it_names(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "127.0.0.1")
    done = run(personas, call("{{ target }}", headers=BEARER), target=both_names.url("/echo"))
    assert done.status == Run.Status.SUCCEEDED, done.error
    assert both_names.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"


def test_a_request_to_another_host_is_refused_before_it_is_sent(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "api.example.com")
    for where in ("query", "headers", "body", "url"):
        fields: dict[str, object] = {"retries": 2}
        url = "{{ target }}"
        if where == "query":
            fields["query"] = {"key": "{{ secrets.API_KEY }}"}
        elif where == "headers":
            fields["headers"] = BEARER
        elif where == "body":
            fields |= {"method": "POST", "body_type": "text", "body": "{{ secrets.API_KEY }}"}
        else:
            url = "{{ target }}?key={{ secrets.API_KEY }}"
        done = run(personas, call(url, **fields), target=both_names.url("/echo"))
        refused(done, "127.0.0.1")
    assert both_names.requests == []  # the server saw nothing


def test_a_redirect_to_a_host_the_secret_does_not_name_is_refused(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "127.0.0.1")
    both_names.routes["/hop"] = (302, {"Location": both_names.url("/echo", host="localhost")}, b"")
    done = run(personas, call("{{ target }}", headers=BEARER), target=both_names.url("/hop"))
    refused(done, "localhost")
    assert [r["path"] for r in both_names.requests] == ["/hop"]
    # Named too, the redirect is followed with it.
    WorkspaceSecret.objects.filter(name="API_KEY").update(allowed_hosts=["127.0.0.1", "localhost"])
    done = run(personas, call("{{ target }}", headers=BEARER), target=both_names.url("/hop"))
    assert done.status == Run.Status.SUCCEEDED, done.error


def test_a_secret_in_the_host_name_is_refused_before_the_name_is_even_resolved(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "127.0.0.1")
    done = run(personas, call("http://{{ secrets.API_KEY }}.example.com/"))
    assert done.status == Run.Status.FAILED
    assert "may be sent only to 127.0.0.1" in done.error
    assert SECRET not in done.error and "•••" in done.error


def test_a_wildcard_names_subdomains_only(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "*.stepwise.invalid")
    apex = run(personas, call("http://stepwise.invalid/", headers=BEARER))
    refused(apex, "stepwise.invalid")
    # A subdomain passes the secret's check, and goes on to the name's resolution (which
    # fails: .invalid names resolve to nothing).
    sub = run(personas, call("http://api.deep.stepwise.invalid/", headers=BEARER))
    assert sub.status == Run.Status.FAILED
    assert "could not be resolved" in sub.error and "API_KEY" not in sub.error
    other = run(personas, call("{{ target }}", headers=BEARER), target=both_names.url("/echo"))
    refused(other, "127.0.0.1")
    assert both_names.requests == []
    assert host_allowed(["*.example.com"], "api.example.com")
    assert host_allowed(["*.example.com"], "a.b.EXAMPLE.com")
    assert not host_allowed(["*.example.com"], "example.com")
    assert not host_allowed(["*.example.com"], "evilexample.com")
    assert not host_allowed(["*.example.com"], "example.com.evil.net")
    assert not host_allowed(["api.example.com"], "v2.api.example.com")


def test_hosts_compare_without_case_and_in_their_idna_form(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "LocalHost.")
    assert WorkspaceSecret.objects.get(name="API_KEY").allowed_hosts == ["localhost"]
    done = run(
        personas, call("{{ target }}", headers=BEARER), target=both_names.url("/echo", "LOCALHOST")
    )
    assert done.status == Run.Status.SUCCEEDED, done.error
    assert parse_hosts("Bücher.Example, *.ÉCOLE.example") == [
        "xn--bcher-kva.example",
        "*.xn--cole-9oa.example",
    ]
    assert normalise_host("ａｐｉ。stripe。com") == "api.stripe.com"
    assert host_allowed(["xn--bcher-kva.example"], "BÜCHER.example")
    assert host_allowed(["*.xn--bcher-kva.example"], "api.bücher.example")
    assert not host_allowed(["xn--bcher-kva.example"], "bucher.example")


def test_a_legacy_secret_still_goes_anywhere_the_server_allows(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "api.example.com")
    WorkspaceSecret.objects.filter(name="API_KEY").update(any_host=True, allowed_hosts=[])
    done = run(personas, call("{{ target }}", headers=BEARER), target=both_names.url("/echo"))
    assert done.status == Run.Status.SUCCEEDED, done.error


def test_every_secret_of_a_request_must_name_the_host(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "127.0.0.1")
    secret_create(
        workspace=personas.workspace,
        name="OTHER",
        value="other-value-1234",
        allowed_hosts=["api.example.com"],
        actor=admin(personas),
    )
    headers = {**BEARER, "X-Other": "{{ secrets.OTHER }}"}
    done = run(personas, call("{{ target }}", headers=headers), target=both_names.url("/echo"))
    assert done.status == Run.Status.FAILED
    assert "The secret OTHER may be sent only to api.example.com" in done.error
    assert both_names.requests == []


def test_the_editors_test_run_is_held_to_the_same_hosts(
    engine_in_process: None, personas: Personas, both_names: Target
) -> None:
    key_for(personas, "api.example.com")
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={**call("{{ target }}", headers=BEARER), "name": f"T {uuid.uuid4().hex[:6]}"},
        user=personas.bob,
    )
    response = client_for(personas.bob).post(
        reverse("workflow_test_run", args=[personas.workspace.slug, workflow.id]),
        {"input-target": both_names.url("/echo")},
    )
    assert response.status_code in (200, 302)
    done = Run.objects.get(workflow=workflow)
    refused(done, "127.0.0.1")
    assert both_names.requests == []


# --- Who sets them -------------------------------------------------------------------------------


def test_only_admins_and_owners_set_a_secrets_hosts(personas: Personas) -> None:
    secret = key_for(personas, "api.example.com")
    editor = Membership.objects.get(user=personas.bob, workspace=personas.workspace)
    with pytest.raises(SecretRefused):
        secret_rotate(secret=secret, value="", allowed_hosts=["evil.example"], actor=editor)
    with pytest.raises(SecretRefused):
        secret_create(
            workspace=personas.workspace,
            name="MINE",
            value="v",
            allowed_hosts=["evil.example"],
            actor=editor,
        )
    secret.refresh_from_db()
    assert secret.allowed_hosts == ["api.example.com"]


def test_a_new_secret_must_name_a_host(personas: Personas) -> None:
    for hosts in ([], "", " , "):
        with pytest.raises(SecretRefused, match="at least one host"):
            secret_create(
                workspace=personas.workspace,
                name="KEY",
                value="v",
                allowed_hosts=hosts,
                actor=admin(personas),
            )
    assert not WorkspaceSecret.objects.exists()


def test_the_editor_panel_says_where_each_secret_may_go(personas: Personas) -> None:
    key_for(personas, "api.example.com", "*.example.org")
    WorkspaceSecret.objects.create(
        workspace=personas.workspace, name="OLD", value_encrypted="x", any_host=True
    )
    headers = {**BEARER, "X-Old": "{{ secrets.OLD }}"}
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition=call("https://api.example.com/", headers=headers),
        user=personas.bob,
    )
    editor = reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])
    html = client_for(personas.bob).get(editor + "?panel=step&step=0").content.decode()
    assert (
        "<code>API_KEY</code> is sent only to <code>api.example.com</code>, "
        "<code>*.example.org</code>"
    ) in html
    assert "<code>OLD</code> may be sent to any host" in html
