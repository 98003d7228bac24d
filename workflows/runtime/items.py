"""A `map` step's items over a prompt, run inside the worker that holds the
run, up to `concurrency` at once on threads of their own.

Guarantees, as the engine's for a paid step (workflows/runtime/engine.py):

- **Each item is persisted as it finishes.** Before its call, an item's
  attempt is recorded on its `StepItem` row and its worst case held in the
  budget, in one transaction fenced by the run's lease; after it, its result,
  usage and cost, the same usage added to the map's `StepRun` and to the
  run's totals, and the budget settled: one transaction, fenced by the lease
  owner (so a call answered after a cancel is still recorded). A worker that
  lost its lease writes nothing more and starts no more items.
- **A finished item is never called again.** When the run is resumed (the
  worker died: the reaper re-sends it), the map starts again with the items
  that have no result yet; only a call whose answer arrived but could not be
  committed can be made twice.
- **The budget holds per item.** An item that does not fit next to the holds
  of calls in flight (usually the map's own items) waits on its thread for
  them to settle; one that cannot fit what is left of the month stops the map
  ("workspace budget exhausted"), with the finished items kept.
- **An item's answer is visible as it grows.** Its `on_partial` writes the
  text so far to its StepItem's `output` (fenced by the lease owner) at most
  every STREAM_PERSIST_SECONDS, as the engine does for a step; the final
  record replaces it. An item found `running` with such text when the map
  starts again (its worker died mid-stream) had a lost attempt: its usage is
  estimated from that text (`estimate_lost`) and added to the item's usage
  when it is recorded, on the map's step and the run's totals too, and settled.
  As for a step, the estimate rides on the item's next attempt: a map that
  stops before sending that item again (the budget, the run's time limit, an
  earlier failed item with `on_item_error: stop`) leaves it unrecorded.
- **Threads hold their own connections** and close them when they end; each
  item gives its connection back while its call waits on the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from config.lib.json_storable import storable
from workflows import sql
from workflows.billing import budget
from workflows.models import Run, StepItem, StepRun
from workflows.runtime.lease import (
    LeaseLost,
    fence,
    fence_reading_budget,
    lease_expiry,
    partial_writer,
)
from workflows.steps.base import StepBase
from workflows.steps.context import (
    ItemOutcome,
    ItemsDone,
    StepContext,
    StepFailed,
    StepResult,
    Usage,
)

log = logging.getLogger(__name__)

FINISHED = (StepItem.Status.SUCCEEDED, StepItem.Status.FAILED, StepItem.Status.SKIPPED)
# An item waiting for other calls' holds to settle looks again after this long, and longer
# each time, up to the cap.
_BUSY_FIRST_SECONDS = 0.1
_BUSY_MAX_SECONDS = 2.0


class _Stop(Exception):
    """The map starts no more items: `reason` says why ("" when another item already stopped it)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Runner:
    """The paid items of one map step of one claimed run (`PaidItems` of
    workflows/steps/context.py), built by the engine with the run's lease."""

    def __init__(self, run: Run, token: str, position: int, step: StepBase) -> None:
        self.run_id = run.id
        self.workspace_id = run.workspace_id
        self.deadline = run.deadline_at
        self.token = token
        self.position = position
        self.step = step
        self.key = step.key
        self._stop = threading.Event()
        # Items left `running` with part of an answer (a worker died mid-stream), by index.
        self._cut: dict[int, str] = {}
        self._estimate_lost: Callable[[Any, str], Usage] | None = None
        # What each item waiting for budget on its thread needs (see `_reserve`).
        self._needed: dict[int, int] = {}
        self._needed_lock = threading.Lock()

    def run(
        self,
        *,
        inputs: list[object],
        concurrency: int,
        stop_at_failure: bool,
        failed_status: str,
        prepare: Callable[[int, object], Any],
        execute: Callable[[int, Any, StepContext], StepResult],
        estimate_lost: Callable[[Any, str], Usage] | None = None,
    ) -> ItemsDone:
        """Run the items that have no result yet, at most `concurrency` at
        once; return every item's outcome in item order. `estimate_lost(call,
        received)` prices an attempt cut mid-stream by a crash."""
        self._estimate_lost = estimate_lost
        self._begin(inputs)
        outcomes = self._finished()
        todo = [index for index in range(len(inputs)) if index not in outcomes]
        if stop_at_failure and any(o.status == failed_status for o in outcomes.values()):
            todo = []
        pending = iter(todo)
        lock = threading.Lock()
        problems: list[BaseException] = []
        reasons: list[str] = []

        def work() -> None:
            try:
                while not self._stop.is_set():
                    with lock:
                        index = next(pending, None)
                    if index is None:
                        return
                    outcome = self._item(index, inputs[index], failed_status, prepare, execute)
                    with lock:
                        outcomes[index] = outcome
                    if outcome.status == failed_status and stop_at_failure:
                        self._stop.set()
            except _Stop as e:
                if e.reason:
                    reasons.append(e.reason)
                self._stop.set()
            except BaseException as e:  # LeaseLost, a database error: the run stops
                problems.append(e)
                self._stop.set()
            finally:
                connection.close()

        threads = [
            threading.Thread(target=work, name=f"stepwise-map-{self.run_id}-{n}", daemon=True)
            for n in range(min(concurrency, len(todo)))
        ]
        # This thread only waits for them now: its pooled connection goes back.
        sql.connection_release()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if problems:
            if isinstance(problems[0], LeaseLost):
                self._end_if_canceled()
            raise problems[0]
        return ItemsDone(
            outcomes=[
                outcomes.get(index)
                or ItemOutcome(
                    index=index,
                    status=StepItem.Status.PENDING,
                    output=None,
                    error="",
                    usage=Usage(),
                )
                for index in range(len(inputs))
            ],
            stopped=reasons[0] if reasons else "",
        )

    def _begin(self, inputs: list[object]) -> None:
        """The map's StepRun (running, with its item count) and a pending row
        per item: created once, kept as they are when the run resumes."""
        now = timezone.now()
        with transaction.atomic():
            fence(self.run_id, self.token, running=True)
            values = {
                "position": self.position,
                "type": self.step.type,
                "status": StepRun.Status.RUNNING,
                "state": {"total": len(inputs)},
                "error": "",
            }
            if not sql.update(
                StepRun, where={"run_id": self.run_id, "key": self.key}, values=values
            ):
                StepRun.objects.create(
                    run_id=self.run_id, key=self.key, started_at=now, attempts=1, **values
                )
            StepItem.objects.bulk_create(
                [
                    StepItem(run_id=self.run_id, step_key=self.key, index=index, input=value)
                    for index, value in enumerate(inputs)
                ],
                ignore_conflicts=True,
            )

    def _finished(self) -> dict[int, ItemOutcome]:
        """The items that have a result; on the way, those left running with
        part of an answer go to `_cut` (the same query)."""
        rows = (
            StepItem.objects.filter(
                run_id=self.run_id,
                step_key=self.key,
                status__in=(*FINISHED, StepItem.Status.RUNNING),
            )
            .values_list(
                "index",
                "status",
                "output",
                "error",
                "model",
                "tokens_in",
                "tokens_cached",
                "tokens_out",
                "cost_nanousd",
            )
            .iterator()
        )
        finished = []
        for row in rows:
            if row[1] != StepItem.Status.RUNNING:
                finished.append(row)
            elif isinstance(row[2], str):
                self._cut[row[0]] = row[2]
        return {
            index: ItemOutcome(
                index=index,
                status=status,
                output=output,
                error=error,
                usage=Usage(
                    model=model,
                    tokens_in=tokens_in,
                    tokens_cached=tokens_cached,
                    tokens_out=tokens_out,
                    cost_nanousd=cost,
                ),
            )
            for index, status, output, error, model, tokens_in, tokens_cached, tokens_out, cost in (
                finished
            )
        }

    def _item(
        self,
        index: int,
        value: object,
        failed_status: str,
        prepare: Callable[[int, object], Any],
        execute: Callable[[int, Any, StepContext], StepResult],
    ) -> ItemOutcome:
        started_at = timezone.now()
        if self.deadline is not None and started_at >= self.deadline:
            raise _Stop("The run reached its time limit; the finished items are kept.")
        try:
            call = prepare(index, value)
        except StepFailed as e:  # nothing was sent or paid
            return self._record(
                index, started_at, failed_status, None, e.messages, e.usage, e.message
            )
        lost = self._lost_attempt(index, call)
        where = {"run_id": self.run_id, "step_key": self.key, "index": index}
        with transaction.atomic():
            budget_nanousd = fence_reading_budget(self.run_id, self.token)
            sql.update(
                StepItem,
                where=where,
                values={
                    "status": StepItem.Status.RUNNING,
                    "started_at": started_at,
                    "messages": call.messages,
                    "output": None,  # each attempt's answer starts empty
                    "error": "",
                },
                add={"attempts": 1},
            )
            reservation = budget.hold(
                workspace_id=self.workspace_id,
                budget_nanousd=budget_nanousd,
                amount_nanousd=call.hold_nanousd,
                run_id=self.run_id,
            )
        if reservation is budget.FULL:
            reservation = self._reserve(index, call.hold_nanousd)
        assert not isinstance(reservation, budget.Full)

        def on_retry() -> None:
            with transaction.atomic():
                fence(self.run_id, self.token, running=True)
                sql.update(StepItem, where=where, values={"output": None}, add={"attempts": 1})

        context = StepContext(
            variables={},
            run_id=self.run_id,
            workspace_id=self.workspace_id,
            deadline=self.deadline,
            on_attempt=on_retry,
            on_partial=partial_writer(
                StepItem,
                {**where, "status": StepItem.Status.RUNNING},
                run_id=self.run_id,
                token=self.token,
                what=f"item {index} of step {self.key}",
            ),
        )
        sql.connection_release()  # while the call waits on the network
        try:
            result = execute(index, call, context)
        except StepFailed as e:
            return self._record(
                index,
                started_at,
                failed_status,
                None,
                e.messages,
                e.usage if lost is None else e.usage.plus(lost),
                e.message,
                reservation=reservation,
            )
        except BaseException:
            budget.settle(reservation, cost_nanousd=0, workspace_id=self.workspace_id)
            raise
        return self._record(
            index,
            started_at,
            StepItem.Status.SUCCEEDED,
            result.output,
            result.messages,
            result.usage if lost is None else result.usage.plus(lost),
            "",
            reservation=reservation,
        )

    def _lost_attempt(self, index: int, call: Any) -> Usage | None:
        """The estimated usage of the item's attempt whose worker died
        mid-stream (the text it had persisted), taken once."""
        received = self._cut.pop(index, None)
        if received is None or self._estimate_lost is None:
            return None
        log.info(
            "Run %s: item %s of step %s was cut mid-stream; usage estimated",
            self.run_id,
            index,
            self.key,
        )
        return self._estimate_lost(call, received)

    def _reserve(self, index: int, amount: int) -> budget.Reservation:
        """The budget's slow path for one item: hold its worst case with the
        ledger locked; wait while only other calls' holds are in the way;
        stop the map when it can never fit this month.

        While it waits, the run's `budget_needed_nanousd` says how much its
        items wait for, all of them (the run is not parked: its other items go
        on), so an eval running it lends it room from the eval's hold
        (workflows/evals/execution.py)."""
        pause = _BUSY_FIRST_SECONDS
        waiting = False
        try:
            while True:
                ledger_id = budget.ledger_swept(self.workspace_id)
                with transaction.atomic():
                    fence(self.run_id, self.token, running=True)
                    outcome = budget.decide(
                        workspace_id=self.workspace_id,
                        ledger_id=ledger_id,
                        amount_nanousd=amount,
                        run_id=self.run_id,
                    )
                if isinstance(outcome, budget.Reservation):
                    return outcome
                if isinstance(outcome, budget.BudgetExhausted):
                    self._not_sent(index)
                    raise _Stop(outcome.message)
                if self._stop.is_set():
                    self._not_sent(index)
                    raise _Stop()
                if not waiting:
                    waiting = True
                    self._budget_needed(index, amount)
                sql.connection_release()
                time.sleep(pause)
                pause = min(pause * 2, _BUSY_MAX_SECONDS)
        finally:
            if waiting:
                self._budget_needed(index, None)

    def _budget_needed(self, index: int, amount: int | None) -> None:
        # The sum, written under the lock: items start and stop waiting on their own threads,
        # and the last to write must not hide what another still waits for.
        with self._needed_lock:
            if amount is None:
                self._needed.pop(index, None)
            else:
                self._needed[index] = amount
            Run.objects.filter(
                id=self.run_id, lease_owner=self.token, status=Run.Status.RUNNING
            ).update(budget_needed_nanousd=sum(self._needed.values()) or None)

    def _not_sent(self, index: int) -> None:
        """An item that was never sent goes back to pending; its attempt does not count."""
        with transaction.atomic():
            fence(self.run_id, self.token, running=True)
            sql.update(
                StepItem,
                where={"run_id": self.run_id, "step_key": self.key, "index": index},
                values={"status": StepItem.Status.PENDING, "started_at": None},
                add={"attempts": -1},
            )

    def _record(
        self,
        index: int,
        started_at: datetime,
        status: str,
        output: object,
        messages: list[dict[str, str]] | None,
        usage: Usage,
        error: str,
        *,
        reservation: budget.Reservation | None = None,
    ) -> ItemOutcome:
        """Commit an item's outcome, add its usage to the map's step and the
        run's totals and settle its cost: one transaction. Its output and error
        as stored (`storable`) are what the map goes on with."""
        finished_at = timezone.now()
        output, error = storable(output), storable(error)
        add = {
            "tokens_in": usage.tokens_in,
            "tokens_cached": usage.tokens_cached,
            "tokens_out": usage.tokens_out,
            "cost_nanousd": usage.cost_nanousd,
        }
        try:
            with transaction.atomic():
                # Fenced by the owner only, not the status: a call answered
                # after a cancel is still recorded.
                if (
                    sql.update(
                        Run,
                        where={"id": self.run_id, "lease_owner": self.token},
                        values={"lease_expires_at": lease_expiry()},
                        add=add,
                    )
                    != 1
                ):
                    raise LeaseLost
                sql.update(
                    StepItem,
                    where={"run_id": self.run_id, "step_key": self.key, "index": index},
                    values={
                        "status": status,
                        "output": output,
                        "messages": storable(messages),
                        "model": usage.model,
                        "latency_ms": int((finished_at - started_at).total_seconds() * 1000),
                        "error": error,
                        "started_at": started_at,
                        "finished_at": finished_at,
                        **add,
                    },
                )
                sql.update(StepRun, where={"run_id": self.run_id, "key": self.key}, add=add)
                budget.settle_in_transaction(
                    reservation, workspace_id=self.workspace_id, cost_nanousd=usage.cost_nanousd
                )
        except BaseException:
            # Not committed, but the money was spent: settle it on its own.
            if reservation is not None or usage.cost_nanousd:
                budget.settle(
                    reservation, cost_nanousd=usage.cost_nanousd, workspace_id=self.workspace_id
                )
            raise
        return ItemOutcome(index=index, status=status, output=output, error=error, usage=usage)

    def _end_if_canceled(self) -> None:
        """A map stopped by a cancel (the run still leased to this worker) is
        not left "running": the items it finished are kept."""
        try:
            with transaction.atomic():
                if Run.objects.filter(
                    id=self.run_id, lease_owner=self.token, status=Run.Status.CANCELED
                ).exists():
                    sql.update(
                        StepRun,
                        where={
                            "run_id": self.run_id,
                            "key": self.key,
                            "status": StepRun.Status.RUNNING,
                        },
                        values={
                            "status": StepRun.Status.FAILED,
                            "error": "Canceled.",
                            "finished_at": timezone.now(),
                        },
                    )
        except Exception:
            log.warning("Run %s: could not end its canceled map step", self.run_id, exc_info=True)
