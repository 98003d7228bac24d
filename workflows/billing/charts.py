"""The usage chart's geometry, computed here and drawn as SVG by the template.

Bars are the daily spend (left axis, USD), the line is the daily tokens
(right axis). Everything is positioned with SVG attributes in viewBox units
and styled with CSS classes: the CSP forbids inline styles, and no chart
library is needed for thirty bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from workflows.billing.usage import DayUsage
from workflows.llm.pricing import NANO, format_usd

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 60, 52, 14, 30
TICKS = 4


@dataclass(frozen=True)
class Tick:
    y: float
    left: str
    right: str


@dataclass(frozen=True)
class Column:
    x: float  # left edge of the day's slot
    slot: float
    bar_x: float
    bar_y: float
    bar_width: float
    bar_height: float
    dot_x: float
    dot_y: float
    title: str
    label: str  # the x-axis label, for some days only


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    plot_height: float
    ticks: list[Tick]
    columns: list[Column]
    line_points: str
    title: str
    description: str
    total_nanousd: int
    total_tokens: int
    empty: bool


def _nice_step(raw: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `raw`."""
    if raw <= 0:
        return 1.0
    power: float = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _usd_label(nanousd: float) -> str:
    usd = (Decimal(str(nanousd)) / NANO).normalize()
    if usd == 0:
        return "$0"
    if usd >= 1000:
        return f"${usd:,.0f}"
    return f"${usd:f}"


def _tokens_label(count: float) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:g}M"
    if count >= 1000:
        return f"{count / 1000:g}k"
    return f"{count:g}"


def _day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def usage_chart(days: list[DayUsage]) -> Chart:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h
    # Empty axes still read sensibly: up to a cent and a thousand tokens.
    max_cost = max((d.cost_nanousd for d in days), default=0) or 10_000_000
    max_tokens = max((d.tokens for d in days), default=0) or 1000
    cost_step = _nice_step(max_cost / TICKS)
    token_step = _nice_step(max_tokens / TICKS)
    cost_top = cost_step * TICKS
    token_top = token_step * TICKS

    ticks = [
        Tick(
            y=round(bottom - plot_h * i / TICKS, 1),
            left=_usd_label(cost_step * i),
            right=_tokens_label(token_step * i),
        )
        for i in range(TICKS + 1)
    ]
    slot = plot_w / max(len(days), 1)
    bar_w = max(2.0, slot * 0.62)
    columns = []
    label_every = 7 if len(days) > 14 else 1
    for i, day in enumerate(days):
        x = LEFT + slot * i
        height = plot_h * day.cost_nanousd / cost_top
        if day.cost_nanousd and height < 1.5:
            height = 1.5  # a paid day is never invisible
        runs = f"{day.runs} run{'s' if day.runs != 1 else ''}"
        judges = (
            f"; eval judges {format_usd(day.judge_nanousd)}, {day.judge_tokens:,} tokens"
            if day.judge_tokens
            else ""
        )
        columns.append(
            Column(
                x=round(x, 2),
                slot=round(slot, 2),
                bar_x=round(x + (slot - bar_w) / 2, 2),
                bar_y=round(bottom - height, 2),
                bar_width=round(bar_w, 2),
                bar_height=round(height, 2),
                dot_x=round(x + slot / 2, 2),
                dot_y=round(bottom - plot_h * day.tokens / token_top, 2),
                title=f"{_day_label(day.day)}: {format_usd(day.cost_nanousd)} spent, "
                f"{day.tokens:,} tokens ({day.tokens_in:,} in, {day.tokens_out:,} out), {runs}"
                f"{judges}",
                label=_day_label(day.day) if (len(days) - 1 - i) % label_every == 0 else "",
            )
        )
    total = sum(d.cost_nanousd for d in days)
    total_tokens = sum(d.tokens for d in days)
    busiest = max(days, key=lambda d: d.cost_nanousd, default=None)
    if busiest is not None and busiest.cost_nanousd:
        description = (
            f"{format_usd(total)} and {total_tokens:,} tokens in {len(days)} days. "
            f"The most expensive day was {_day_label(busiest.day)} with "
            f"{format_usd(busiest.cost_nanousd)}."
        )
    else:
        description = f"No LLM calls in the last {len(days)} days."
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=bottom,
        plot_height=plot_h,
        ticks=ticks,
        columns=columns,
        line_points=" ".join(f"{c.dot_x},{c.dot_y}" for c in columns),
        title=f"Daily spend and tokens, last {len(days)} days",
        description=description,
        total_nanousd=total,
        total_tokens=total_tokens,
        empty=total == 0 and total_tokens == 0,
    )
