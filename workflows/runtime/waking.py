"""Waking parked runs: a conditional UPDATE from `waiting` back to `queued`,
sent to the workers once committed.

A run parks (workflows/runtime/engine.py, "Waiting") in one statement that
also requires `wake_pending` to be false; every wake-up first sets
`wake_pending`, then wakes the run if it is parked. So a wake-up that comes
while the run is still deciding to park (a child finishing between the
parent's look at its children and its park) is never lost: either the run
is parked and is woken, or its park is refused and it looks again. A wake-up
of a run that is not waiting for that does nothing; a lost one (a crash
between the two, a lost broker message) is recovered by the reaper
(`wake_overdue`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from workflows import broker, sql
from workflows.models import Run, StepItem

log = logging.getLogger(__name__)


def wake(run_id: int, *, waiting_for: Sequence[str]) -> bool:
    """Wake run `run_id` if it is parked waiting for one of `waiting_for`;
    send it on commit. Returns whether this call woke it."""
    sql.update(Run, where={"id": run_id}, values={"wake_pending": True})
    row = (
        Run.objects.filter(id=run_id, status=Run.Status.WAITING, waiting_for__in=waiting_for)
        .values_list("waiting_since", "deadline_at")
        .first()
    )
    if row is None:
        return False
    since, deadline = row
    now = timezone.now()
    waited = now - since if since else None
    values: dict[str, object] = {
        "status": Run.Status.QUEUED,
        "waiting_for": Run.WaitingFor.NOTHING,
        "waiting_since": None,
        "wake_at": None,
        "enqueued_at": now,
    }
    if deadline is not None and waited is not None:
        values["deadline_at"] = deadline + waited  # waiting is not running time
    woken = (
        sql.update(
            Run,
            where={"id": run_id, "status": Run.Status.WAITING, "waiting_since": since},
            values=values,
            add={"waited_ms": int(waited.total_seconds() * 1000) if waited else 0},
        )
        == 1
    )
    if woken:
        # A woken run has work behind it: ahead of the backlog of new runs.
        transaction.on_commit(lambda: broker.run_send(run_id, recovering=True))
    return woken


def child_finished(child_id: int, parent_id: int) -> None:
    """Inside the transaction that finished (or canceled) run `child_id`: add
    its tokens and cost to its parent's totals and wake the parent."""
    row = (
        Run.objects.filter(id=child_id)
        .values_list(
            "tokens_in",
            "tokens_cached",
            "tokens_out",
            "cost_nanousd",
            "status",
            "output",
            "error",
            "started_at",
            "finished_at",
        )
        .first()
    )
    if row is not None:
        tokens_in, tokens_cached, tokens_out, cost, status, output, error, started, finished = row
        # The item of a map it ran for, if any, says how it went.
        succeeded = status == Run.Status.SUCCEEDED
        sql.update(
            StepItem,
            where={"child_run_id": child_id},
            values={
                "status": StepItem.Status.SUCCEEDED if succeeded else StepItem.Status.FAILED,
                "output": output if succeeded else None,
                "error": "" if succeeded else (error or status),
                "tokens_in": tokens_in,
                "tokens_cached": tokens_cached,
                "tokens_out": tokens_out,
                "cost_nanousd": cost,
                "finished_at": finished,
                "latency_ms": int((finished - started).total_seconds() * 1000)
                if started and finished
                else None,
            },
        )
        sql.update(
            Run,
            where={"id": parent_id},
            add={
                "tokens_in": tokens_in,
                "tokens_cached": tokens_cached,
                "tokens_out": tokens_out,
                "cost_nanousd": cost,
            },
        )
    wake(parent_id, waiting_for=[Run.WaitingFor.CHILDREN])


def wake_due() -> list[int]:
    """For the reaper: wake runs whose time has come (a `wait` step's time,
    an approval's timeout), and parents that missed a child's wake-up."""
    now = timezone.now()
    due = list(
        Run.objects.filter(status=Run.Status.WAITING, wake_at__lte=now).values_list(
            "id", flat=True
        )[:1000]
    )
    missed = list(
        Run.objects.filter(
            status=Run.Status.WAITING,
            waiting_for=Run.WaitingFor.CHILDREN,
            children__finished_at__gte=F("waiting_since"),
        )
        .values_list("id", flat=True)
        .distinct()[:1000]
    )
    woken: list[int] = []
    for run_id in due:
        with transaction.atomic():
            if wake(run_id, waiting_for=[Run.WaitingFor.TIME, Run.WaitingFor.DECISION]):
                woken.append(run_id)
    for run_id in missed:
        with transaction.atomic():
            if wake(run_id, waiting_for=[Run.WaitingFor.CHILDREN]):
                woken.append(run_id)
    return woken
