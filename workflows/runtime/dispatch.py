"""Fair sharing of the workers between workspaces.

A workspace has at most RUN_MAX_IN_FLIGHT_PER_WORKSPACE runs sent to the
broker (queued there or executing) at a time. Its other runs wait in the
database (`enqueued_at` is None) and are sent as its runs finish. So a
workspace that floods a thousand runs occupies at most its share of the
queue, and another workspace's run is picked up as soon as a thread frees.

The limit is soft: two requests that start runs at the same moment may both
see the last free slot. That costs a slot, never a run. A run that waits is
never lost: the reaper also sends waiting runs of workspaces with free slots.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from workflows import broker, sql
from workflows.models import Run


def in_flight(workspace_id: int) -> int:
    """Runs of the workspace sent to the broker: queued there or executing."""
    return sql.run_slots(workspace_id=workspace_id)[0]


def may_send_now(workspace_id: int) -> bool:
    """Whether a new run of the workspace goes to the workers at once: it has
    a free slot and none of its runs waits for one. Runs are sent in the order
    they started, and a slot a finishing run frees is its oldest waiting run's
    (hand_over_slot), not a newcomer's that happened to count in between."""
    sent, waiting = sql.run_slots(workspace_id=workspace_id)
    return waiting == 0 and sent < settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE


def dispatch_waiting(workspace_id: int) -> list[int]:
    """Send the oldest waiting runs of the workspace, as many as it has free slots."""
    free = settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE - in_flight(workspace_id)
    if free <= 0:
        return []
    waiting = (
        Run.objects.filter(
            workspace_id=workspace_id, status=Run.Status.QUEUED, enqueued_at__isnull=True
        )
        .order_by("id")
        .values_list("id", flat=True)[:free]
    )
    sent = []
    for run_id in waiting:
        # Conditional, so two dispatchers never send the same run twice.
        if (
            Run.objects.filter(id=run_id, enqueued_at__isnull=True).update(
                enqueued_at=timezone.now()
            )
            == 1
        ):
            broker.run_send(run_id)
            sent.append(run_id)
    return sent


def hand_over_slot(workspace_id: int) -> int | None:
    """A run of the workspace finished: send its oldest waiting run in the slot
    it freed. One statement picks and marks the run, so two finishing runs
    never send the same one; returns its id, or None if none was waiting.

    It does not count the runs in flight (that COUNT was most of the cost of
    finishing a run): a workspace over its soft limit (two run_starts that
    took the last slot at once, a lowered setting) stays over it, by that
    many runs, until its waiting runs are all sent."""
    run_id = sql.run_take_oldest_waiting(workspace_id=workspace_id, now=timezone.now())
    if run_id is None:
        return None
    broker.run_send(run_id)
    return run_id


def dispatch_all_waiting() -> list[int]:
    """For the reaper: every workspace with waiting runs gets its free slots filled."""
    workspaces = (
        Run.objects.filter(status=Run.Status.QUEUED, enqueued_at__isnull=True)
        .values("workspace_id")
        .annotate(n=Count("id"))
        .values_list("workspace_id", flat=True)
    )
    sent: list[int] = []
    for workspace_id in workspaces:
        sent += dispatch_waiting(workspace_id)
    return sent
