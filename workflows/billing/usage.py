"""Reads for the usage page and the budget banner: where a workspace's money goes.

Spend is the sum of `StepRun.cost_nanousd`, counted on the UTC day the step
finished (`finished_at`), not the day its run started: a run that crosses
midnight bills each call on the day it was made, as OpenAI does. Evals' LLM
judges are paid outside any step: their cost is kept on the eval's rows
(`EvalItem.judge_cost_nanousd`, counted on the UTC day the row was scored,
`scored_at`) and added here, shown apart (a "<workflow> — eval judges" line,
an "Eval judges" line by person); the production view leaves them out with
the eval runs. So a month's days add up to its ledger's spend (below). Each
breakdown is one GROUP BY query over the steps and one over the judged rows,
whatever the number of runs and rows.

Deleting a workflow deletes its runs and its evals, so their spend (judges
included) leaves the chart and the breakdowns; deleting a dataset keeps its
evals, and so their judges' spend. The month's budget
ledger (`BudgetMonth`) keeps it, and the budget meter reads the ledger, which
is what the hard budget enforces.

Retention and deleting a run keep the rows these sums read (workflows/retention.py
blanks only a run's details, and hides a deleted run from lists; it leaves eval rows and
their judges' cost alone): the figures here do not change when runs are pruned or deleted.
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
from workflows.models import EvalItem, Run, StepRun

WARNING_PERCENT = 80


@dataclass(frozen=True)
class DayUsage:
    day: date
    cost_nanousd: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    runs: int = 0
    # Of `cost_nanousd`, what evals' LLM judges cost, and their tokens (input and output).
    judge_nanousd: int = 0
    judge_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out + self.judge_tokens


@dataclass(frozen=True)
class UsageRow:
    """One line of a breakdown: a workflow or a person, or evals' judges (`judges`: no runs)."""

    key: int | None
    label: str
    detail: str
    runs: int
    cost_nanousd: int
    tokens: int
    share_percent: int
    judges: bool = False


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
    def free_nanousd(self) -> int | None:
        """What is neither spent nor held by calls and evals in flight (None: no budget)."""
        if self.budget_nanousd is None:
            return None
        return max(0, self.budget_nanousd - self.spent_nanousd - self.reserved_nanousd)

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


def _judged(workspace: Workspace, first: date, last: date) -> QuerySet[EvalItem, Any]:
    """The eval rows whose LLM judges were called and that were scored in the window."""
    return EvalItem.objects.filter(
        eval__workspace=workspace,
        judge_tokens__gt=0,
        scored_at__gte=_day_start(first),
        scored_at__lt=_day_start(last + timedelta(days=1)),
    )


def _with_judge_totals(rows: QuerySet[EvalItem, Any]) -> QuerySet[EvalItem, dict[str, Any]]:
    """`rows` (grouped by values()) with their judges' cost and tokens."""
    return rows.annotate(
        cost=Coalesce(Sum("judge_cost_nanousd"), 0),
        tokens=Coalesce(Sum("judge_tokens"), 0),
    ).order_by()


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
    steps = {row["day"]: row for row in rows}
    judges = (
        {}
        if production
        else {
            row["day"]: row
            for row in _with_judge_totals(
                _judged(workspace, first, last)
                .annotate(day=TruncDate("scored_at", tzinfo=UTC))
                .values("day")
            )
        }
    )
    return [_day_usage(day, steps.get(day), judges.get(day)) for day in _days(first, days)]


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def _day_usage(day: date, steps: dict | None, judges: dict | None) -> DayUsage:
    """A day's figures from its row of the steps' sums and of the judges', either missing."""
    judge_cost = judges["cost"] if judges else 0
    judge_tokens = judges["tokens"] if judges else 0
    if steps is None:
        return DayUsage(day, judge_cost, judge_nanousd=judge_cost, judge_tokens=judge_tokens)
    return DayUsage(
        day,
        steps["cost"] + judge_cost,
        steps["tokens_in_sum"],
        steps["tokens_out_sum"],
        steps["run_count"],
        judge_nanousd=judge_cost,
        judge_tokens=judge_tokens,
    )


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
    judges = (
        []
        if production
        else list(
            _with_judge_totals(
                _judged(workspace, first, last).values("eval__workflow_id", "eval__workflow__name")
            )
        )
    )
    total = sum(row["cost"] for row in rows) + sum(row["cost"] for row in judges)
    lines = [
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
    ] + [
        UsageRow(
            key=row["eval__workflow_id"],
            label=f"{row['eval__workflow__name']} — eval judges",
            detail="LLM-judge checks of its evals",
            runs=0,
            cost_nanousd=row["cost"],
            tokens=row["tokens"],
            share_percent=_share(row["cost"], total),
            judges=True,
        )
        for row in judges
    ]
    return sorted(lines, key=lambda line: (-line.cost_nanousd, line.label))


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
    from them API tokens, webhooks and schedules; evals' judges on a line of their own."""
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
    judges = (
        {"cost": 0, "tokens": 0}
        if production
        else _judged(workspace, first, last).aggregate(
            cost=Coalesce(Sum("judge_cost_nanousd"), 0), tokens=Coalesce(Sum("judge_tokens"), 0)
        )
    )
    total = sum(row["cost"] for row in rows) + judges["cost"]
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
    lines = [
        UsageRow(
            key=group["id"],
            label=group["label"],
            detail=group["detail"],
            runs=group["runs"],
            cost_nanousd=group["cost"],
            tokens=group["tokens"],
            share_percent=_share(group["cost"], total),
        )
        for group in groups.values()
    ]
    if judges["tokens"]:
        lines.append(
            UsageRow(
                key=None,
                label="Eval judges",
                detail="LLM-judge checks of evals",
                runs=0,
                cost_nanousd=judges["cost"],
                tokens=judges["tokens"],
                share_percent=_share(judges["cost"], total),
                judges=True,
            )
        )
    return sorted(lines, key=lambda line: (-line.cost_nanousd, line.label))


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
