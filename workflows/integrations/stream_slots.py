"""STREAMS_PER_USER: the live event streams (workflows/integrations/run_events.py) that one
member's pages, or one API token, hold open at once, counted across every web process.

The count is shared, so it lives in the database (the cache is per process unless an
operator configures one, and config/lib/in_progress.py counts one process's requests): a
stream takes one of its holder's numbered places, a `StreamSlot` row whose (holder, number)
is unique, so two processes never take the same place and the cap is exact. `take` answers
None when every place is taken (the views answer 429); the place is given back when the
stream ends, however it ends (its last event, the client going away), by the wrapper around
the stream, whose `close` Django calls once the response is over. A place is renewed while
its stream is open (at most every RENEW_SECONDS, as events and keepalives go), and one not
renewed for TTL expires: a web process that died holds its places 90 seconds at most.

Costs: a few small queries per stream opened and closed, one UPDATE per open stream every
half minute; nothing per event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from workflows import sql
from workflows.models import ApiToken, StreamSlot

TTL = timedelta(seconds=90)
# Open streams send something at least every KEEPALIVE_SECONDS (15 s): a place is renewed
# well before it would expire.
RENEW_SECONDS = 30.0


@dataclass
class Slot:
    """A place held by one stream; `id` None when there is no cap (nothing is held)."""

    id: int | None
    renewed: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return self.id is not None and time.monotonic() - self.renewed >= RENEW_SECONDS


def user_holder(user_id: int) -> str:
    return f"user:{user_id}"


def token_holder(token: ApiToken) -> str:
    return f"token:{token.pk}"


def take(holder: str) -> Slot | None:
    """A place for one more stream of `holder`, or None when it holds STREAMS_PER_USER."""
    cap = settings.STREAMS_PER_USER
    if not cap:
        return Slot(None)
    try:
        for _ in range(3):
            now = timezone.now()
            StreamSlot.objects.filter(holder=holder, expires_at__lte=now).delete()
            taken = set(StreamSlot.objects.filter(holder=holder).values_list("number", flat=True))
            free = next((n for n in range(cap) if n not in taken), None)
            if free is None or len(taken) >= cap:
                return None
            try:
                with transaction.atomic():
                    slot = StreamSlot.objects.create(
                        holder=holder, number=free, expires_at=now + TTL
                    )
            except IntegrityError:
                continue  # another process took this place meanwhile: look again
            return Slot(slot.id)
        return None
    finally:
        sql.connection_release()


def _renew(slot: Slot) -> None:
    if slot.id is None:
        return
    try:
        StreamSlot.objects.filter(id=slot.id).update(expires_at=timezone.now() + TTL)
        slot.renewed = time.monotonic()
    finally:
        sql.connection_release()


def give_back(slot: Slot) -> None:
    if slot.id is None:
        return
    try:
        StreamSlot.objects.filter(id=slot.id).delete()
    finally:
        sql.connection_release()


class HoldingAsync:
    """An async stream's events, holding its slot: renewed as they go, given back by `close`,
    which Django calls once the response is over however it ended (its last event, the client
    going away, or going away before the first event)."""

    def __init__(self, slot: Slot, events: AsyncIterator[str]) -> None:
        self.slot = slot
        self.events = events
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[str]:
        async for chunk in self.events:
            if self.slot.due():
                await sync_to_async(_renew)(self.slot)
            yield chunk

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            give_back(self.slot)


class HoldingSync:
    """The same for a WSGI server's stream (whose server calls `close`)."""

    def __init__(self, slot: Slot, events: Iterator[str]) -> None:
        self.slot = slot
        self.events = events
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        for chunk in self.events:
            if self.slot.due():
                _renew(self.slot)
            yield chunk

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close = getattr(self.events, "close", None)
            if close is not None:
                close()
            give_back(self.slot)
