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
  that does not fit is never sent: its step fails with "workspace budget
  exhausted".
- **Settling is exact.** After the call, the reservation is replaced by the
  real cost in one UPDATE of F() expressions; a call that failed without usage
  releases it entirely. Real cost <= worst case, so settling never overshoots.
- **No transactions of its own on the hot path.** The engine holds and settles
  inside the transactions that record the step's attempt and its result
  (`hold` and `settle_in_transaction`), so a call costs the ledger two or
  three statements and no extra round trip to COMMIT. A workspace without a
  budget holds nothing: its result's transaction only adds the cost. So a
  budget set while such calls are in flight does not see them until they
  settle: the month can end above it by at most those calls' cost.
- **Crashes do not leak budget for the month.** A worker killed mid-call
  cannot settle; its reservation row stays. Once it is older than any call
  can last (the run time limit plus one call timeout) it is released by the
  next call that does not fit. If the crashed call was answered, its cost was
  paid but is not in the ledger, which then under-counts (as the engine's
  docstring says, such a call may also be made again).
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
from workflows import pricing, sql

log = logging.getLogger(__name__)


class BudgetExhausted(Exception):
    """The call's worst case does not fit in what is left of the month's budget."""

    def __init__(self, *, needed_nanousd: int, left_nanousd: int, budget_nanousd: int) -> None:
        self.needed_nanousd = needed_nanousd
        self.left_nanousd = left_nanousd
        self.budget_nanousd = budget_nanousd
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return (
            f"Stopped: workspace budget exhausted. This call could cost up to "
            f"{pricing.format_usd(self.needed_nanousd)} and {pricing.format_usd(self.left_nanousd)} "
            f"of this month's {pricing.format_usd(self.budget_nanousd)} budget is left. "
            "Nothing was sent or paid; an owner can raise the budget in the workspace settings."
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
    return pricing.worst_case_nanousd(model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens)


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
    """Release reservations left behind by crashed workers; returns how many."""
    released = 0
    for reservation_id, amount in BudgetReservation.objects.filter(
        ledger_id=ledger_id, created_at__lt=_stale_before()
    ).values_list("id", "amount_nanousd"):
        with transaction.atomic():
            # Deleting first decides who releases it: this sweep or a late settle.
            if BudgetReservation.objects.filter(id=reservation_id).delete()[0] == 1:
                BudgetMonth.objects.filter(id=ledger_id).update(reserved_nanousd=F("reserved_nanousd") - amount)
                released += 1
    if released:
        log.warning("Budget ledger %s: released %d reservations of crashed calls", ledger_id, released)
    return released


def _try_reserve(ledger: BudgetMonth, amount: int, budget: int | None, run_id: int | None) -> Reservation | None:
    with transaction.atomic():
        if not _add_hold(ledger.id, amount, budget):
            return None
        reservation = BudgetReservation.objects.create(ledger=ledger, amount_nanousd=amount, run_id=run_id)
    return Reservation(id=reservation.id, ledger_id=ledger.id, amount_nanousd=amount)


def _add_hold(ledger_id: int, amount: int, budget: int | None) -> bool:
    """Add `amount` to the ledger's holds if it fits under `budget` (always
    without one): the one conditional UPDATE that keeps the guarantee."""
    rows = BudgetMonth.objects.filter(id=ledger_id)
    if budget is not None:
        rows = rows.filter(LessThanOrEqual(F("spent_nanousd") + F("reserved_nanousd") + Value(amount), Value(budget)))
    return rows.update(reserved_nanousd=F("reserved_nanousd") + amount) == 1


def reserve(*, workspace_id: int, amount_nanousd: int, run_id: int | None = None) -> Reservation:
    """Hold `amount_nanousd` of this month's budget for one call, or raise BudgetExhausted.

    Call it outside any transaction: the hold must be visible to every other
    worker at once.
    """
    budget = Workspace.objects.filter(id=workspace_id).values_list("budget_nanousd", flat=True).first()
    ledger = _ledger(workspace_id, month_of())
    reservation = _try_reserve(ledger, amount_nanousd, budget, run_id)
    if reservation is None and release_stale(ledger.id):
        reservation = _try_reserve(ledger, amount_nanousd, budget, run_id)
    if reservation is None:
        assert budget is not None
        ledger.refresh_from_db()
        left = max(0, budget - ledger.spent_nanousd - ledger.reserved_nanousd)
        raise BudgetExhausted(needed_nanousd=amount_nanousd, left_nanousd=left, budget_nanousd=budget)
    return reservation


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
    call `reserve`, which sweeps stale holds, creates the row, and raises
    BudgetExhausted if the call still does not fit.
    """
    if budget_nanousd is None:
        return None
    month = month_of()
    ledger_id = _ledger_ids.get((workspace_id, month))
    if ledger_id is None:
        return FULL
    if not _add_hold(ledger_id, amount_nanousd, budget_nanousd):
        return FULL
    reservation = BudgetReservation.objects.create(ledger_id=ledger_id, amount_nanousd=amount_nanousd, run_id=run_id)
    return Reservation(id=reservation.id, ledger_id=ledger_id, amount_nanousd=amount_nanousd)


def settle_in_transaction(reservation: Reservation | None, *, workspace_id: int, cost_nanousd: int) -> None:
    """Inside the caller's transaction: replace the hold by the real cost, or,
    with no hold (no budget), add the cost to this month's spend."""
    if reservation is not None:
        _settle(reservation, cost_nanousd)
        return
    if cost_nanousd == 0:
        return
    month = month_of()
    ledger_id = _ledger_ids.get((workspace_id, month))
    added = ledger_id is not None and sql.update(BudgetMonth, where={"id": ledger_id}, add={"spent_nanousd": cost_nanousd})
    if not added:
        with transaction.atomic():  # a savepoint: the INSERT of a racing first call may win
            ledger_id = _ledger(workspace_id, month).id
        BudgetMonth.objects.filter(id=ledger_id).update(spent_nanousd=F("spent_nanousd") + cost_nanousd)


def _settle(reservation: Reservation, cost_nanousd: int) -> None:
    # Deleting first decides who releases the hold: this settle or a stale
    # sweep that (wrongly) gave up on a very slow call.
    held = BudgetReservation.objects.filter(id=reservation.id).delete()[0] == 1
    sql.update(
        BudgetMonth,
        where={"id": reservation.ledger_id},
        add={"reserved_nanousd": -reservation.amount_nanousd if held else 0, "spent_nanousd": cost_nanousd},
    )


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
