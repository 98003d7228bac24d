"""A run's live events: `GET /api/v1/runs/{id}/events` under uvicorn with a real
worker (tokens while a step streams, resumed after Last-Event-ID; a map's
items' tokens), and the pages' event stream refusing whoever may not see the
run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx2
import pytest
from django.test import Client

from tests.conftest import Personas
from tests.factories import api_token, chain, run_started, steps_of
from tests.polling import wait_for_run
from tests.servers import AsgiServer, WorkerProcess
from workflows.integrations.run_events import (
    ApiFeed,
    BrowserFeed,
    ItemState,
    RunState,
    StepState,
    run_state,
)
from workflows.models import Run, StepItem, StepRun


@dataclass
class Event:
    id: str | None
    event: str
    data: str

    @property
    def json(self) -> dict:
        return json.loads(self.data)


def events_of(lines: Iterable[str]) -> Iterator[Event]:
    """Server-sent events as a client parses them (comments skipped)."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if line == "":
            if fields:
                yield Event(
                    id=fields.get("id", [None])[-1],
                    event=fields.get("event", ["message"])[-1],
                    data="\n".join(fields.get("data", [])),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))


@pytest.fixture(scope="module")
def web(worker_env: dict[str, str]) -> Iterator[AsgiServer]:
    server = AsgiServer(worker_env)
    yield server
    server.stop()


SLOW = "Tell of {{ topic }} " + "word " * 30 + "[[fake:token_ms=80]]"


def slow_definition() -> dict:
    definition = chain("Events", [SLOW, "Shorten {{ s1 }}"])
    definition["steps"][0]["max_tokens"] = 200
    definition["steps"][1]["max_tokens"] = 300
    return definition


@pytest.mark.integration
def test_the_api_streams_tokens_and_resumes_after_last_event_id(
    web: AsgiServer, worker: WorkerProcess, personas: Personas
) -> None:
    token = api_token(personas.workspace, personas.alice)
    auth = {"Authorization": f"Bearer {token}"}
    run = run_started(personas.workspace, slow_definition(), {"topic": "herons"})
    url = f"{web.url}/api/v1/runs/{run.id}/events"

    first: list[Event] = []
    with httpx2.stream("GET", url, headers=auth, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in events_of(response.iter_lines()):
            first.append(event)
            if sum(e.event == "token" for e in first) == 3:
                break
    # The client left while the first step was still being written.
    assert Run.objects.get(id=run.id).steps.get(key="s1").status == "running"
    assert [e.event for e in first] == ["step.started", "token", "token", "token"]
    assert first[0].id == "0:0" and first[0].json["key"] == "s1"

    rest: list[Event] = []
    with httpx2.stream(
        "GET", url, headers={**auth, "Last-Event-ID": first[-1].id or ""}, timeout=60
    ) as response:
        assert response.status_code == 200
        rest = list(events_of(response.iter_lines()))  # the server ends it with the run

    run = wait_for_run(run.id)
    steps = steps_of(run)
    events = first + rest
    s1_tokens = [e.json for e in events if e.event == "token" and e.json["key"] == "s1"]
    # Nothing seen twice, nothing missed: the offsets follow each other and the
    # pieces make the step's answer.
    assert [t["offset"] for t in s1_tokens] == [
        sum(len(t["text"]) for t in s1_tokens[:i]) for i in range(len(s1_tokens))
    ]
    assert "".join(t["text"] for t in s1_tokens) == steps["s1"].output
    assert len(s1_tokens) >= 5, "the answer came in pieces while it was written"
    kinds = [(e.event, e.json.get("key")) for e in rest if e.event != "token"]
    assert kinds == [
        ("step.finished", "s1"),
        ("step.started", "s2"),
        ("step.finished", "s2"),
        ("run.finished", None),
    ]
    finished = rest[-1]
    assert finished.id == "run"
    assert finished.json["status"] == "succeeded"
    assert finished.json["cost_nanousd"] == run.cost_nanousd
    s1_end = next(e for e in rest if e.event == "step.finished" and e.json["key"] == "s1")
    assert s1_end.id == "0:end"
    assert s1_end.json["output"] == steps["s1"].output
    assert s1_end.json["cost_nanousd"] == steps["s1"].cost_nanousd

    # Resumed after the first step's end: only what came after it.
    with httpx2.stream("GET", url, headers={**auth, "Last-Event-ID": "0:end"}, timeout=30) as r:
        replay = list(events_of(r.iter_lines()))
    assert [e.event for e in replay if e.event != "token"] == [
        "step.started",
        "step.finished",
        "run.finished",
    ]
    assert all(e.json.get("key") == "s2" for e in replay[:-1])
    # After the run's end: nothing more.
    with httpx2.stream("GET", url, headers={**auth, "Last-Event-ID": "run"}, timeout=30) as r:
        assert list(events_of(r.iter_lines())) == []


@pytest.mark.integration
def test_the_page_stream_sends_the_answer_escaped_as_it_grows(
    web: AsgiServer, worker: WorkerProcess, personas: Personas
) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    reply = f"[[fake:reply={hostile} " + "more " * 20 + "]]"
    definition = chain("Hostile", [reply + " [[fake:token_ms=80]] {{ topic }}"])
    run = run_started(personas.workspace, definition, {"topic": "x"})
    session = Client()
    session.force_login(personas.vera)  # a viewer
    cookies = {"sessionid": session.cookies["sessionid"].value}
    url = f"{web.url}/w/{personas.workspace.slug}/runs/{run.id}/events/"
    events: list[Event] = []
    with httpx2.stream("GET", url, cookies=cookies, timeout=60) as response:
        assert response.status_code == 200
        for event in events_of(response.iter_lines()):
            events.append(event)
            if event.event == "done":
                break
    texts = [e.data for e in events if e.event == "text-s1"]
    assert len(texts) >= 2, "the answer was sent as it grew"
    assert all("<img" not in text for text in texts)
    assert "&lt;img src=x onerror=alert(1)&gt;" in texts[-1]
    assert events[0].event == "changed"
    assert events[-1].event == "done"


def test_another_workspace_cannot_open_a_run_s_streams(client: Client, personas: Personas) -> None:
    run = run_started(personas.workspace, chain("Private", ["Secret {{ topic }}"]), {"topic": "x"})
    client.force_login(personas.charlie)
    # Not a member: the run's workspace answers 404, and so does charlie's own with this run.
    response = client.get(f"/w/{personas.workspace.slug}/runs/{run.id}/events/")
    assert response.status_code == 404
    response = client.get(f"/w/{personas.other_workspace.slug}/runs/{run.id}/events/")
    assert response.status_code == 404
    theirs = api_token(personas.other_workspace, personas.charlie)
    response = client.get(
        f"/api/v1/runs/{run.id}/events", headers={"Authorization": f"Bearer {theirs}"}
    )
    assert response.status_code == 404
    assert response.json()["error"]


def test_the_page_stream_needs_a_login(client: Client, personas: Personas) -> None:
    run = run_started(personas.workspace, chain("Private", ["Secret {{ topic }}"]), {"topic": "x"})
    response = client.get(f"/w/{personas.workspace.slug}/runs/{run.id}/events/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_many_viewers_of_one_run_cost_one_poll_per_run(
    transactional_db: None, personas: Personas, settings
) -> None:
    import asyncio

    from workflows.integrations.run_events import watch, watched

    settings.RUN_EVENTS_POLL_SECONDS = 0.1
    run = run_started(personas.workspace, chain("Watched", ["Watch {{ topic }}"]), {"topic": "x"})

    async def five_viewers() -> None:
        viewers = [watch(run.id) for _ in range(5)]
        states = await asyncio.gather(*(anext(viewer) for viewer in viewers))
        assert {state.status for state in states if state} == {"queued"}
        await asyncio.sleep(1.0)
        subscribers, polls = watched(run.id) or (0, 0)
        assert subscribers == 5
        # About ten reads in a second for all five, not fifty.
        assert 5 <= polls <= 15, polls
        for viewer in viewers:
            await viewer.aclose()
        assert watched(run.id) is None

    asyncio.run(five_viewers())


def slow_map(prompt: str) -> dict:
    return {
        "name": "Items",
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ things }}",
                "concurrency": 2,
                "prompt": prompt,
                "max_tokens": 200,
            }
        ],
    }


@pytest.mark.integration
def test_the_api_streams_a_map_item_s_tokens_before_the_item_finishes(
    web: AsgiServer, worker: WorkerProcess, personas: Personas
) -> None:
    token = api_token(personas.workspace, personas.alice)
    prompt = "Item {{ index }}: {{ item }} " + "word " * 30 + "[[fake:token_ms=80]]"
    run = run_started(personas.workspace, slow_map(prompt), {"things": ["herons", "storks"]})
    url = f"{web.url}/api/v1/runs/{run.id}/events"
    events: list[Event] = []
    running_when_seen: set[int] = set()
    with httpx2.stream(
        "GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as response:
        assert response.status_code == 200
        for event in events_of(response.iter_lines()):
            events.append(event)
            if event.event == "item.token":
                index = event.json["index"]
                item = StepItem.objects.get(run=run, step_key="each", index=index)
                if item.status == StepItem.Status.RUNNING:
                    running_when_seen.add(index)
    run = wait_for_run(run.id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    # Both items' tokens came while the items were still being written.
    assert running_when_seen == {0, 1}
    outputs = dict(StepItem.objects.filter(run=run).values_list("index", "output"))
    for index in (0, 1):
        pieces = [e.json for e in events if e.event == "item.token" and e.json["index"] == index]
        assert len(pieces) >= 3, pieces
        assert {(p["key"], p["position"], p["type"]) for p in pieces} == {("each", 0, "map")}
        assert [p["offset"] for p in pieces] == [
            sum(len(p["text"]) for p in pieces[:i]) for i in range(len(pieces))
        ]
        # What had been written before the item's end, in order.
        assert outputs[index].startswith("".join(p["text"] for p in pieces))
    # Items stream side by side: their events carry no id, so a reconnect
    # resumes after the step's own events.
    assert all(e.id is None for e in events if e.event.startswith("item."))
    kinds = [e.event for e in events if not e.event.startswith("item.")]
    assert kinds == ["step.started", "step.finished", "run.finished"]
    first_token = next(i for i, e in enumerate(events) if e.event == "item.token")
    step_end = next(i for i, e in enumerate(events) if e.event == "step.finished")
    assert 0 < first_token < step_end
    assert events[step_end].json["output"] == [outputs[0], outputs[1]]


@pytest.mark.integration
def test_the_page_stream_sends_a_map_item_s_answer_escaped_as_it_grows(
    web: AsgiServer, worker: WorkerProcess, personas: Personas
) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    prompt = f"[[fake:reply={hostile} " + "more " * 20 + "]] [[fake:token_ms=80]] {{{{ item }}}}"
    run = run_started(personas.workspace, slow_map(prompt), {"things": ["x"]})
    session = Client()
    session.force_login(personas.vera)  # a viewer
    cookies = {"sessionid": session.cookies["sessionid"].value}
    url = f"{web.url}/w/{personas.workspace.slug}/runs/{run.id}/events/"
    events: list[Event] = []
    with httpx2.stream("GET", url, cookies=cookies, timeout=60) as response:
        assert response.status_code == 200
        for event in events_of(response.iter_lines()):
            events.append(event)
            if event.event == "done":
                break
    texts = [e.data for e in events if e.event == "text-each-0"]
    assert len(texts) >= 2, "the item's answer was sent as it grew"
    assert all("<img" not in text for text in texts)
    assert "&lt;img src=x onerror=alert(1)&gt;" in texts[-1]


def _state(*items: ItemState, status: str = "running") -> RunState:
    step = StepState(0, "each", "map", status, None, "", 0, 0, 0, 1)
    return RunState("running", None, "", 0, steps=(step,), items=items)


def test_an_item_s_new_attempt_is_announced_and_its_text_sent_from_the_start() -> None:
    feed = ApiFeed()
    first = feed.events(_state(ItemState("each", 0, "Hello wor", 1)))
    assert [e.split("\n")[0] for e in first] == ["id: 0:0", "event: item.token"]
    more = feed.events(_state(ItemState("each", 0, "Hello world", 1)))
    assert '"offset":9,"text":"ld"' in more[0]
    # A new attempt starts empty: announced once, then its text from offset 0.
    [retrying] = feed.events(_state(ItemState("each", 0, None, 2)))
    data = '{"key":"each","position":0,"type":"map","index":0,"attempt":2}'
    assert retrying == f"event: item.retrying\ndata: {data}\n\n"
    again = feed.events(_state(ItemState("each", 0, "Hi", 2)))
    assert len(again) == 1 and '"offset":0,"text":"Hi"' in again[0]


def test_the_page_gets_an_item_s_text_cut_as_its_table_shows_it() -> None:
    feed = BrowserFeed()
    long = "a" * 400
    [event] = feed.events(_state(ItemState("each", 3, long, 1)))
    assert event == "event: text-each-3\ndata: " + "a" * 300 + "…\n\n"
    # Past the cut, a longer text changes nothing the page shows: nothing is sent.
    assert feed.events(_state(ItemState("each", 3, long + "b", 1))) == []


def test_the_poll_reads_running_items_only_while_a_step_over_a_list_runs(
    db: None, personas: Personas, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    run = run_started(personas.workspace, slow_map("Each {{ item }}"), {"things": ["a", "b"]})
    with django_assert_num_queries(2):
        assert run_state(run.id).items == ()  # type: ignore[union-attr]
    StepRun.objects.create(run=run, key="each", position=0, type="map", status="running")
    StepItem.objects.create(run=run, step_key="each", index=0, status="running", output="So far")
    StepItem.objects.create(run=run, step_key="each", index=1, status="succeeded", output="Done")
    with django_assert_num_queries(3):
        state = run_state(run.id)
    assert state is not None
    assert state.items == (ItemState("each", 0, "So far", 0),)
