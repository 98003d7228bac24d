"""The hard monthly budget: reserve an LLM call's worst case before sending it.

Guarantees, and how they are kept:

- **The month's spend never exceeds the budget**, also with many runs on many
  worker threads and processes. Each workspace has one ledger row per month
  (`accounts.BudgetMonth`: spent and reserved nano-USD). Before a call, its
  worst case (every prompt token at the input price, every allowed output
  token at the output price) is added to `reserved` by ONE conditional UPDATE
  whose WHERE clause says "spent + reserved + this call <= budget". The
  database serialises updates of one row (PostgreSQL re-checks the WHERE
  against the row a concurrent transaction just committed; SQLite has one
  writer at a time), so two calls can never both take the last dollars. A call
  that does not fit is never sent.
- **A call waits for holds, and fails only for spend.** A call that does not
  fit only because of other calls' holds would fit once they settle (real
  cost <= worst case): its run is parked (status `waiting`, `waiting_for`
  "budget", no lease, no worker thread, no broker message) and woken when
  holds settle. Only a call for which what is already spent plus its own
  worst case exceeds the budget fails its step with "workspace budget
  exhausted". The decision is taken with the ledger row locked (`decide`),
  and every settle locks the same row before it looks for waiting runs, so a
  run cannot park just after the last settle looked: no wake-up is missed.
- **Waking is oldest first, and only what fits.** A settle wakes the oldest
  waiting runs whose worst cases fit in what is neither spent nor held
  (stopping at the first that does not, so a large call is not overtaken
  forever), plus every waiting run that can no longer fit at all (it then
  fails). Waking is a conditional UPDATE (waiting -> queued) that enqueues on
  commit, so two wakers wake a run once; a duplicate message finds the lease
  held or the run parked again and stops. The reaper re-checks waiting runs
  every tick (`recheck_waiting`): a lost wake-up, a raised budget, a new month
  or a crashed worker's stale hold never leaves a run waiting for nothing.
- **Settling is exact.** After the call, the reservation is replaced by the
  real cost in one UPDATE of F() expressions; a call that failed without usage
  releases it entirely. Real cost <= worst case, so settling never overshoots.
- **No transactions of its own on the hot path.** The engine holds and settles
  inside the transactions that record the step's attempt and its result
  (`hold` and `settle_in_transaction`), so a call costs the ledger two or
  three statements (and, with a budget, the settle's one indexed SELECT of
  waiting runs) and no extra round trip to COMMIT. A workspace without a
  budget holds nothing and wakes nothing: its result's transaction only adds
  the cost. So a budget set while such calls are in flight does not see them
  until they settle: the month can end above it by at most those calls' cost.
- **Crashes do not leak budget for the month.** A worker killed mid-call
  cannot settle; its reservation row stays. Once it is older than any call
  can last (the run time limit plus one call timeout) it is released by the
  next call that takes the slow path, or by the reaper's `recheck_waiting`.
  If the crashed call was answered, its cost was paid but is not in the
  ledger, which then under-counts (as the engine's docstring says, such a
  call may also be made again).
- **An eval holds its estimate** (`decide` with `eval_id`) from its start, so
  other work cannot take the room it was promised. The hold is not one call's:
  it shrinks by a row's share just before the row's run starts (`release_part`),
  and lends what its own parked runs and judge calls need, so the eval's calls
  never wait for the eval's own hold; what is left goes when it ends. A hold
  whose eval is no longer running is released by the sweep.
- Workspaces without a budget are still metered, so a budget set mid-month
  starts from what the month already spent.

A call reserved on the last second of a month settles into that month, even
if it finishes in the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Value
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone

from accounts.models import BudgetMonth, BudgetReservation, Workspace
from workflows import broker, sql
from workflows.llm import pricing
from workflows.models import Eval, Run

log = logging.getLogger(__name__)


class BudgetExhausted(Exception):
    """What the month has spent plus the call's worst case exceeds the budget."""

    def __init__(self, *, needed_nanousd: int, left_nanousd: int, budget_nanousd: int) -> None:
        self.needed_nanousd = needed_nanousd
        self.left_nanousd = left_nanousd
        self.budget_nanousd = budget_nanousd
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return (
            f"Stopped: workspace budget exhausted. This call could cost up to "
            f"{pricing.format_usd(self.needed_nanousd)} and "
            f"{pricing.format_usd(self.left_nanousd)} "
            f"of this month's {pricing.format_usd(self.budget_nanousd)} budget is left unspent. "
            "Nothing was sent or paid; an owner can raise the budget in the workspace settings."
        )


class BudgetBusy(Exception):
    """The call fits the budget, but not next to the holds of calls in flight:
    it must wait for them to settle."""

    def __init__(self, *, needed_nanousd: int) -> None:
        self.needed_nanousd = needed_nanousd
        super().__init__(
            f"Waiting for budget: this call could cost up to {pricing.format_usd(needed_nanousd)}."
        )


@dataclass(frozen=True)
class Reservation:
    id: int
    ledger_id: int
    amount_nanousd: int


def month_of(moment: datetime | None = None) -> date:
    """The first day of the (UTC) month of `moment`, or of now."""
    return (moment or timezone.now()).astimezone(UTC).date().replace(day=1)


def worst_case_nanousd(*, model: str, prompt_tokens: int, max_tokens: int) -> int:
    """The most a call can cost, as an upper bound the real invoice cannot pass.

    `prompt_tokens` is counted as OpenAI counts it (`tokens.count_messages`:
    framing, role and content of every message), at the uncached price.
    """
    return pricing.worst_case_nanousd(
        model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens
    )


def _ledger(workspace_id: int, month: date) -> BudgetMonth:
    # get_or_create survives the race of two first calls of the month: the
    # unique constraint lets one INSERT win, the other reads the winner's row.
    ledger, _ = BudgetMonth.objects.get_or_create(workspace_id=workspace_id, month=month)
    _ledger_ids[workspace_id, month] = ledger.id
    return ledger


# Ledger rows are never deleted (but with their workspace), so their ids can
# be remembered by each process. A stale id only makes an UPDATE match no row,
# which sends the caller down the slow path that creates the row.
_ledger_ids: dict[tuple[int, date], int] = {}


def _stale_before() -> datetime:
    """Reservations older than this belong to calls that cannot still be running."""
    longest_call = settings.RUN_TIME_LIMIT_SECONDS + settings.STEP_TIMEOUT_SECONDS + 60
    return timezone.now() - timedelta(seconds=longest_call)


def release_stale(ledger_id: int) -> int:
    """Release reservations left behind by crashed workers, and evals' holds
    whose eval is no longer running; returns how many."""
    released = 0
    stale = BudgetReservation.objects.filter(
        ledger_id=ledger_id, eval_id__isnull=True, created_at__lt=_stale_before()
    ) | BudgetReservation.objects.filter(ledger_id=ledger_id, eval_id__isnull=False).exclude(
        eval_id__in=Eval.objects.filter(status=Eval.Status.RUNNING).values("id")
    )
    for reservation_id in stale.values_list("id", flat=True):
        with transaction.atomic():
            # Locked and read again: an eval's hold may have shrunk since (`release_part`).
            amount = (
                BudgetReservation.objects.select_for_update()
                .filter(id=reservation_id)
                .values_list("amount_nanousd", flat=True)
                .first()
            )
            # Deleting first decides who releases it: this sweep or a late settle.
            if (
                amount is not None
                and BudgetReservation.objects.filter(id=reservation_id).delete()[0] == 1
            ):
                BudgetMonth.objects.filter(id=ledger_id).update(
                    reserved_nanousd=F("reserved_nanousd") - amount
                )
                released += 1
    if released:
        log.warning(
            "Budget ledger %s: released %d reservations of crashed calls", ledger_id, released
        )
    return released


def _add_hold(ledger_id: int, amount: int, budget: int | None) -> bool:
    """Add `amount` to the ledger's holds if it fits under `budget` (always
    without one): the one conditional UPDATE that keeps the guarantee."""
    rows = BudgetMonth.objects.filter(id=ledger_id)
    if budget is not None:
        rows = rows.filter(
            LessThanOrEqual(
                F("spent_nanousd") + F("reserved_nanousd") + Value(amount), Value(budget)
            )
        )
    return rows.update(reserved_nanousd=F("reserved_nanousd") + amount) == 1


def _workspace_budget(workspace_id: int) -> int | None:
    return (
        Workspace.objects.filter(id=workspace_id).values_list("budget_nanousd", flat=True).first()
    )


def _locked(ledger_id: int) -> BudgetMonth:
    """The ledger row, locked until the transaction ends (PostgreSQL: FOR
    UPDATE; SQLite: the write lock its BEGIN IMMEDIATE already took)."""
    return (
        BudgetMonth.objects.select_for_update()
        .only("workspace_id", "spent_nanousd", "reserved_nanousd")
        .get(id=ledger_id)
    )


class Busy:
    """`decide`: the call would fit but for the holds of calls in flight."""


BUSY = Busy()


def ledger_swept(workspace_id: int) -> int:
    """This month's ledger row id (created if needed), after releasing the
    holds crashed workers left in it: what the slow path does before `decide`."""
    ledger_id = _ledger(workspace_id, month_of()).id
    release_stale(ledger_id)
    return ledger_id


def decide(
    *,
    workspace_id: int,
    ledger_id: int,
    amount_nanousd: int,
    run_id: int | None,
    eval_id: int | None = None,
) -> Reservation | BudgetExhausted | Busy:
    """Inside the caller's transaction, with the ledger row locked: hold the
    call's worst case if it fits; else say why not. BudgetExhausted (returned,
    not raised) when what the month has spent plus this call exceeds the
    budget; BUSY when only the holds of calls in flight are in the way, and
    the caller parks its run in this same transaction (a settle takes the same
    lock before it looks for waiting runs, so it sees the parked run)."""
    row = _locked(ledger_id)
    budget = _workspace_budget(workspace_id)
    if budget is None or row.spent_nanousd + row.reserved_nanousd + amount_nanousd <= budget:
        _add_hold(ledger_id, amount_nanousd, None)
        reservation = BudgetReservation.objects.create(
            ledger_id=ledger_id, amount_nanousd=amount_nanousd, run_id=run_id, eval_id=eval_id
        )
        return Reservation(id=reservation.id, ledger_id=ledger_id, amount_nanousd=amount_nanousd)
    if row.spent_nanousd + amount_nanousd > budget:
        return BudgetExhausted(
            needed_nanousd=amount_nanousd,
            left_nanousd=max(0, budget - row.spent_nanousd),
            budget_nanousd=budget,
        )
    return BUSY


def reserve(*, workspace_id: int, amount_nanousd: int, run_id: int | None = None) -> Reservation:
    """Hold `amount_nanousd` of this month's budget for one call, in a
    transaction of its own; raise BudgetExhausted or BudgetBusy (see `decide`).

    Call it outside any transaction: the hold must be visible to every other
    worker at once.
    """
    ledger_id = ledger_swept(workspace_id)
    with transaction.atomic():
        outcome = decide(
            workspace_id=workspace_id,
            ledger_id=ledger_id,
            amount_nanousd=amount_nanousd,
            run_id=run_id,
        )
    if isinstance(outcome, BudgetExhausted):
        raise outcome
    if isinstance(outcome, Busy):
        raise BudgetBusy(needed_nanousd=amount_nanousd)
    return outcome


class Full:
    """`hold` could not hold the amount: take the slow path (`reserve`)."""


FULL = Full()


def hold(
    *, workspace_id: int, budget_nanousd: int | None, amount_nanousd: int, run_id: int | None
) -> Reservation | None | Full:
    """Inside the caller's transaction, hold `amount_nanousd` for one call.

    Returns the reservation; None when the workspace has no budget (nothing is
    held, `settle_in_transaction` only meters the cost); FULL when the amount
    does not fit or the month has no ledger row yet. After FULL, commit and
    take the slow path: `ledger_swept` (creates the row, sweeps stale holds),
    then `decide` with the ledger locked.
    """
    if budget_nanousd is None:
        return None
    month = month_of()
    ledger_id = _ledger_ids.get((workspace_id, month))
    if ledger_id is None:
        return FULL
    if not _add_hold(ledger_id, amount_nanousd, budget_nanousd):
        return FULL
    reservation = BudgetReservation.objects.create(
        ledger_id=ledger_id, amount_nanousd=amount_nanousd, run_id=run_id
    )
    return Reservation(id=reservation.id, ledger_id=ledger_id, amount_nanousd=amount_nanousd)


def settle_in_transaction(
    reservation: Reservation | None, *, workspace_id: int, cost_nanousd: int
) -> None:
    """Inside the caller's transaction: replace the hold by the real cost, or,
    with no hold (no budget), add the cost to this month's spend."""
    if reservation is not None:
        _settle(reservation, cost_nanousd)
        return
    if cost_nanousd == 0:
        return
    month = month_of()
    ledger_id = _ledger_ids.get((workspace_id, month))
    added = ledger_id is not None and sql.update(
        BudgetMonth, where={"id": ledger_id}, add={"spent_nanousd": cost_nanousd}
    )
    if not added:
        with transaction.atomic():  # a savepoint: the INSERT of a racing first call may win
            ledger_id = _ledger(workspace_id, month).id
        BudgetMonth.objects.filter(id=ledger_id).update(
            spent_nanousd=F("spent_nanousd") + cost_nanousd
        )


def _settle(
    reservation: Reservation, cost_nanousd: int, release_nanousd: int | None = None
) -> None:
    if release_nanousd is None:
        # Deleting first decides who releases the hold: this settle or a stale
        # sweep that (wrongly) gave up on a very slow call.
        held = BudgetReservation.objects.filter(id=reservation.id).delete()[0] == 1
        release_nanousd = reservation.amount_nanousd if held else 0
    settled = sql.budget_month_settle(
        ledger_id=reservation.ledger_id,
        release_nanousd=release_nanousd,
        spent_nanousd=cost_nanousd,
    )
    if settled is not None:
        # This UPDATE holds the ledger row's lock until commit, and the SELECT
        # below starts after it was granted: it sees every run parked before.
        workspace_id, spent, reserved, budget = settled
        wake_waiting(
            workspace_id=workspace_id,
            budget_nanousd=budget,
            spent_nanousd=spent,
            reserved_nanousd=reserved,
        )


def release_part(reservation_id: int, amount_nanousd: int) -> int:
    """In a transaction of its own: take up to `amount_nanousd` off a hold that
    is not one call's (an eval's, see BudgetReservation), and wake the runs
    that now fit. Returns what was released (0: the hold is gone)."""
    with transaction.atomic():
        # Locked first, as a settle deletes first: the two never release one hold twice.
        held = (
            BudgetReservation.objects.select_for_update()
            .filter(id=reservation_id)
            .values_list("ledger_id", "amount_nanousd")
            .first()
        )
        if held is None or amount_nanousd <= 0:
            return 0
        ledger_id, left = held
        part = min(amount_nanousd, left)
        if part == left:
            BudgetReservation.objects.filter(id=reservation_id).delete()
        else:
            BudgetReservation.objects.filter(id=reservation_id).update(
                amount_nanousd=F("amount_nanousd") - part
            )
        _settle(Reservation(reservation_id, ledger_id, 0), 0, release_nanousd=part)
    return part


# How many waiting runs of a workspace one settle looks at (oldest first).
WAKE_SCAN = 200


def wake_waiting(
    *, workspace_id: int, budget_nanousd: int | None, spent_nanousd: int, reserved_nanousd: int
) -> list[int]:
    """Inside a transaction that holds the ledger row's lock, with its current
    figures: wake the workspace's budget-waiting runs that can go on, oldest
    first, and enqueue them on commit. Returns their ids.

    A run can go on when its call fits in what is neither spent nor held
    (woken in order until the first that does not fit), or when it can never
    fit (spent + its worst case > budget: woken to fail with "budget
    exhausted" instead of waiting for nothing). Each wake is a conditional
    UPDATE from waiting, so a run is woken once however many try."""
    waiting = list(
        Run.objects.filter(
            workspace_id=workspace_id, status=Run.Status.WAITING, waiting_for=Run.WaitingFor.BUDGET
        )
        .order_by("id")
        .values_list("id", "budget_needed_nanousd", "waiting_since", "deadline_at")[:WAKE_SCAN]
    )
    if not waiting:
        return []
    free = None if budget_nanousd is None else budget_nanousd - spent_nanousd - reserved_nanousd
    blocked = False
    now = timezone.now()
    woken: list[int] = []
    for run_id, needed, since, deadline in waiting:
        needed = needed or 0
        if free is not None:
            # A budget is set whenever `free` is: budget_nanousd is not None here.
            hopeless = spent_nanousd + needed > budget_nanousd  # type: ignore[operator]
            if not hopeless:
                if blocked or needed > free:
                    blocked = True
                    continue
                free -= needed
        waited = now - since if since else timedelta(0)
        values: dict[str, object] = {
            "status": Run.Status.QUEUED,
            "waiting_for": Run.WaitingFor.NOTHING,
            "waiting_since": None,
            "budget_needed_nanousd": None,
            "enqueued_at": now,
        }
        if deadline is not None:
            values["deadline_at"] = (
                deadline + waited
            )  # waiting does not count against the time limit
        if sql.update(
            Run,
            where={"id": run_id, "status": Run.Status.WAITING},
            values=values,
            add={"waited_ms": int(waited.total_seconds() * 1000)},
        ):
            woken.append(run_id)
    if woken:
        transaction.on_commit(lambda: _enqueue(woken))
    return woken


def _enqueue(run_ids: list[int]) -> None:
    # Woken runs are part-way through: sent ahead of the backlog of new runs.
    for run_id in run_ids:
        broker.run_send(run_id, recovering=True)


def recheck_waiting() -> list[int]:
    """For the reaper: wake what a settle would wake, for every workspace with
    budget-waiting runs. Recovers a lost wake-up, and runs left waiting by a
    raised or removed budget, a new month, or a crashed worker's stale hold."""
    workspace_ids = (
        Run.objects.filter(status=Run.Status.WAITING, waiting_for=Run.WaitingFor.BUDGET)
        .values_list("workspace_id", flat=True)
        .distinct()
        .order_by("workspace_id")
    )
    woken: list[int] = []
    for workspace_id in list(workspace_ids):
        ledger_id = ledger_swept(workspace_id)
        with transaction.atomic():
            row = _locked(ledger_id)
            woken += wake_waiting(
                workspace_id=workspace_id,
                budget_nanousd=_workspace_budget(workspace_id),
                spent_nanousd=row.spent_nanousd,
                reserved_nanousd=row.reserved_nanousd,
            )
    return woken


def settle(reservation: Reservation | None, *, cost_nanousd: int, workspace_id: int = 0) -> None:
    """In a transaction of its own: replace the hold by what the call really
    cost (0 releases it). With no hold, meter the cost for `workspace_id`."""
    try:
        with transaction.atomic():
            settle_in_transaction(reservation, workspace_id=workspace_id, cost_nanousd=cost_nanousd)
    except DatabaseError:
        # The answer is worth more than the ledger line: keep the step's
        # result. The hold is released as stale later; the cost stays unmetered.
        log.exception("Could not settle budget reservation %s (%s n$)", reservation, cost_nanousd)
