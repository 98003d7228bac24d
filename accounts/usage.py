"""Reads for the usage page and the budget banner: where a workspace's money goes.

Spend is the sum of `StepRun.cost_nanousd`, counted on the UTC day the step
finished (`finished_at`), not the day its run started: a run that crosses
midnight bills each call on the day it was made, as OpenAI does. Each
breakdown is one GROUP BY query, whatever the number of runs.

Deleting a workflow deletes its runs, so their spend leaves the chart and the
breakdowns; the month's budget ledger (`BudgetMonth`) keeps it, and the budget
meter reads the ledger, which is what the hard budget enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import BudgetMonth, Workspace
from workflows.budget import month_of
from workflows.models import StepRun

WARNING_PERCENT = 80
NO_USER_LABEL = "Triggers/API"


@dataclass(frozen=True)
class DayUsage:
    day: date
    cost_nanousd: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    runs: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class UsageRow:
    """One line of a breakdown: a workflow or a person."""

    key: int | None
    label: str
    detail: str
    runs: int
    cost_nanousd: int
    tokens: int
    share_percent: int


@dataclass(frozen=True)
class MonthBudget:
    month: date
    spent_nanousd: int
    reserved_nanousd: int
    budget_nanousd: int | None

    @property
    def next_month(self) -> date:
        return (self.month + timedelta(days=32)).replace(day=1)

    @property
    def percent(self) -> int:
        """Spent as a share of the budget, in whole percent (0 without a budget)."""
        if not self.budget_nanousd:
            return 100 if self.budget_nanousd == 0 else 0
        return self.spent_nanousd * 100 // self.budget_nanousd

    @property
    def left_nanousd(self) -> int | None:
        if self.budget_nanousd is None:
            return None
        return max(0, self.budget_nanousd - self.spent_nanousd)

    @property
    def level(self) -> str:
        """"none" (no budget), "ok", "warning" (from 80%) or "exhausted" (100%)."""
        if self.budget_nanousd is None:
            return "none"
        if self.percent >= 100:
            return "exhausted"
        if self.percent >= WARNING_PERCENT:
            return "warning"
        return "ok"

    @property
    def meter_value(self) -> int:
        return min(self.percent, 100)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _window(days: int, today: date | None) -> tuple[date, date]:
    last = today or timezone.now().astimezone(UTC).date()
    return last - timedelta(days=days - 1), last


def _steps(workspace: Workspace, first: date, last: date):  # type: ignore[no-untyped-def]
    return StepRun.objects.filter(
        run__workspace=workspace,
        finished_at__gte=_day_start(first),
        finished_at__lt=_day_start(last + timedelta(days=1)),
    )


_TOTALS = {
    "cost": Coalesce(Sum("cost_nanousd"), 0),
    "tokens_in_sum": Coalesce(Sum("tokens_in"), 0),
    "tokens_out_sum": Coalesce(Sum("tokens_out"), 0),
    "run_count": Count("run_id", distinct=True),
}


def daily_usage(workspace: Workspace, *, days: int = 30, today: date | None = None) -> list[DayUsage]:
    """One entry per UTC day, oldest first, ending today; days without calls are zero."""
    first, last = _window(days, today)
    rows = (
        _steps(workspace, first, last)
        .annotate(day=TruncDate("finished_at", tzinfo=UTC))
        .values("day")
        .annotate(**_TOTALS)
        .order_by("day")
    )
    by_day = {
        row["day"]: DayUsage(row["day"], row["cost"], row["tokens_in_sum"], row["tokens_out_sum"], row["run_count"])
        for row in rows
    }
    return [by_day.get(day, DayUsage(day)) for day in (first + timedelta(days=n) for n in range(days))]


def _share(part: int, total: int) -> int:
    return round(part * 100 / total) if total else 0


def usage_by_workflow(workspace: Workspace, *, days: int = 30, today: date | None = None) -> list[UsageRow]:
    first, last = _window(days, today)
    rows = list(
        _steps(workspace, first, last)
        .values("run__workflow_id", "run__workflow__name")
        .annotate(**_TOTALS)
        .order_by("-cost", "run__workflow__name")
    )
    total = sum(row["cost"] for row in rows)
    return [
        UsageRow(
            key=row["run__workflow_id"],
            label=row["run__workflow__name"],
            detail="",
            runs=row["run_count"],
            cost_nanousd=row["cost"],
            tokens=row["tokens_in_sum"] + row["tokens_out_sum"],
            share_percent=_share(row["cost"], total),
        )
        for row in rows
    ]


def usage_by_member(workspace: Workspace, *, days: int = 30, today: date | None = None) -> list[UsageRow]:
    """Spend by who started the runs; runs started by webhooks, schedules and the API have no person."""
    first, last = _window(days, today)
    rows = list(
        _steps(workspace, first, last)
        .values("run__created_by_id", "run__created_by__email", "run__created_by__name")
        .annotate(**_TOTALS)
        .order_by("-cost", "run__created_by__email")
    )
    total = sum(row["cost"] for row in rows)
    result = []
    for row in rows:
        email = row["run__created_by__email"]
        if row["run__created_by_id"] is None:
            label, detail = NO_USER_LABEL, "webhooks, schedules, API tokens"
        else:
            label, detail = row["run__created_by__name"] or email.split("@")[0], email
        result.append(
            UsageRow(
                key=row["run__created_by_id"],
                label=label,
                detail=detail,
                runs=row["run_count"],
                cost_nanousd=row["cost"],
                tokens=row["tokens_in_sum"] + row["tokens_out_sum"],
                share_percent=_share(row["cost"], total),
            )
        )
    return result


def month_budget(workspace: Workspace) -> MonthBudget:
    """This month's ledger against the budget: what the hard budget itself sees."""
    month = month_of()
    ledger = BudgetMonth.objects.filter(workspace=workspace, month=month).values_list(
        "spent_nanousd", "reserved_nanousd"
    ).first()
    spent, reserved = ledger or (0, 0)
    return MonthBudget(month=month, spent_nanousd=spent, reserved_nanousd=reserved,
                       budget_nanousd=workspace.budget_nanousd)
