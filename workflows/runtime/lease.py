"""A claimed run's lease: the fence every write about the run goes through
(workflows/runtime/engine.py, "Fenced writes"), shared by the engine and the
map items it runs on threads (workflows/runtime/items.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, models
from django.utils import timezone

from config.lib.json_storable import storable
from workflows import sql
from workflows.models import Run

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns the run now (or it was canceled): stop quietly."""


def lease_expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS)


def fence(run_id: int, token: str, *, running: bool) -> None:
    """Extend the lease, or raise LeaseLost if this worker no longer holds it."""
    runs = Run.objects.filter(id=run_id, lease_owner=token)
    if running:
        runs = runs.filter(status=Run.Status.RUNNING)
    if runs.update(lease_expires_at=lease_expiry()) != 1:
        raise LeaseLost


def fence_reading_budget(run_id: int, token: str) -> int | None:
    """`fence` for a running run, and the workspace's budget, in one statement."""
    row = sql.run_fence_reading_budget(run_id=run_id, token=token, lease_expires_at=lease_expiry())
    if row is None:
        raise LeaseLost
    return row[0]


def partial_writer(
    model: type[models.Model], where: dict[str, object], *, run_id: int, token: str, what: str
) -> Callable[[str], None]:
    """`on_partial` for a streamed answer (a paid step's StepRun, a map item's
    StepItem): the text so far written to the row's `output` at most every
    STREAM_PERSIST_SECONDS, one UPDATE fenced by the lease owner, NUL made
    storable as in every record of a step (`storable`). Best effort:
    a write that fails or finds the lease gone is skipped and the call goes on
    (it is paid either way; its result's write is the fence). Nothing is built
    or read before the first piece arrives."""
    last = 0.0

    def write(text: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < settings.STREAM_PERSIST_SECONDS:
            return
        last = now
        try:
            sql.output_write_if_leased(
                model, where=where, run_id=run_id, token=token, output=storable(text)
            )
            sql.connection_release()
        except DatabaseError:
            log.warning("Run %s: could not write %s's partial answer", run_id, what)
            close_old_connections()

    return write
