"""What an eval found: per target its pass rate, cost, tokens and latency, and per row the
targets side by side. The result page, its CSV export and the API read this one shape, so
they show the same figures."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from accounts.models import BudgetReservation
from workflows import services
from workflows.evals.checks import as_text
from workflows.models import Eval, EvalItem, Run, Workflow


@dataclass
class TargetTotals:
    target: str
    rows: int = 0
    scored: int = 0
    passed: int = 0
    cost_nanousd: int = 0
    judge_cost_nanousd: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    judge_tokens: int = 0
    latency_ms_total: int = 0
    latency_count: int = 0

    @property
    def pass_percent(self) -> float | None:
        return round(self.passed * 100 / self.scored, 1) if self.scored else None

    @property
    def latency_ms_avg(self) -> int | None:
        return self.latency_ms_total // self.latency_count if self.latency_count else None


@dataclass
class Cell:
    target: str
    status: str  # the item's status, or the run's when it has one
    output: str
    passed: bool | None
    results: list[dict]
    cost_nanousd: int
    judge_cost_nanousd: int
    tokens_in: int
    tokens_out: int
    latency_ms: int | None
    run_id: int | None
    error: str
    # (op, text) against the base target's output (`eval_result`); empty for the base.
    diff: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RowResult:
    position: int
    inputs: dict
    expected: object
    cells: list[Cell]

    @property
    def differs(self) -> bool:
        return len({c.output for c in self.cells}) > 1 or len({c.passed for c in self.cells}) > 1


@dataclass
class Comparison:
    """The last target against the first ("92 % → 97 %, cost −18 %")."""

    base: str
    other: str
    base_percent: float | None
    other_percent: float | None
    cost_change_percent: float | None
    latency_change_percent: float | None


@dataclass
class EvalResult:
    evaluation: Eval
    base: str
    totals: list[TargetTotals]
    rows: list[RowResult]
    comparison: Comparison | None
    # What it still holds of the month's budget for the rows not started yet.
    held_nanousd: int = 0

    @property
    def judge_cost_nanousd(self) -> int:
        return sum(t.judge_cost_nanousd for t in self.totals)

    @property
    def done(self) -> int:
        return sum(t.scored for t in self.totals)

    @property
    def total(self) -> int:
        return sum(t.rows for t in self.totals)


def _change(base: int | None, other: int | None) -> float | None:
    if not base or other is None:
        return None
    return round((other - base) * 100 / base, 1)


# Words on either side beyond which no diff is drawn: SequenceMatcher is
# quadratic, and outputs can be megabytes (an http step's answer).
DIFF_MAX_WORDS = 1_000


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """`b` against `a` word by word: ("same" | "added" | "removed", text); too
    long to compare at a glance, `b` as it is."""
    left, right = a.split(" "), b.split(" ")
    if len(left) > DIFF_MAX_WORDS or len(right) > DIFF_MAX_WORDS:
        return [("same", b)] if a == b else [("added", b)]
    parts: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("same", " ".join(left[i1:i2])))
            continue
        if i2 > i1:
            parts.append(("removed", " ".join(left[i1:i2])))
        if j2 > j1:
            parts.append(("added", " ".join(right[j1:j2])))
    return parts


def comparison_of(totals: list[TargetTotals]) -> Comparison | None:
    if len(totals) < 2:
        return None
    # The draft against the first version beside it (else the last target against the first).
    other = next((t for t in totals if t.target == "draft"), totals[-1])
    base = next(t for t in totals if t is not other)
    return Comparison(
        base=base.target,
        other=other.target,
        base_percent=base.pass_percent,
        other_percent=other.pass_percent,
        cost_change_percent=_change(base.cost_nanousd, other.cost_nanousd),
        latency_change_percent=_change(base.latency_ms_avg, other.latency_ms_avg),
    )


def eval_result(evaluation: Eval, *, with_rows: bool = True) -> EvalResult:
    """The figures of an eval, read in two queries (its items with their runs)."""
    items = list(
        EvalItem.objects.filter(eval=evaluation)
        .select_related("run")
        .only(
            *[f.name for f in EvalItem._meta.concrete_fields],
            "run__id",
            "run__status",
            "run__output",
            "run__error",
            "run__cost_nanousd",
            "run__tokens_in",
            "run__tokens_out",
            "run__started_at",
            "run__finished_at",
            "run__waited_ms",
            "run__waiting_since",
        )
        .order_by("position", "id")
    )
    order = {label: n for n, label in enumerate(evaluation.targets)}
    totals = {label: TargetTotals(label) for label in evaluation.targets}
    rows: dict[int, RowResult] = {}
    for item in items:
        run: Run | None = item.run
        latency = run.duration_ms if run is not None else None
        t = totals[item.target]
        t.rows += 1
        if item.status == EvalItem.Status.SCORED:
            t.scored += 1
            t.passed += bool(item.passed)
        t.judge_cost_nanousd += item.judge_cost_nanousd
        t.judge_tokens += item.judge_tokens
        if run is not None:
            t.cost_nanousd += run.cost_nanousd
            t.tokens_in += run.tokens_in
            t.tokens_out += run.tokens_out
            if latency is not None:
                t.latency_ms_total += latency
                t.latency_count += 1
        if not with_rows:
            continue
        row = rows.setdefault(
            item.position, RowResult(item.position, item.inputs, item.expected, [])
        )
        row.cells.append(
            Cell(
                target=item.target,
                status=run.status if run is not None else item.status,
                output=as_text(run.output) if run is not None else "",
                passed=item.passed,
                results=item.results,
                cost_nanousd=run.cost_nanousd if run is not None else 0,
                judge_cost_nanousd=item.judge_cost_nanousd,
                tokens_in=run.tokens_in if run is not None else 0,
                tokens_out=run.tokens_out if run is not None else 0,
                latency_ms=latency,
                run_id=run.id if run is not None else None,
                error=item.error or (run.error if run is not None else ""),
            )
        )
    # Outputs are diffed against the first version compared (else the first target).
    base = next((t for t in evaluation.targets if t != "draft"), evaluation.targets[0])
    for row in rows.values():
        row.cells.sort(key=lambda c: order.get(c.target, 99))
        base_output = next((c.output for c in row.cells if c.target == base), "")
        for cell in row.cells:
            if cell.target != base:
                cell.diff = word_diff(base_output, cell.output)
    ordered = [totals[label] for label in evaluation.targets]
    held = BudgetReservation.objects.filter(eval_id=evaluation.id).values_list(
        "amount_nanousd", flat=True
    )
    return EvalResult(
        evaluation, base, ordered, list(rows.values()), comparison_of(ordered), sum(held)
    )


@dataclass
class PublishEval:
    """What the publish panel shows: the draft's latest eval against the live version."""

    evaluation: Eval | None
    comparison: Comparison | None
    draft_percent: float | None
    required_percent: int | None
    # Why publishing would be refused (the rule's own words), "" when it would not.
    refusal: str = ""

    @property
    def blocks(self) -> bool:
        return bool(self.refusal)


def publish_eval(workflow: Workflow) -> PublishEval:
    evaluation, percent = services.draft_eval_percent(workflow)
    comparison = None
    if evaluation is not None:
        comparison = eval_result(evaluation, with_rows=False).comparison
    refusal = ""
    if workflow.workspace.publish_eval_min_percent is not None:
        try:
            services.publish_eval_check(workflow)
        except services.EvalRequired as e:
            refusal = str(e)
    return PublishEval(
        evaluation, comparison, percent, workflow.workspace.publish_eval_min_percent, refusal
    )
