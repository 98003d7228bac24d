"""Reads: the shapes other parts of Stepwise and outside programs depend on."""

from __future__ import annotations

from workflows.models import Run, StepRun
from workflows.pricing import usd_text


def _step_json(step: StepRun) -> dict[str, object]:
    return {
        "key": step.key,
        "type": step.type,
        "status": step.status,
        "output": step.output,
        "tokens_in": step.tokens_in,
        "tokens_cached": step.tokens_cached,
        "tokens_out": step.tokens_out,
        "cost_usd": usd_text(step.cost_nanousd),
        "latency_ms": step.latency_ms,
        "attempts": step.attempts,
        "reused": step.reused,
        "error": step.error,
    }


def run_json(run: Run, steps: list[StepRun] | None = None) -> dict[str, object]:
    """A run as `run_workflow` prints it and the API returns it (a stable shape)."""
    if steps is None:
        steps = list(run.steps.order_by("position"))
    return {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "version": run.version.number if run.version_id and run.version else None,
        "trigger": run.trigger,
        "status": run.status,
        "waiting_for": run.waiting_for,
        "inputs": run.inputs,
        "output": run.output,
        "error": run.error,
        "cost_usd": usd_text(run.cost_nanousd),
        "cost_nanousd": run.cost_nanousd,
        "tokens_in": run.tokens_in,
        "tokens_cached": run.tokens_cached,
        "tokens_out": run.tokens_out,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "steps": [_step_json(step) for step in steps],
    }
