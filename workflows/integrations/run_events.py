"""A run's progress as server-sent events: for the run page and the editor's
test-run cards (`browser_events`) and for API clients (`api_events`).

Many viewers of one run cost one database poll per run, not one per viewer:
each process has a hub (per event loop) holding one asyncio task per watched
run, which reads the run and its steps every RUN_EVENTS_POLL_SECONDS (two
small queries, in a worker thread, its connection handed back) and wakes the
subscribers when something changed. A subscriber holds no thread: it awaits
the hub and writes what is new to it. The task ends with its last subscriber,
or once the run has finished.

The text of a step still running is what the engine persisted of its
streamed answer (StepRun.output, written at most every
STREAM_PERSIST_SECONDS; workflows/runtime/engine.py), and so is a running
map item's (StepItem.output, workflows/runtime/items.py): while a step of a
kind that goes over a list runs, the poll reads its running items too (a
third small query, in the same poll; none otherwise).

API event ids make a stream resumable (`Last-Event-ID`): `<position>:<chars>`
for a step's start (`:0`) and its tokens (the answer's length so far),
`<position>:end` for its end, `run` for the run's. Steps run in the order of
their positions, so an id says everything before it was seen. A map's items
stream side by side, so their events (`item.token`, `item.retrying`) carry
no id: after a reconnect a running item's text comes again from offset 0.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.html import escape

from workflows import sql
from workflows.integrations import stream_slots
from workflows.models import Run, StepItem, StepRun
from workflows.steps import STEP_TYPES

log = logging.getLogger(__name__)

# A comment line now and then, so that proxies keep an idle stream open.
KEEPALIVE_SECONDS = 15.0
# After `done`, how long the page's stream stays open for the page to close it.
BROWSER_LINGER_SECONDS = 30.0
FINISHED_STEP = (StepRun.Status.SUCCEEDED, StepRun.Status.FAILED, StepRun.Status.SKIPPED)
# A map item's input and output are cut to this many characters in the run
# page's table, and so is a running item's text sent to the page.
ITEM_PREVIEW_CHARS = 300


def item_preview(value: object) -> str:
    """A map item's input or output as the run page's table shows it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:ITEM_PREVIEW_CHARS] + ("…" if len(text) > ITEM_PREVIEW_CHARS else "")


@dataclass(frozen=True)
class StepState:
    position: int
    key: str
    type: str
    status: str
    output: object
    error: str
    tokens_in: int
    tokens_out: int
    cost_nanousd: int
    attempts: int

    @property
    def text(self) -> str | None:
        """A running step's answer so far (None: nothing streamed yet)."""
        if self.status == StepRun.Status.RUNNING and isinstance(self.output, str):
            return self.output
        return None


@dataclass(frozen=True)
class ItemState:
    """A running item of a step that goes over a list (a map over a prompt)."""

    key: str
    index: int
    output: object
    attempts: int

    @property
    def text(self) -> str | None:
        """Its answer so far (None: nothing streamed yet)."""
        return self.output if isinstance(self.output, str) else None


@dataclass(frozen=True)
class RunState:
    status: str
    output: object
    error: str
    cost_nanousd: int
    steps: tuple[StepState, ...]
    # The running items of its running steps that go over a list, by key and index.
    items: tuple[ItemState, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in Run.FINISHED

    @property
    def shape(self) -> tuple[object, ...]:
        """What the page's layout depends on: the run's and its steps' statuses."""
        return (self.status, tuple((s.key, s.status, s.attempts) for s in self.steps))


def run_state(run_id: int) -> RunState | None:
    """The run and its steps as stored now (two queries, and one for the
    running items while a step that goes over a list runs); None if it is gone."""
    try:
        row = Run.objects.filter(id=run_id).values_list("status", "output", "error", "cost_nanousd")
        found = row.first()
        if found is None:
            return None
        steps = tuple(
            StepState(*values)
            for values in StepRun.objects.filter(run_id=run_id)
            .order_by("position")
            .values_list(
                "position",
                "key",
                "type",
                "status",
                "output",
                "error",
                "tokens_in",
                "tokens_out",
                "cost_nanousd",
                "attempts",
            )
        )
        listing = [
            step.key
            for step in steps
            if step.status == StepRun.Status.RUNNING
            and hasattr(STEP_TYPES.get(step.type), "item_source")
        ]
        items: tuple[ItemState, ...] = ()
        if listing:
            items = tuple(
                ItemState(*values)
                for values in StepItem.objects.filter(
                    run_id=run_id, step_key__in=listing, status=StepItem.Status.RUNNING
                )
                .order_by("step_key", "index")
                .values_list("step_key", "index", "output", "attempts")
            )
        return RunState(*found, steps=steps, items=items)
    finally:
        sql.connection_release()


class _Watch:
    """One run watched by this process: the task polling it and its latest state."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.state: RunState | None = None
        self.loaded = False
        self.subscribers = 0
        self.polls = 0  # database reads so far, whatever the number of subscribers
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        try:
            while self.subscribers:
                self.polls += 1
                try:
                    state = await sync_to_async(run_state)(self.run_id)
                except DatabaseError:
                    log.warning("Run %s: could not read its progress", self.run_id)
                    state = self.state
                if state != self.state or not self.loaded:
                    self.state, self.loaded = state, True
                    changed, self.changed = self.changed, asyncio.Event()
                    changed.set()
                if state is None or state.finished:
                    return
                await asyncio.sleep(settings.RUN_EVENTS_POLL_SECONDS)
        finally:
            self.task = None


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Watch]] = (
    weakref.WeakKeyDictionary()
)


def _watches() -> dict[int, _Watch]:
    return _hubs.setdefault(asyncio.get_running_loop(), {})


async def watch(run_id: int) -> AsyncIterator[RunState | None]:
    """The run's state now, then each time it changes, until it has finished
    (its last state included) or is gone (None). Shared by every subscriber
    of this process."""
    watches = _watches()
    entry = watches.get(run_id) or watches.setdefault(run_id, _Watch(run_id))
    entry.subscribers += 1
    try:
        seen: RunState | None = None
        first = True
        while True:
            if entry.task is None and not (entry.loaded and _over(entry.state)):
                # A fresh context: the task outlives the request that started it.
                entry.task = asyncio.get_running_loop().create_task(
                    entry.poll(), context=contextvars.Context()
                )
            waiting = entry.changed
            if entry.loaded and (first or entry.state != seen):
                seen, first = entry.state, False
                yield seen
                if _over(seen):
                    return
                continue
            await waiting.wait()
    finally:
        entry.subscribers -= 1
        if not entry.subscribers and watches.get(run_id) is entry:
            del watches[run_id]


def _over(state: RunState | None) -> bool:
    return state is None or state.finished


def watched(run_id: int) -> tuple[int, int] | None:
    """(subscribers, database reads so far) of a run this event loop's hub
    watches, or None (for tests and the curious)."""
    entry = _watches().get(run_id)
    return (entry.subscribers, entry.polls) if entry is not None else None


def sse(event: str, data: str, *, event_id: str | None = None) -> str:
    """One server-sent event; every line of `data` gets its own `data:` field."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


async def _with_keepalive(events: AsyncIterator[str]) -> AsyncIterator[str]:
    """`events`, with a comment line whenever nothing was sent for a while."""
    iterator = aiter(events)
    pending: asyncio.Task[str] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield ": keepalive\n\n"
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()


# What each kind of client is sent -------------------------------------------------


class BrowserFeed:
    """For the run page and the editor (htmx's SSE extension): `changed` when a
    step starts or ends (the page fetches itself again), `text-<key>` with a
    running step's answer so far and `text-<key>-<index>` with a running map
    item's (a step key has no "-"; cut as the page's table cuts it), escaped
    (it is swapped in as HTML), and
    `done` at the end (the page closes the connection: sse-close).

    `linger`: after `done`, keep the connection open for the page to close
    (an EventSource, which asks for text/event-stream, takes a connection the
    server ends for a failure, and tries again)."""

    def __init__(self, *, linger: bool = True) -> None:
        self.linger = linger
        self.shape: tuple[object, ...] | None = None
        self.texts: dict[str, str] = {}
        self.over = False

    def start(self) -> list[str]:
        # The page may have been drawn before the last change: look again at once.
        return [sse("changed", "")]

    def events(self, state: RunState | None) -> list[str]:
        if state is None:
            self.over = True
            return [sse("done", "")]
        events = []
        if self.shape is not None and state.shape != self.shape:
            events.append(sse("changed", ""))
        self.shape = state.shape
        for step in state.steps:
            if step.text is not None and self.texts.get(step.key) != step.text:
                self.texts[step.key] = step.text
                events.append(sse(f"text-{step.key}", str(escape(step.text))))
        for item in state.items:
            # Cut as the table shows it: once past the cut, nothing more is sent.
            name, text = f"text-{item.key}-{item.index}", item_preview(item.text)
            if text and self.texts.get(name) != text:
                self.texts[name] = text
                events.append(sse(name, str(escape(text))))
        if state.finished:
            # Its status is part of the shape: `changed` was sent above.
            self.over = True
            events.append(sse("done", ""))
        return events


@dataclass
class _Sent:
    """How far a client got in one step (from its Last-Event-ID, then as events go)."""

    started: bool = False
    chars: int = 0
    ended: bool = False


def _resume_point(last_event_id: str) -> tuple[int, int | None] | None:
    """(position, chars or None for "ended") from a Last-Event-ID; None: the run's end."""
    if last_event_id == "run":
        return None
    position, _, chars = last_event_id.partition(":")
    try:
        return int(position), None if chars == "end" else max(0, int(chars))
    except ValueError:
        return -1, 0  # not one of ours: from the start


def _step_data(step: StepState, **extra: object) -> str:
    return json.dumps(
        {"key": step.key, "position": step.position, "type": step.type, **extra},
        ensure_ascii=False,
        separators=(",", ":"),
    )


class ApiFeed:
    """For `GET /api/v1/runs/{id}/events`; the event types are documented in
    the README ("Run events")."""

    def __init__(self, last_event_id: str = "") -> None:
        self.resume = _resume_point(last_event_id) if last_event_id else (-1, 0)
        self.sent: dict[int, _Sent] = {}
        # (attempt, characters sent) of each running item's answer, by (step key, index).
        self.items_sent: dict[tuple[str, int], tuple[int, int]] = {}
        self.over = self.resume is None  # the client saw the run's end

    def start(self) -> list[str]:
        return []

    def events(self, state: RunState | None) -> list[str]:
        if state is None or self.resume is None:
            self.over = True
            return []
        events: list[str] = []
        items: dict[str, list[ItemState]] = {}
        for item in state.items:
            items.setdefault(item.key, []).append(item)
        for step in state.steps:
            sent = self.sent.setdefault(step.position, self._initial(step.position))
            events += _step_events(step, sent)
            if step.key in items and sent.started and not sent.ended:
                for item in items[step.key]:
                    events += _item_events(step, item, self.items_sent)
        if state.finished:
            self.over = True
            data = {
                "status": state.status,
                "output": state.output,
                "error": state.error,
                "cost_nanousd": state.cost_nanousd,
            }
            events.append(sse("run.finished", json.dumps(data, ensure_ascii=False), event_id="run"))
        return events

    def _initial(self, position: int) -> _Sent:
        assert self.resume is not None
        seen_position, chars = self.resume
        if position < seen_position:
            return _Sent(started=True, ended=True)
        if position == seen_position:
            return _Sent(started=True, chars=chars or 0, ended=chars is None)
        return _Sent()


def _step_events(step: StepState, sent: _Sent) -> list[str]:
    events: list[str] = []
    pos = step.position
    if sent.ended or step.status == StepRun.Status.WAITING:
        return events
    if not sent.started and step.status != StepRun.Status.SKIPPED:
        sent.started = True
        events.append(sse("step.started", _step_data(step), event_id=f"{pos}:0"))
    text = step.text
    if sent.chars and step.status == StepRun.Status.SUCCEEDED and isinstance(step.output, str):
        text = step.output  # the end of a streamed answer, written with its result
    if text is not None:
        if len(text) < sent.chars:
            # A new attempt (the stream was cut, or its worker died): from the start.
            sent.chars = 0
            events.append(
                sse("step.retrying", _step_data(step, attempt=step.attempts), event_id=f"{pos}:0")
            )
        if len(text) > sent.chars:
            piece = text[sent.chars :]
            events.append(
                sse(
                    "token",
                    _step_data(step, offset=sent.chars, text=piece),
                    event_id=f"{pos}:{len(text)}",
                )
            )
            sent.chars = len(text)
    if step.status in FINISHED_STEP:
        sent.ended = True
        data = _step_data(
            step,
            status=step.status,
            output=step.output,
            error=step.error,
            tokens_in=step.tokens_in,
            tokens_out=step.tokens_out,
            cost_nanousd=step.cost_nanousd,
            attempts=step.attempts,
        )
        events.append(sse("step.finished", data, event_id=f"{pos}:end"))
    return events


def _item_events(
    step: StepState, item: ItemState, items_sent: dict[tuple[str, int], tuple[int, int]]
) -> list[str]:
    """A running item's new text (`item.token`), after `item.retrying` when a
    new attempt started since (each attempt starts with no text,
    workflows/runtime/items.py); no ids (see the module's docstring)."""
    events: list[str] = []
    attempt, chars = items_sent.get((item.key, item.index), (item.attempts, 0))
    text = item.text or ""
    if attempt != item.attempts or len(text) < chars:
        attempt, chars = item.attempts, 0
        data = _step_data(step, index=item.index, attempt=item.attempts)
        events.append(sse("item.retrying", data))
    if len(text) > chars:
        data = _step_data(step, index=item.index, offset=chars, text=text[chars:])
        events.append(sse("item.token", data))
        chars = len(text)
    items_sent[(item.key, item.index)] = (attempt, chars)
    return events


Feed = BrowserFeed | ApiFeed


# Serving them --------------------------------------------------------------------


async def stream_async(run_id: int, feed: Feed) -> AsyncIterator[str]:
    """The feed's events from this process's hub: no thread held while it waits."""

    async def events() -> AsyncIterator[str]:
        for event in feed.start():
            yield event
        if not feed.over:
            async for state in watch(run_id):
                for event in feed.events(state):
                    yield event
                if feed.over:
                    break
        if isinstance(feed, BrowserFeed) and feed.linger:
            await asyncio.sleep(BROWSER_LINGER_SECONDS)

    async for chunk in _with_keepalive(events()):
        yield chunk


def stream_sync(run_id: int, feed: Feed) -> Iterator[str]:
    """The same events for a WSGI server (runserver, the tests' live server),
    which cannot serve an async stream as it goes: a thread per viewer, each
    polling on its own. Deployments serve ASGI (uvicorn) and use the hub."""
    yield from feed.start()
    quiet = 0.0
    while not feed.over:
        events = feed.events(run_state(run_id))
        yield from events
        quiet = 0.0 if events else quiet + settings.RUN_EVENTS_POLL_SECONDS
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        time.sleep(settings.RUN_EVENTS_POLL_SECONDS)
    if isinstance(feed, BrowserFeed) and feed.linger:
        # A write each second: a page that closed the connection ends this thread.
        for _ in range(int(BROWSER_LINGER_SECONDS)):
            time.sleep(1)
            yield ": done\n\n"


def event_response(
    request: HttpRequest, run_id: int, feed: Feed, slot: stream_slots.Slot
) -> StreamingHttpResponse:
    """The answer of an events endpoint: `text/event-stream`, never cached or buffered,
    holding `slot` (one of its holder's STREAMS_PER_USER places) until it ends."""
    events: stream_slots.HoldingAsync | stream_slots.HoldingSync
    if isinstance(request, WSGIRequest):
        events = stream_slots.HoldingSync(slot, stream_sync(run_id, feed))
    else:
        events = stream_slots.HoldingAsync(slot, stream_async(run_id, feed))
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
