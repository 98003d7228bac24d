"""Executing runs on Celery workers: claim, walk the steps, persist each one, finish.

Guarantees, and how they are kept:

- **One executor at a time.** A worker claims a run with a conditional UPDATE
  that sets a lease (a random owner token and an expiry). A second copy of the
  task (a redelivery, a duplicate enqueue) finds the lease held and returns.
- **Fenced writes.** Every write about a claimed run is conditional on the
  lease owner, so a worker that stalled past its lease, and was replaced,
  cannot overwrite the newer worker's progress.
- **A finished step is never called again.** Each StepRun is committed with
  its output, usage and cost before the next step starts; when a run is
  resumed (after a crash, or by "resume from the failed step") the stored
  outputs are reused. Only a call whose answer arrived but could not be
  committed (the worker died in between) can be made twice.
- **Crashes heal.** One heartbeat thread per worker process renews the leases
  of the runs it executes. A worker killed with `kill -9` stops renewing; the
  reaper (Celery beat) re-enqueues runs whose lease expired, and runs queued
  for too long (a lost broker message); they resume at their first unfinished
  step.
- **What a step produced is stored as it is read back.** Its output,
  messages, error and state, a streamed answer so far, the run's output and
  error go through `storable` (config/lib/json_storable.py: NUL, which
  PostgreSQL refuses, becomes U+FFFD) where they are recorded, and the run
  goes on with the recorded value: SQLite and PostgreSQL run it alike.
- **Every token spent is recorded**, also when the run was canceled while the
  call was in flight: the result write is fenced by the owner, not the status.
- **A streamed answer is visible as it grows.** A paid step's `on_partial`
  writes the text so far to its StepRun's `output` (fenced by the lease
  owner) at most every STREAM_PERSIST_SECONDS; the final record replaces it.
  When the worker dies mid-stream, the run resumed finds the step `running`
  with that text: the lost attempt's usage is estimated from it (the kind's
  `estimate_lost`) and added to the step's usage when it is recorded. A map's
  items stream and recover the same way, each on its StepItem
  (workflows/runtime/items.py).
- **Waiting holds nothing.** A run that must wait (for budget, see
  workflows/billing/budget.py; for child runs, a decision or a time, see
  "Waiting step kinds" below) is parked: status `waiting` with `waiting_for`
  and `waiting_since` recorded, its lease released, its step marked
  `waiting`, in the transaction that decided it; its worker thread returns
  and no broker message stays behind. Waking it is a conditional UPDATE back
  to `queued` that enqueues it on commit; it is then claimed like any queued
  run and resumes at that step. A duplicate wake-up is harmless (the UPDATE
  matches only a waiting run, the claim only an unleased one), a lost one is
  recovered by the reaper. Time spent waiting is added to `waited_ms` and to
  the deadline on waking: it is not running time. Cancel works on a parked
  run, and on its children.

A failed step follows its error policy: a free step that may pass is tried
again up to `retries` times here (an llm step retries inside its kind, then
its fallback model); then `on_error` fails the run, continues with the
step's fallback as its output, or goes to an error branch with
`{{ step.error }}` set. The path taken is committed on the step (its output
and `state.on_error`), so a run resumed after a crash takes it again without
calling the step.

Waiting step kinds (`WAITS = True`: `workflow`, `map` over a workflow,
`approval`, `wait`) have `begin(step, context)` and `resume(step, state,
context)`; each returns a StepResult (the step is done) or a Wait (park the
run: what for, the state to keep on the step, when beat should wake it, the
child runs to start). The park, the step's state and the children are one
transaction, fenced by the lease and refused if a wake-up arrived since the
claim (`wake_pending`, workflows/runtime/waking.py), in which case the step
looks again at once. A child run that finishes adds its cost to its parent's
totals and wakes it; beat wakes runs whose `wake_at` has come.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import ModuleType

from django.conf import settings
from django.db import DatabaseError, DataError, close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.lib.json_storable import storable
from workflows import broker, sql
from workflows.billing import budget
from workflows.builder.definition import Definition
from workflows.models import Run, StepRun
from workflows.rendering import render
from workflows.runtime import children, dispatch, flow, items, waking
from workflows.runtime.lease import LeaseLost, partial_writer
from workflows.runtime.lease import fence as _fence
from workflows.runtime.lease import fence_reading_budget as _fence_reading_budget
from workflows.runtime.lease import lease_expiry as _lease_expiry
from workflows.runtime.parsing import parsed
from workflows.steps import STEP_TYPES
from workflows.steps.base import ON_ERROR_CONTINUE, ON_ERROR_FAIL, StepBase
from workflows.steps.context import (
    Child,
    StepContext,
    StepFailed,
    StepResult,
    Usage,
    Wait,
    WaitContext,
)

log = logging.getLogger(__name__)


class RunParked(Exception):
    """The run was parked (status `waiting`) and its lease released: stop quietly."""


class _Heartbeat:
    """Renews, in one UPDATE per beat, the leases of every run this process executes."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, token: str, run_id: int) -> None:
        with self._lock:
            self._held[token] = run_id
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="stepwise-heartbeat", daemon=True
                )
                self._thread.start()

    def release(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)

    def _loop(self) -> None:
        while True:
            time.sleep(max(1.0, settings.RUN_LEASE_SECONDS / 3))
            with self._lock:
                tokens = list(self._held)
            if not tokens:
                continue
            try:
                Run.objects.filter(lease_owner__in=tokens, status=Run.Status.RUNNING).update(
                    lease_expires_at=_lease_expiry()
                )
                sql.connection_release()
            except DatabaseError:
                log.warning("Heartbeat could not renew leases; retrying", exc_info=True)
                close_old_connections()


heartbeat = _Heartbeat()


def claim(run_id: int) -> tuple[Run, str, datetime] | None:
    """Take the lease of a queued run, or of a running one whose worker died,
    and load it: one statement.

    Returns the run, the lease token and the claim's time (a run whose
    `started_at` equals it was claimed for the first time: it has no steps yet)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = sql.run_claim(
        run_id=run_id,
        token=token,
        now=now,
        lease_expires_at=now + timedelta(seconds=settings.RUN_LEASE_SECONDS),
        deadline_at=now + timedelta(seconds=settings.RUN_TIME_LIMIT_SECONDS),
    )
    return (claimed, token, now) if claimed else None


def run_execute(run_id: int) -> None:
    """Execute run `run_id` to the end, if no other worker is executing it."""
    claimed = claim(run_id)
    if claimed is None:
        return
    run, token, claimed_at = claimed
    heartbeat.hold(token, run_id)
    try:
        _execute(run, token, first_claim_at=claimed_at)
    except LeaseLost:
        log.info("Run %s: lease lost or run canceled; stopping", run_id)
    except RunParked:
        log.info("Run %s: parked", run_id)
    except DataError:
        # A value the database refuses (what `storable` does not foresee): writing it again
        # would fail again, and the reaper's re-send would call a paid step again each time.
        log.exception("Run %s: a value could not be stored", run_id)
        _finish(
            run,
            token,
            status=Run.Status.FAILED,
            error="Internal error in Stepwise: a step's result could not be stored; the run "
            "was stopped.",
        )
    except DatabaseError:
        # The database blinked. Leave the run to the reaper: it resumes at the
        # first unfinished step once the lease expires.
        log.warning("Run %s: database error; the reaper will resume it", run_id, exc_info=True)
    except Exception:
        log.exception("Run %s: internal error", run_id)
        _finish(
            run,
            token,
            status=Run.Status.FAILED,
            error="Internal error in Stepwise; the run was stopped.",
        )
    finally:
        heartbeat.release(token)


def _execute(run: Run, token: str, *, first_claim_at: datetime) -> None:
    # Many runs share a definition: parse each distinct one once per process.
    definition = parsed(run.definition)
    steps = definition.steps
    fresh = run.started_at == first_claim_at and run.resumed_from_id is None
    stored = {} if fresh else {step_run.key: step_run for step_run in run.steps.all()}
    variables: dict[str, object] = {**run.inputs, "payload": run.payload}
    last_output: object = None
    index = 0
    while index < len(steps):
        if run.deadline_at and timezone.now() >= run.deadline_at:
            _finish(run, token, status=Run.Status.FAILED, error=_time_limit_message())
            return
        step = steps[index]
        step_run = stored.get(step.key)
        handled = _handled_failure(step_run)
        target: str | None = None
        if step_run is not None and step_run.status == StepRun.Status.SUCCEEDED:
            output = step_run.output
        elif handled is not None:
            # It failed before a crash, and its error policy had been applied.
            output, target = handled
        else:
            try:
                output = _execute_step(run, token, index, step, variables, step_run)
            except StepFailed as e:
                if step.on_error == ON_ERROR_FAIL:
                    _finish(
                        run,
                        token,
                        status=Run.Status.FAILED,
                        error=f"Step “{step.key}” failed: {e.message}",
                    )
                    return
                output, target = _apply_error_policy(run, token, step, e, variables)
        variables[step.key] = output
        last_output = output
        if target is None:
            target = flow.next_key(definition, index, output)
        skipped = flow.skipped_between(definition, index, target)
        if skipped:
            _record_skipped(run, token, definition, skipped, stored)
        if target == "end":
            break
        index = flow.index_of(definition, target)

    result = render(definition.output, variables) if definition.output is not None else last_output
    _finish(run, token, status=Run.Status.SUCCEEDED, output=result)


def _apply_error_policy(
    run: Run, token: str, step: StepBase, failure: StepFailed, variables: dict[str, object]
) -> tuple[object, str | None]:
    """The failed step's `on_error`: go on with its fallback as its output
    ("continue"), or to a later step with `{{ key.error }}` set (an error
    branch). Recorded on the step (its output and `state.on_error`), so that a
    run resumed after a crash takes the same path without calling it again.
    Returns the step's output and where to go (None: the usual way on)."""
    if step.on_error == ON_ERROR_CONTINUE:
        output = storable(render_fallback(step.fallback, variables))
        target = None
        state: dict[str, object] = {"on_error": ON_ERROR_CONTINUE}
    else:
        output = storable({"error": failure.as_error()})
        target = step.on_error
        state = {"on_error": "goto", "to": target}
    with transaction.atomic():
        _fence(run.id, token, running=True)
        sql.update(
            StepRun,
            where={"run_id": run.id, "key": step.key},
            values={"output": output, "state": state},
        )
    return output, target


def render_fallback(fallback: object, variables: Mapping[str, object]) -> object:
    """A fallback: a template is rendered, JSON is used as it is."""
    return render(fallback, variables) if isinstance(fallback, str) else fallback


def _handled_failure(step_run: StepRun | None) -> tuple[object, str | None] | None:
    """A failed step whose error policy was applied before: its output and where it went."""
    if step_run is None or step_run.status != StepRun.Status.FAILED:
        return None
    state = step_run.state if isinstance(step_run.state, dict) else {}
    if state.get("on_error") == ON_ERROR_CONTINUE:
        return step_run.output, None
    if state.get("on_error") == "goto" and isinstance(state.get("to"), str):
        return step_run.output, str(state["to"])
    return None


def _retry_delay(
    step: StepBase, failure: StepFailed, tries: int, deadline: datetime | None
) -> float | None:
    """How long to wait before trying a failed free step again, or None: not again.

    Only a failure that may pass (429, 5xx, a timeout) is tried again, at most
    `retries` times, with exponential backoff and full jitter (a server's
    retry-after wins when longer), and only if the run has the time."""
    if not failure.retryable or tries > (step.retries or 0):
        return None
    cap = settings.LLM_RETRY_MAX_SECONDS
    delay = random.uniform(0, min(cap, settings.LLM_RETRY_BASE_SECONDS * 2 ** (tries - 1)))
    if failure.retry_after is not None:
        delay = max(delay, failure.retry_after)
    if deadline is not None and timezone.now() + timedelta(seconds=delay) >= deadline:
        return None
    return delay


def _execute_step(
    run: Run,
    token: str,
    index: int,
    step: StepBase,
    variables: dict[str, object],
    existing: StepRun | None,
) -> object:
    module = STEP_TYPES[step.type]
    started_at = timezone.now()
    if getattr(module, "PAID", False):
        return _execute_paid_step(run, token, index, step, module, variables, existing, started_at)
    if getattr(module, "WAITS", False):
        return _execute_waiting_step(run, token, index, step, module, variables, existing)
    messages: list[dict[str, str]] | None = None
    tries = 0
    while True:
        tries += 1
        try:
            if getattr(module, "NETWORK", False):
                # Free, but it waits on the network (the http kind): it reads what
                # it needs, gives its connection back before the request, and its
                # messages record the request.
                context = StepContext(
                    variables=variables,
                    run_id=run.id,
                    workspace_id=run.workspace_id,
                    deadline=run.deadline_at,
                )
                result: StepResult = module.execute(step, context)
                output, messages = result.output, result.messages
            else:
                # Other free steps are pure functions of the variables.
                output = module.execute(step, variables)
            break
        except StepFailed as e:
            delay = _retry_delay(step, e, tries, run.deadline_at)
            if delay is not None:
                _fence(run.id, token, running=True)  # still ours, and not canceled
                time.sleep(delay)
                continue
            if tries > 1:
                e.message = f"{e.message} (after {tries} attempts)"
            _record_step(
                run,
                token,
                index,
                step,
                started_at,
                status=StepRun.Status.FAILED,
                output=None,
                messages=e.messages,
                usage=e.usage,
                error=e.message,
                paid=False,
                attempts=tries,
                has_row=existing is not None,
            )
            raise
    return _record_step(
        run,
        token,
        index,
        step,
        started_at,
        status=StepRun.Status.SUCCEEDED,
        output=output,
        messages=messages,
        usage=Usage(),
        error="",
        paid=False,
        attempts=tries,
        has_row=existing is not None,
    )


def _execute_waiting_step(
    run: Run,
    token: str,
    index: int,
    step: StepBase,
    module: ModuleType,
    variables: dict[str, object],
    existing: StepRun | None,
) -> object:
    """A step that may wait (see "Waiting step kinds" above): begin it, or
    resume it if it was parked; record its result, or park the run."""
    key = step.key
    while True:
        waiting = existing is not None and existing.status == StepRun.Status.WAITING
        # A map whose worker died while its items ran resumes with its start time.
        begun = existing is not None and existing.status in (
            StepRun.Status.WAITING,
            StepRun.Status.RUNNING,
        )
        started_at = existing.started_at if begun and existing and existing.started_at else None
        context = WaitContext(
            variables=variables,
            run_id=run.id,
            workspace_id=run.workspace_id,
            now=timezone.now(),
            children=_children_of(run.id, key) if waiting else [],
            items=items.Runner(run, token, index, step),
        )
        try:
            if waiting and existing is not None:
                outcome = module.resume(step, existing.state or {}, context)
            else:
                outcome = module.begin(step, context)
        except StepFailed as e:
            _record_step(
                run,
                token,
                index,
                step,
                started_at or context.now,
                status=StepRun.Status.FAILED,
                output=None,
                messages=e.messages,
                usage=e.usage,
                error=e.message,
                paid=False,
                # A map's items may have written the row (existing or not).
                has_row=True,
                counted=e.counted,
            )
            raise
        if isinstance(outcome, StepResult):
            return _record_step(
                run,
                token,
                index,
                step,
                started_at or context.now,
                status=StepRun.Status.SUCCEEDED,
                output=outcome.output,
                messages=outcome.messages,
                usage=outcome.usage,
                error="",
                paid=False,
                has_row=True,
                state=existing.state if waiting and existing is not None else None,
                counted=outcome.counted,
            )
        try:
            if _park_waiting(
                run, token, index, step, module, outcome, existing, started_at or context.now
            ):
                raise RunParked
        except StepFailed as e:
            # A child could not be started (the called workflow is gone, its inputs do not fit).
            _record_step(
                run,
                token,
                index,
                step,
                started_at or context.now,
                status=StepRun.Status.FAILED,
                output=None,
                messages=None,
                usage=Usage(),
                error=e.message,
                paid=False,
                has_row=existing is not None,
            )
            raise
        # A wake-up arrived while it decided to wait: look again.
        existing = StepRun.objects.filter(run=run, key=key).first()


def _park_waiting(
    run: Run,
    token: str,
    index: int,
    step: StepBase,
    module: ModuleType,
    wait: Wait,
    existing: StepRun | None,
    started_at: datetime,
) -> bool:
    """Park the run at this step, keeping `wait.state` on it and starting
    `wait.children`: one transaction. Returns False, parking nothing, if a
    wake-up arrived since the claim (it is consumed: the caller looks again).
    Once committed, a kind with `parked(step, state, run_id)` hears of it
    (an approval sends its emails then)."""
    with transaction.atomic():
        now = timezone.now()
        has_waiting = sql.run_park(
            run_id=run.id,
            token=token,
            values={
                "status": Run.Status.WAITING,
                "waiting_for": wait.waiting_for,
                "waiting_since": now,
                "wake_at": wait.wake_at,
                "lease_owner": "",
                "lease_expires_at": None,
            },
            unless_woken=True,
        )
        if has_waiting is None:
            if not sql.update(
                Run,
                where={"id": run.id, "lease_owner": token, "status": Run.Status.RUNNING},
                values={"wake_pending": False, "lease_expires_at": _lease_expiry()},
            ):
                raise LeaseLost
            return False
        state = dict(wait.state)
        if wait.children:
            started = children.start(run, step.key, wait.children)
            state["children"] = [*_as_ids(state.get("children")), *started]
        values = {
            "position": index,
            "type": step.type,
            "status": StepRun.Status.WAITING,
            "state": state,
            "started_at": started_at,
            "error": "",
        }
        if existing is None:
            StepRun.objects.create(run=run, key=step.key, attempts=1, **values)
        else:
            sql.update(StepRun, where={"id": existing.id}, values=values)
        if has_waiting:
            workspace_id = run.workspace_id
            transaction.on_commit(lambda: _on_finished(run.id, workspace_id, False, True))
        parked = getattr(module, "parked", None)
        first_park = existing is None or existing.status != StepRun.Status.WAITING
        if parked is not None and first_park:
            transaction.on_commit(lambda: _tell_parked(parked, step, state, run.id))
    return True


def _tell_parked(parked: object, step: StepBase, state: dict[str, object], run_id: int) -> None:
    try:
        parked(step, state, run_id)  # type: ignore[operator]
    except Exception:
        log.exception("Run %s: step %s was parked, but telling its kind failed", run_id, step.key)


def _as_ids(value: object) -> list[int]:
    return [int(item) for item in value] if isinstance(value, list) else []


def _children_of(run_id: int, key: str) -> list[Child]:
    return [
        Child(
            id=child_id,
            item=item,
            status=status,
            output=output,
            error=error,
            cost_nanousd=cost,
            finished=status in Run.FINISHED,
        )
        for child_id, item, status, output, error, cost in Run.objects.filter(
            parent_id=run_id, parent_step=key
        )
        .order_by("id")
        .values_list("id", "parent_item", "status", "output", "error", "cost_nanousd")
    ]


def _execute_paid_step(
    run: Run,
    token: str,
    index: int,
    step: StepBase,
    module: ModuleType,
    variables: dict[str, object],
    existing: StepRun | None,
    started_at: datetime,
) -> object:
    """A step that costs money: hold its worst case, record the attempt, call, record and settle.

    The attempt and the budget hold are one transaction, the result and the
    settlement another, so a call costs the database two commits."""
    key = step.key

    def failed(e: StepFailed, reservation: budget.Reservation | None = None) -> StepFailed:
        _record_step(
            run,
            token,
            index,
            step,
            started_at,
            status=StepRun.Status.FAILED,
            output=None,
            messages=e.messages,
            usage=e.usage,
            error=e.message,
            paid=True,
            reservation=reservation,
        )
        return e

    try:
        call = module.prepare(step, variables)
    except StepFailed as e:
        raise failed(e) from None
    lost = _lost_attempt(module, step, call, existing)
    if lost is not None:
        log.info("Run %s: step %s was cut mid-stream; usage estimated", run.id, key)
    # Record the attempt before calling, so a crash leaves an honest count.
    values = {
        "position": index,
        "type": step.type,
        "status": StepRun.Status.RUNNING,
        "started_at": started_at,
        "error": "",
        "attempts": (existing.attempts if existing else 0) + 1,
    }
    with transaction.atomic():
        budget_nanousd = _fence_reading_budget(run.id, token)
        if existing is None:
            StepRun.objects.create(run=run, key=key, **values)
        else:
            sql.update(StepRun, where={"id": existing.id}, values=values)
        reservation: budget.Reservation | budget.Full | budget.BudgetExhausted | None
        reservation = budget.hold(
            workspace_id=run.workspace_id,
            budget_nanousd=budget_nanousd,
            amount_nanousd=call.hold_nanousd,
            run_id=run.id,
        )
    if reservation is budget.FULL:
        reservation = _reserve_or_park(run, token, key, call.hold_nanousd)
        if isinstance(reservation, budget.BudgetExhausted):
            raise failed(StepFailed(reservation.message, messages=call.messages, attempts=0))
    assert not isinstance(reservation, (budget.Full, budget.BudgetExhausted))

    def on_retry() -> None:
        with transaction.atomic():
            _fence(run.id, token, running=True)
            StepRun.objects.filter(run=run, key=key).update(attempts=F("attempts") + 1)

    context = StepContext(
        variables=variables,
        run_id=run.id,
        workspace_id=run.workspace_id,
        deadline=run.deadline_at,
        on_attempt=on_retry,
        on_partial=partial_writer(
            StepRun,
            {"run_id": run.id, "key": key, "status": StepRun.Status.RUNNING},
            run_id=run.id,
            token=token,
            what=f"step {key}",
        ),
    )
    sql.connection_release()  # while the call waits on the network
    try:
        result: StepResult = module.execute(step, call, context)
    except StepFailed as e:
        if lost is not None:
            e.usage = e.usage.plus(lost)
        raise failed(e, reservation) from None
    except BaseException:
        budget.settle(reservation, cost_nanousd=0, workspace_id=run.workspace_id)
        raise
    return _record_step(
        run,
        token,
        index,
        step,
        started_at,
        status=StepRun.Status.SUCCEEDED,
        output=result.output,
        messages=result.messages,
        usage=result.usage if lost is None else result.usage.plus(lost),
        error="",
        paid=True,
        reservation=reservation,
    )


def _lost_attempt(
    module: ModuleType, step: StepBase, call: object, existing: StepRun | None
) -> Usage | None:
    """The estimated usage of an attempt whose worker died mid-stream: the
    step is still `running` with the text that had arrived (see on_partial)."""
    estimate = getattr(module, "estimate_lost", None)
    if (
        estimate is None
        or existing is None
        or existing.status != StepRun.Status.RUNNING
        or not isinstance(existing.output, str)
    ):
        return None
    usage: Usage = estimate(step, call, existing.output)
    return usage


def _reserve_or_park(
    run: Run, token: str, key: str, amount: int
) -> budget.Reservation | budget.BudgetExhausted:
    """The budget's slow path: hold the call's worst case with the ledger row
    locked, or park the run if only other calls' holds are in the way (raises
    RunParked), or return why it can never fit this month."""
    ledger_id = budget.ledger_swept(run.workspace_id)
    with transaction.atomic():
        # The run's row is locked before the ledger's, in the order every
        # settle takes them (its result's fence, then the ledger).
        _fence(run.id, token, running=True)
        outcome = budget.decide(
            workspace_id=run.workspace_id, ledger_id=ledger_id, amount_nanousd=amount, run_id=run.id
        )
        if isinstance(outcome, budget.Busy):
            _park(run, token, key, waiting_for=Run.WaitingFor.BUDGET, budget_needed_nanousd=amount)
    if isinstance(outcome, budget.Busy):
        raise RunParked
    return outcome


def _park(
    run: Run, token: str, key: str, *, waiting_for: str, budget_needed_nanousd: int | None = None
) -> None:
    """Inside the caller's transaction: park the run at step `key`, releasing
    its lease (and, on commit, its in-flight slot to the next queued run)."""
    has_waiting = sql.run_park(
        run_id=run.id,
        token=token,
        values={
            "status": Run.Status.WAITING,
            "waiting_for": waiting_for,
            "waiting_since": timezone.now(),
            "budget_needed_nanousd": budget_needed_nanousd,
            "lease_owner": "",
            "lease_expires_at": None,
        },
    )
    if has_waiting is None:
        raise LeaseLost
    # Nothing was sent: the attempt recorded before the hold does not count.
    sql.update(
        StepRun,
        where={"run_id": run.id, "key": key},
        values={"status": StepRun.Status.WAITING, "started_at": None},
        add={"attempts": -1},
    )
    if has_waiting:
        workspace_id = run.workspace_id
        transaction.on_commit(lambda: _on_finished(run.id, workspace_id, False, True))


def _record_step(
    run: Run,
    token: str,
    index: int,
    step: StepBase,
    started_at: datetime,
    *,
    status: str,
    output: object,
    messages: list[dict[str, str]] | None,
    usage: Usage,
    error: str,
    paid: bool,
    reservation: budget.Reservation | None = None,
    has_row: bool = False,
    state: dict[str, object] | None = None,
    attempts: int | None = None,
    counted: bool = False,
) -> object:
    """Commit a step's outcome, add its usage to the run's totals (unless it
    is `counted` there already: a map's items) and, for a paid step, settle
    its cost in the budget ledger: atomically. Returns the output as stored
    (`storable`), which the run goes on with."""
    finished_at = timezone.now()
    output = storable(output)
    values = {
        "position": index,
        "type": step.type,
        "status": status,
        "output": output,
        "messages": storable(messages),
        "model": usage.model,
        "tokens_in": usage.tokens_in,
        "tokens_cached": usage.tokens_cached,
        "tokens_out": usage.tokens_out,
        "cost_nanousd": usage.cost_nanousd,
        "latency_ms": int((finished_at - started_at).total_seconds() * 1000),
        "error": storable(error),
        "started_at": started_at,
        "finished_at": finished_at,
    }
    if state is not None:
        values["state"] = storable(state)
    if attempts is not None:
        values["attempts"] = attempts
    try:
        with transaction.atomic():
            # Fenced by the owner only, not the status: a call answered after a
            # cancel is still recorded. The fence and the totals are one UPDATE.
            fenced = sql.update(
                Run,
                where={"id": run.id, "lease_owner": token},
                values={"lease_expires_at": _lease_expiry()},
                add={}
                if counted
                else {
                    "tokens_in": usage.tokens_in,
                    "tokens_cached": usage.tokens_cached,
                    "tokens_out": usage.tokens_out,
                    "cost_nanousd": usage.cost_nanousd,
                },
            )
            if fenced != 1:
                raise LeaseLost
            key = step.key
            if not (paid or has_row) or not sql.update(
                StepRun, where={"run_id": run.id, "key": key}, values=values
            ):
                # A paid step that failed before its attempt was recorded has no row yet.
                values.setdefault("attempts", 0 if paid else 1)
                StepRun.objects.create(run=run, key=key, **values)
            if paid:
                budget.settle_in_transaction(
                    reservation, workspace_id=run.workspace_id, cost_nanousd=usage.cost_nanousd
                )
    except BaseException:
        # The result was not committed (another worker owns the run, or the
        # row was refused), but the money was spent: settle it on its own.
        if paid:
            budget.settle(
                reservation, cost_nanousd=usage.cost_nanousd, workspace_id=run.workspace_id
            )
        raise
    # A cancel that arrived during this step stops the run at the next paid
    # step's fence, or at _finish, which only finishes a run still running.
    return output


def _record_skipped(
    run: Run, token: str, definition: Definition, keys: list[str], stored: dict[str, StepRun]
) -> None:
    positions = {step.key: (i, step.type) for i, step in enumerate(definition.steps)}
    now = timezone.now()
    new = [
        StepRun(
            run=run,
            key=key,
            position=positions[key][0],
            type=positions[key][1],
            status=StepRun.Status.SKIPPED,
            started_at=now,
            finished_at=now,
        )
        for key in keys
        if key not in stored
    ]
    if new:
        with transaction.atomic():
            _fence(run.id, token, running=True)
            StepRun.objects.bulk_create(new, ignore_conflicts=True)


def _finish(
    run: Run,
    token: str,
    *,
    status: str,
    output: object = None,
    error: str = "",
) -> bool:
    run_id, workspace_id, parent_id = run.id, run.workspace_id, run.parent_id
    values = {
        "status": status,
        "output": storable(output),
        "error": storable(error),
        "finished_at": timezone.now(),
        "lease_expires_at": None,
    }
    if parent_id is None:
        # One statement finishes the run and says what its end sets in motion.
        finished = sql.run_finish(run_id=run_id, token=token, values=values)
    else:
        with transaction.atomic():
            finished = sql.run_finish(run_id=run_id, token=token, values=values)
            if finished is not None:
                waking.child_finished(run_id, parent_id)
    if finished is None:
        return False
    has_callback, has_waiting = finished
    if has_callback or has_waiting:
        transaction.on_commit(lambda: _on_finished(run_id, workspace_id, has_callback, has_waiting))
    return True


def _on_finished(run_id: int, workspace_id: int, has_callback: bool, has_waiting: bool) -> None:
    """Hand the run's slot to the workspace's next waiting run, and send the
    run's completion callback. Never fails the run: what cannot be sent now is
    sent by the reaper and the callback sweep."""
    if has_waiting:
        try:
            dispatch.hand_over_slot(workspace_id)
        except Exception:
            log.warning(
                "Run %s: could not dispatch the next waiting run; the reaper will",
                run_id,
                exc_info=True,
            )
    if has_callback:
        try:
            broker.callback_send_for_run(run_id)
        except Exception:
            log.warning(
                "Run %s: could not enqueue its callback; the sweep will", run_id, exc_info=True
            )


def _time_limit_message() -> str:
    return f"The run took longer than the limit of {settings.RUN_TIME_LIMIT_SECONDS} seconds."


def reap() -> list[int]:
    """Re-enqueue runs whose worker died or whose broker message was lost, and
    wake parked runs whose wait is over but whose wake-up was lost.

    A run is re-enqueued at most once per lease period: `enqueued_at` is moved
    forward with a conditional UPDATE, so two reapers (or two beats) cannot
    both enqueue it. Runs past their deadline with no live worker are failed.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.RUN_LEASE_SECONDS)
    grace = timedelta(seconds=settings.RUN_QUEUED_GRACE_SECONDS)
    overdue = Run.objects.filter(
        status=Run.Status.RUNNING, lease_expires_at__lt=now, deadline_at__lt=now
    )
    for run_id, parent_id in overdue.values_list("id", "parent_id")[:1000]:
        with transaction.atomic():
            failed = Run.objects.filter(id=run_id, status=Run.Status.RUNNING).update(
                status=Run.Status.FAILED,
                error=_time_limit_message(),
                finished_at=now,
                lease_expires_at=None,
            )
            if failed and parent_id is not None:
                waking.child_finished(run_id, parent_id)
    orphans = Run.objects.filter(
        Q(status=Run.Status.RUNNING, lease_expires_at__lt=now, enqueued_at__lt=now - lease)
        | Q(status=Run.Status.QUEUED, enqueued_at__lt=now - grace)  # sent, but the message was lost
    ).values_list("id", "enqueued_at")[:1000]
    requeued = dispatch.dispatch_all_waiting() + budget.recheck_waiting() + waking.wake_due()
    for run_id, enqueued_at in orphans:
        if Run.objects.filter(id=run_id, enqueued_at=enqueued_at).update(enqueued_at=now) == 1:
            broker.run_send(run_id, recovering=True)  # ahead of the backlog of new runs
            requeued.append(run_id)
    if requeued:
        log.info("Reaper re-enqueued %d runs: %s", len(requeued), requeued[:20])
    return requeued
