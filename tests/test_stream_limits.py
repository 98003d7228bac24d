"""STREAMS_PER_USER: a member's pages, or an API token, hold at most so many live event
streams open at once, across web processes (workflows/integrations/stream_slots.py): one
more is a plain 429 on the page's stream (the page keeps polling) and the API's JSON error
on `/api/v1/runs/{id}/events`; a stream that ends, or whose client goes away, gives its
place back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta

import httpx2
import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from tests.conftest import Personas
from tests.factories import api_token, chain, client_for, run_started
from tests.polling import wait_until
from tests.servers import AsgiServer
from workflows.models import Run, StreamSlot


@pytest.fixture
def run(transactional_db: None, personas: Personas) -> Run:
    # Queued, with no worker: its streams stay open until closed.
    return run_started(personas.workspace, chain("Watched", ["Watch {{ topic }}"]), {"topic": "x"})


def page_stream(client: Client, personas: Personas, run: Run) -> StreamingHttpResponse:
    return client.get(f"/w/{personas.workspace.slug}/runs/{run.id}/events/")  # type: ignore[return-value]


def test_a_member_past_the_cap_gets_a_429_and_a_closed_stream_gives_its_place_back(
    personas: Personas, run: Run, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.STREAMS_PER_USER = 2
    client = client_for(personas.vera)
    first, second = page_stream(client, personas, run), page_stream(client, personas, run)
    assert first.status_code == second.status_code == 200
    refused = page_stream(client, personas, run)
    assert refused.status_code == 429
    assert "Too many live streams open (2)" in refused.content.decode()
    # Another member has places of their own.
    assert page_stream(client_for(personas.alice), personas, run).status_code == 200

    first.close()  # the stream ended (or its client went away)

    again = page_stream(client, personas, run)
    assert again.status_code == 200
    assert StreamSlot.objects.filter(holder=f"user:{personas.vera.pk}").count() == 2
    for response in (second, again):
        response.close()
    assert not StreamSlot.objects.filter(holder=f"user:{personas.vera.pk}").exists()


def test_an_api_token_past_the_cap_gets_the_json_error(
    personas: Personas, run: Run, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.STREAMS_PER_USER = 2
    auth = {"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    client = Client()
    url = f"/api/v1/runs/{run.id}/events"
    held = [client.get(url, headers=auth) for _ in range(2)]
    assert [response.status_code for response in held] == [200, 200]
    refused = client.get(url, headers=auth)
    assert refused.status_code == 429
    body = refused.json()
    assert set(body) == {"error", "details"}
    assert "2 event streams open already" in body["error"]
    assert body["details"] == {"limit": 2, "setting": "STREAMS_PER_USER"}
    assert refused["Retry-After"] == "10"
    # A second token of the same workspace has places of its own, and so do the pages.
    other = {"Authorization": f"Bearer {api_token(personas.workspace, personas.alice, 'b')}"}
    assert client.get(url, headers=other).status_code == 200
    assert page_stream(client_for(personas.alice), personas, run).status_code == 200
    held[0].close()
    assert client.get(url, headers=auth).status_code == 200


def test_the_place_of_a_stream_whose_process_died_expires(
    personas: Personas, run: Run, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.STREAMS_PER_USER = 1
    client = client_for(personas.vera)
    assert page_stream(client, personas, run).status_code == 200  # never closed
    assert page_stream(client, personas, run).status_code == 429
    StreamSlot.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert page_stream(client, personas, run).status_code == 200


def test_no_cap_holds_nothing(personas: Personas, run: Run, settings) -> None:  # type: ignore[no-untyped-def]
    settings.STREAMS_PER_USER = 0
    client = client_for(personas.vera)
    responses = [page_stream(client, personas, run) for _ in range(3)]
    assert all(response.status_code == 200 for response in responses)
    assert not StreamSlot.objects.exists()


def test_the_run_page_keeps_polling_beside_its_stream(personas: Personas, run: Run) -> None:
    """What the page does when its stream is refused: htmx's SSE extension tries again later,
    backing off, and the live part polls every 10 s meanwhile."""
    page = client_for(personas.vera).get(f"/w/{personas.workspace.slug}/runs/{run.id}/")
    text = page.content.decode()
    assert 'sse-connect="' in text
    assert 'hx-trigger="sse:changed, every 10s"' in text


# Under uvicorn, two web processes ------------------------------------------------------


@pytest.fixture(scope="module")
def two_web_processes(worker_env: dict[str, str]) -> Iterator[tuple[AsgiServer, AsgiServer]]:
    env = {**worker_env, "STREAMS_PER_USER": "2"}
    with ExitStack() as stack:
        first = AsgiServer(env)
        stack.callback(first.stop)
        second = AsgiServer(env)
        stack.callback(second.stop)
        yield first, second


def test_the_cap_holds_across_processes_and_a_client_going_away_frees_its_place(
    transactional_db: None,
    personas: Personas,
    two_web_processes: tuple[AsgiServer, AsgiServer],
) -> None:
    a, b = two_web_processes
    run = run_started(personas.workspace, chain("Watched", ["Watch {{ topic }}"]), {"topic": "x"})
    session = client_for(personas.vera)
    cookies = {"sessionid": session.cookies["sessionid"].value}
    path = f"/w/{personas.workspace.slug}/runs/{run.id}/events/"
    token = api_token(personas.workspace, personas.alice)
    api_path = f"/api/v1/runs/{run.id}/events"

    def status_of(server: AsgiServer) -> int:
        with httpx2.stream("GET", server.url + path, cookies=cookies, timeout=10) as response:
            return response.status_code

    with ExitStack() as streams:
        for server in (a, b):
            response = streams.enter_context(
                httpx2.stream("GET", server.url + path, cookies=cookies, timeout=30)
            )
            assert response.status_code == 200
        assert status_of(a) == 429 and status_of(b) == 429
        headers = {"Authorization": f"Bearer {token}"}
        for server in (a, b):
            response = streams.enter_context(
                httpx2.stream("GET", server.url + api_path, headers=headers, timeout=30)
            )
            assert response.status_code == 200
        refused = httpx2.get(a.url + api_path, headers=headers, timeout=10)
        assert refused.status_code == 429 and set(refused.json()) == {"error", "details"}
    # Every client went away: their places come back.
    wait_until(lambda: not StreamSlot.objects.exists(), timeout=15)
    with httpx2.stream("GET", a.url + path, cookies=cookies, timeout=30) as response:
        assert response.status_code == 200
