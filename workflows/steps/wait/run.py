"""The `wait` step's checks and execution: it parks the run until its time,
and beat wakes it (no thread sleeps)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from workflows.models import Run
from workflows.rendering import render
from workflows.steps.context import StepFailed, StepResult, Wait, WaitContext
from workflows.steps.wait.config import MAX_SECONDS, WaitStep

WAITS = True


def check(step: WaitStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    if (step.seconds is None) == (step.until is None or not step.until.strip()):
        return [("seconds", "Give either a number of seconds or a time to wait until, not both.")]
    return []


def begin(step: WaitStep, context: WaitContext) -> StepResult | Wait:
    if step.seconds is not None:
        until = context.now + timedelta(seconds=step.seconds)
    else:
        until = _parse(render(step.until or "", context.variables).strip())
        if until - context.now > timedelta(seconds=MAX_SECONDS):
            raise StepFailed(
                f"{_iso(until)} is more than 30 days away; a wait can be 30 days at most."
            )
    return _until(until, context.now)


def resume(step: WaitStep, state: Mapping[str, object], context: WaitContext) -> StepResult | Wait:
    return _until(_parse(str(state.get("until", ""))), context.now)


def _until(until: datetime, now: datetime) -> StepResult | Wait:
    if now >= until:
        return StepResult(output=_iso(until))
    return Wait(waiting_for=Run.WaitingFor.TIME, state={"until": _iso(until)}, wake_at=until)


def _parse(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        shown = text if len(text) <= 80 else text[:80] + "…"
        raise StepFailed(
            f"“{shown}” is not a time in ISO 8601 (such as 2026-12-24T09:00:00Z)."
        ) from None
    # A time without a zone is read as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
