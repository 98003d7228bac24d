"""The `condition` step's checks and execution: the first case that holds picks the next step,
else `else`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import regex

from workflows.rendering import REFERENCE_RE, references, render
from workflows.steps.condition.config import UNARY_OPS, Case, ConditionStep

# A user's catastrophic regex (say "(a+)+$") must not hang a worker; a search
# that runs out of time counts as no match.
REGEX_TIMEOUT_SECONDS = 0.5


def check(step: ConditionStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if step.next is not None:
        problems.append(
            ("next", "A condition picks the next step with its cases and else; remove next.")
        )
    if not step.cases:
        problems.append(("cases", "A condition needs at least one case."))
    for index, case in enumerate(step.cases):
        field = f"cases[{index}].right"
        if case.op in UNARY_OPS:
            continue
        if case.right is None:
            problems.append((field, f'"{case.op}" needs a right-hand value.'))
        elif case.op == "matches":
            # Variables are inserted escaped at run time (see execute), so
            # their text cannot change the pattern's shape: a placeholder
            # stands in for them here.
            try:
                regex.compile(REFERENCE_RE.sub("_", case.right))
            except regex.error as error:
                problems.append((field, f"Invalid regular expression: {error}."))
        elif case.op in ("gt", "lt") and not references(case.right) and _number(case.right) is None:
            problems.append(
                (field, f'"{case.op}" compares numbers, and "{case.right}" is not a number.')
            )
    return problems


def execute(step: ConditionStep, variables: Mapping[str, object]) -> dict[str, Any]:
    for index, case in enumerate(step.cases):
        if _holds(case, variables):
            return {"case": index, "goto": case.goto}
    return {"case": None, "goto": step.else_}


def _holds(case: Case, variables: Mapping[str, object]) -> bool:
    left = render(case.left, variables).strip()
    if case.op == "is_empty":
        return left == ""
    if case.op == "is_not_empty":
        return left != ""
    if case.op == "matches":
        pattern = render(case.right or "", variables, escape=regex.escape)
        return _search(pattern, left)
    right = render(case.right or "", variables).strip()
    if case.op == "equals":
        return left == right
    if case.op == "not_equals":
        return left != right
    if case.op == "contains":
        return right in left
    if case.op == "not_contains":
        return right not in left
    left_number, right_number = _number(left), _number(right)
    if left_number is None or right_number is None:
        return False
    if case.op == "gt":
        return left_number > right_number
    return left_number < right_number  # lt


def _search(pattern: str, text: str) -> bool:
    try:
        return regex.search(pattern, text, timeout=REGEX_TIMEOUT_SECONDS) is not None
    except (TimeoutError, regex.error):
        # regex.error only when a variable sits right after a backslash and
        # completes an invalid escape; treated like any other non-match.
        return False


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
