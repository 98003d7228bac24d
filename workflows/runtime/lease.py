"""A claimed run's lease: the fence every write about the run goes through
(workflows/runtime/engine.py, "Fenced writes"), shared by the engine and the
map items it runs on threads (workflows/runtime/items.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from workflows import sql
from workflows.models import Run


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
