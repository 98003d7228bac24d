"""The `wait` step's config: a durable delay, or until a time."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workflows.steps.base import StepBase

TYPE = "wait"
DEFAULTS: dict[str, Any] = {}

# 30 days.
MAX_SECONDS = 30 * 24 * 3600


class WaitStep(StepBase):
    type: Literal["wait"] = "wait"
    # One of the two: how long, or until when (a template giving an ISO 8601 time).
    seconds: int | None = Field(default=None, ge=1, le=MAX_SECONDS)
    until: str | None = None


Config = WaitStep


def templates(step: WaitStep) -> list[tuple[str, str]]:
    return [("until", step.until)] if step.until is not None else []


def targets(step: WaitStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: WaitStep) -> dict[str, Any] | None:
    return None  # text: the time it waited until


def next_key(step: WaitStep, output: object) -> str | None:
    return step.next
