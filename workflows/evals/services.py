"""Writes of a workflow's checks (datasets: datasets.py; evals: execution.py)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from config.lib.names import name_direction_problem
from workflows.evals.checks import CheckInvalid, check_config
from workflows.models import EvalCheck, Workflow

MAX_CHECKS = 20


@transaction.atomic
def check_add(*, workflow: Workflow, name: str, kind: str, config: dict[str, Any]) -> EvalCheck:
    """Add a check (its configuration validated by its kind: CheckInvalid)."""
    name = name.strip()[:100]
    if not name:
        raise CheckInvalid("A check needs a name.")
    if name_direction_problem(name):
        raise CheckInvalid(name_direction_problem(name))
    if workflow.eval_checks.count() >= MAX_CHECKS:
        raise CheckInvalid(f"A workflow has at most {MAX_CHECKS} checks.")
    if workflow.eval_checks.filter(name=name).exists():
        raise CheckInvalid(f"There is already a check named {name!r}.")
    return EvalCheck.objects.create(
        workflow=workflow, name=name, kind=kind, config=check_config(kind, config)
    )


@transaction.atomic
def check_delete(*, check: EvalCheck) -> None:
    """Delete a check. Past evals keep the checks they ran with."""
    check.delete()
