"""Reads: the shapes other parts of Stepwise and outside programs depend on."""

from __future__ import annotations

from workflows.models import Run, StepRun
from workflows.schemas import run_out


def run_json(run: Run, steps: list[StepRun] | None = None) -> dict[str, object]:
    """A run as `run_workflow` prints it, the API returns it and callbacks send
    it: the API's RunOut schema, dumped (a stable shape)."""
    return run_out(run, steps).model_dump(mode="json")
