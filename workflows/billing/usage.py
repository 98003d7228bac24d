"""Reads for the usage page and the budget banner: where a workspace's money goes.

Spend is the sum of `StepRun.cost_nanousd`, counted on the UTC day the step
finished (`finished_at`), not the day its run started: a run that crosses
midnight bills each call on the day it was made, as OpenAI does. Each
breakdown is one GROUP BY query, whatever the number of runs.

Deleting a workflow deletes its runs, so their spend leaves the chart and the
breakdowns; the month's budget ledger (`BudgetMonth`) keeps it, and the budget
meter reads the ledger, which is what the hard budget enforces.

Retention and deleting a run keep the rows these sums read (workflows/retention.py
blanks only a run's details, and hides a deleted run from lists): the figures here do
not change when runs are pruned or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import BudgetMonth, Workspace
from workflows.billing.budget import month_of
from workflows.models import Run, StepRun

WARNING_PERCENT = 80


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
        """ "none" (no budget), "ok", "warning" (from 80%) or "exhausted" (100%)."""
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


def _steps(
    workspace: Workspace, first: date, last: date, production: bool = False
) -> QuerySet[StepRun, Any]:
    """The steps that finished in the window; `production`: without eval runs' (which are
    in the month's spend and the budget all the same)."""
    steps = StepRun.objects.filter(
        run__workspace=workspace,
        finished_at__gte=_day_start(first),
        finished_at__lt=_day_start(last + timedelta(days=1)),
    )
    return steps.exclude(run__trigger=Run.Trigger.EVAL) if production else steps


def _with_totals(rows: QuerySet[StepRun, Any], *order_by: str) -> QuerySet[StepRun, dict[str, Any]]:
    """`rows` (grouped by values()) with what every usage table shows of a group, in `order_by`."""
    totals = rows.annotate(
        cost=Coalesce(Sum("cost_nanousd"), 0),
        tokens_in_sum=Coalesce(Sum("tokens_in"), 0),
        tokens_out_sum=Coalesce(Sum("tokens_out"), 0),
        run_count=Count("run_id", distinct=True),
    )
    return totals.order_by(*order_by) if order_by else totals


def daily_usage(
    workspace: Workspace, *, days: int = 30, today: date | None = None, production: bool = False
) -> list[DayUsage]:
    """One entry per UTC day, oldest first, ending today; days without calls are zero."""
    first, last = _window(days, today)
    rows = _with_totals(
        _steps(workspace, first, last, production)
        .annotate(day=TruncDate("finished_at", tzinfo=UTC))
        .values("day"),
        "day",
    )
    by_day = {
        row["day"]: DayUsage(
            row["day"], row["cost"], row["tokens_in_sum"], row["tokens_out_sum"], row["run_count"]
        )
        for row in rows
    }
    return [
        by_day.get(day, DayUsage(day)) for day in (first + timedelta(days=n) for n in range(days))
    ]


def _share(part: int, total: int) -> int:
    return round(part * 100 / total) if total else 0


def usage_by_workflow(
    workspace: Workspace, *, days: int = 30, today: date | None = None, production: bool = False
) -> list[UsageRow]:
    first, last = _window(days, today)
    rows = list(
        _with_totals(
            _steps(workspace, first, last, production).values(
                "run__workflow_id", "run__workflow__name"
            ),
            "-cost",
            "run__workflow__name",
        )
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


def _starter(row: dict) -> tuple[tuple[object, ...], str, str]:
    """Who a run's spend belongs to: (grouping key, label, detail).

    A person for the runs they started by hand; otherwise what started it: an
    API token by its name (not the person who created it), webhooks,
    schedules, the command line.
    """
    trigger = row["run__trigger"]
    if trigger in (Run.Trigger.API, Run.Trigger.MCP):
        name = row["run__api_token__name"]
        if row["run__api_token_id"] is None:
            return ("api", None), "API token", "a token since deleted"
        return ("api", row["run__api_token_id"]), f"API token “{name}”", "API v1 and MCP"
    if trigger == Run.Trigger.WEBHOOK:
        return ("webhook",), "Webhook", "signed requests to a webhook URL"
    if trigger == Run.Trigger.SCHEDULE:
        return ("schedule",), "Schedule", "cron schedules"
    if row["run__created_by_id"] is None:
        if trigger == Run.Trigger.CLI:
            return ("cli",), "Command line", "run_workflow"
        return ("deleted",), "Deleted account", "a person no longer here"
    email = row["run__created_by__email"]
    return (
        ("user", row["run__created_by_id"]),
        row["run__created_by__name"] or email.split("@")[0],
        email,
    )


def usage_by_member(
    workspace: Workspace, *, days: int = 30, today: date | None = None, production: bool = False
) -> list[UsageRow]:
    """Spend by who started the runs: people, and apart
    from them API tokens, webhooks and schedules."""
    first, last = _window(days, today)
    rows = list(
        _with_totals(
            _steps(workspace, first, last, production).values(
                "run__trigger",
                "run__created_by_id",
                "run__created_by__email",
                "run__created_by__name",
                "run__api_token_id",
                "run__api_token__name",
            )
        )
    )
    total = sum(row["cost"] for row in rows)
    # A run has one trigger and one starter, so its
    # group's distinct run count adds up across groups.
    groups: dict[tuple[object, ...], dict] = {}
    for row in rows:
        key, label, detail = _starter(row)
        group = groups.setdefault(
            key,
            {
                "label": label,
                "detail": detail,
                "runs": 0,
                "cost": 0,
                "tokens": 0,
                "id": row["run__created_by_id"] if key[0] == "user" else None,
            },
        )
        group["runs"] += row["run_count"]
        group["cost"] += row["cost"]
        group["tokens"] += row["tokens_in_sum"] + row["tokens_out_sum"]
    ordered = sorted(groups.values(), key=lambda group: (-group["cost"], group["label"]))
    return [
        UsageRow(
            key=group["id"],
            label=group["label"],
            detail=group["detail"],
            runs=group["runs"],
            cost_nanousd=group["cost"],
            tokens=group["tokens"],
            share_percent=_share(group["cost"], total),
        )
        for group in ordered
    ]


def month_budget(workspace: Workspace) -> MonthBudget:
    """This month's ledger against the budget: what the hard budget itself sees."""
    month = month_of()
    ledger = (
        BudgetMonth.objects.filter(workspace=workspace, month=month)
        .values_list("spent_nanousd", "reserved_nanousd")
        .first()
    )
    spent, reserved = ledger or (0, 0)
    return MonthBudget(
        month=month,
        spent_nanousd=spent,
        reserved_nanousd=reserved,
        budget_nanousd=workspace.budget_nanousd,
    )
