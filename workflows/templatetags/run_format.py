"""Human formats for runs: {% load run_format %}, then |usd |duration_ms |count |when
|trigger_label |step_type_label |percent |value_text."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from workflows import steps as step_kinds
from workflows.llm.pricing import format_usd

register = template.Library()


@register.filter
def usd(nanousd: int | None) -> str:
    """Nano-USD as dollars, e.g. $0.000412 (see pricing.format_usd)."""
    return format_usd(nanousd or 0)


@register.filter
def duration_ms(ms: int | None) -> str:
    """840 ms, 3.2 s, 2 min 5 s, 1 h 4 min; an em dash when unknown."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@register.filter
def count(value: int | None) -> str:
    """A whole number with thousands separators: 12,408."""
    return f"{value or 0:,}"


@register.filter
def when(moment: datetime | None) -> str:
    """ "3 minutes ago" within a day, else a short date ("Nov 25, 14:03")."""
    if moment is None:
        return "—"
    now = timezone.now()
    if now - moment < timedelta(days=1):
        return (
            "just now"
            if now - moment < timedelta(minutes=1)
            else f"{timesince(moment, now, depth=1)} ago"
        )
    local = timezone.localtime(moment)
    if local.year == timezone.localtime(now).year:
        return local.strftime("%b %-d, %H:%M")
    return local.strftime("%b %-d %Y, %H:%M")


TRIGGER_LABELS = {
    "manual": "Manual",
    "api": "API",
    "webhook": "Webhook",
    "schedule": "Schedule",
    "cli": "Command line",
    "workflow": "Sub-workflow",
    "mcp": "MCP",
    "eval": "Eval",
}


@register.filter
def trigger_label(trigger: str) -> str:
    return TRIGGER_LABELS.get(trigger, trigger)


@register.filter
def step_type_label(step_type: str) -> str:
    """A kind's short name (its SHORT_LABEL); a type no kind has any more, as it is."""
    kind = step_kinds.STEP_TYPES.get(step_type)
    return kind.SHORT_LABEL if kind else step_type


@register.filter
def percent(value: float) -> str:
    """A number for an SVG length in percent, never localised ("12.5", not "12,5")."""
    return f"{value:.2f}"


@register.filter
def value_text(value: object) -> str:
    """An input or expected value as a person wrote it: text as it is, anything else as JSON
    (not Python's repr), nothing for None."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
