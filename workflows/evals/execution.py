"""Starting an eval and moving it along.

Every row of an eval, for each target (the draft, a version), is an ordinary
run started by `services.run_start` with trigger "eval"; the workers execute
it like any run, with its calls held against the budget. The eval itself is
moved along by `eval_advance` (the task `workflows.eval_advance`, sent by id):

1. scores the rows whose run finished (each claimed by a conditional UPDATE
   started -> scoring, so two deliveries of the task never score a row twice
   nor pay its judge twice),
2. starts pending rows while fewer than the eval's concurrency are in flight
   (each claimed pending -> started first, so a redelivered task starts none twice),
3. finishes the eval when every row is scored, else sends itself again in
   EVAL_POLL_SECONDS.

Each pass stamps `advanced_at`; a lost message leaves the eval running until
its page or the API reads it, or the reaper looks (`evals_nudge_stalled`), and,
finding it still for STALLED, sends one again (`eval_nudge`). Two passes at once
(a nudge beside a re-send) are harmless: rows are claimed one by one; at most,
together they start a few more than the concurrency for a moment.

With a budget, the eval holds its estimate from the start (a BudgetReservation
with its `eval_id`): other work cannot spend the room it was promised while it
runs. Just before a row's run starts, the row's share of the estimate leaves
the hold, so the run's own calls, held one by one like any call, find it free;
a run or judge call of the eval that still waits for room (its worst case is
above the average the estimate used) is lent what it needs from the hold, so
the eval never waits for itself. What is left is released when it finishes or
is canceled, and by the budget's sweep once it is no longer running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Q, Sum
from django.utils import timezone

from accounts.models import BudgetReservation, User
from config.lib.json_storable import storable
from workflows import broker, services
from workflows.billing import budget
from workflows.billing.usage import month_budget
from workflows.builder.definition import InputError
from workflows.evals import judge
from workflows.evals.checks import Outcome, check_run
from workflows.llm import pricing
from workflows.models import Dataset, Eval, EvalItem, Run, Workflow, WorkflowVersion

log = logging.getLogger(__name__)

DRAFT = "draft"
EVAL_POLL_SECONDS = 2.0
# Runs whose cost is averaged for the estimate of a target.
ESTIMATE_SAMPLE = 50
STALLED = timedelta(seconds=30)


class EvalInvalid(Exception):
    """The eval cannot start as asked; the message says why."""


class EvalOverBudget(Exception):
    """The estimate exceeds what is left of the month's budget."""


@dataclass(frozen=True)
class Target:
    label: str  # "draft" or "v3"
    version: WorkflowVersion | None


@dataclass(frozen=True)
class Estimate:
    rows: int
    runs_nanousd: int
    judge_nanousd: int
    known: bool  # False: no past run to estimate the runs' cost from

    @property
    def total_nanousd(self) -> int:
        return self.runs_nanousd + self.judge_nanousd


def targets_of(workflow: Workflow, wanted: list[str | int]) -> list[Target]:
    """ "draft" and version numbers as targets; unknown versions refused."""
    if not wanted:
        raise EvalInvalid("Choose the draft or at least one version.")
    targets: list[Target] = []
    for item in wanted:
        if item == DRAFT:
            target = Target(DRAFT, None)
        else:
            try:
                number = int(item)
            except (TypeError, ValueError):
                raise EvalInvalid(f'{item!r} is neither "draft" nor a version number.') from None
            version = workflow.versions.filter(number=number).first()
            if version is None:
                raise EvalInvalid(f"This workflow has no version {number}.")
            target = Target(f"v{number}", version)
        if target.label not in [t.label for t in targets]:
            targets.append(target)
    if len(targets) > 4:
        raise EvalInvalid("An eval compares at most 4 targets.")
    return targets


def _average_run_cost(workflow: Workflow, version: WorkflowVersion | None) -> int | None:
    runs = Run.objects.filter(workflow=workflow, status=Run.Status.SUCCEEDED)
    if version is not None:
        same = runs.filter(version=version)
        if same.exists():
            runs = same
    ids = list(runs.order_by("-id").values_list("id", flat=True)[:ESTIMATE_SAMPLE])
    if not ids:
        return None
    average = Run.objects.filter(id__in=ids).aggregate(a=Avg("cost_nanousd"))["a"]
    return int(average or 0)


def estimate(*, workflow: Workflow, dataset: Dataset, targets: list[Target]) -> Estimate:
    """What the eval should cost: each target's average cost over its recent runs (the
    draft: the workflow's) times the rows, plus each judge check's worst case per row."""
    rows = dataset.rows.count()
    known = True
    runs_total = 0
    for target in targets:
        average = _average_run_cost(workflow, target.version)
        if average is None:
            known = False
            average = 0
        runs_total += average * rows
    judges = workflow.eval_checks.filter(kind="llm_judge").count()
    per_judge = pricing.worst_case_nanousd(
        model=judge.JUDGE_MODEL, prompt_tokens=1000, max_tokens=judge.MAX_TOKENS
    )
    return Estimate(rows, runs_total, judges * per_judge * rows * len(targets), known)


def eval_start(
    *,
    workflow: Workflow,
    dataset: Dataset,
    versions: list[str | int],
    concurrency: int,
    user: User | None,
) -> Eval:
    """Create the eval with a row per dataset row and target, and send it to the workers.

    With a budget, its estimate is held from now on (see above); refused (EvalOverBudget)
    when the estimate does not fit in what the month's budget has left, unspent and unheld."""
    if dataset.workflow_id != workflow.id:
        raise EvalInvalid("The dataset belongs to another workflow.")
    if not 1 <= concurrency <= settings.EVAL_MAX_CONCURRENCY:
        raise EvalInvalid(f"Concurrency must be between 1 and {settings.EVAL_MAX_CONCURRENCY}.")
    targets = targets_of(workflow, versions)
    if any(t.label == DRAFT for t in targets):
        services.definition_parse(workflow.definition, workflow=workflow)  # WorkflowInvalid
    cost = estimate(workflow=workflow, dataset=dataset, targets=targets)
    workspace = workflow.workspace
    ledger_id = None
    if workspace.budget_nanousd is not None and cost.total_nanousd > 0:
        ledger_id = budget.ledger_swept(workspace.id)
    checks = [
        {"name": c.name, "kind": c.kind, "config": c.config} for c in workflow.eval_checks.all()
    ]
    rows = list(dataset.rows.all())
    if not rows:
        raise EvalInvalid("The dataset has no rows.")
    with transaction.atomic():
        evaluation = Eval.objects.create(
            workspace_id=workflow.workspace_id,
            workflow=workflow,
            dataset=dataset,
            dataset_name=dataset.name,
            targets=[t.label for t in targets],
            draft_revision=workflow.draft_revision
            if any(t.version is None for t in targets)
            else None,
            checks=checks,
            concurrency=concurrency,
            estimate_nanousd=cost.total_nanousd,
            created_by=user,
        )
        EvalItem.objects.bulk_create(
            EvalItem(
                eval=evaluation,
                position=row.position,
                target=target.label,
                version=target.version,
                inputs=row.inputs,
                expected=row.expected,
            )
            for row in rows
            for target in targets
        )
        if ledger_id is not None:
            # Last, so the ledger row is locked only until this commits.
            held = budget.decide(
                workspace_id=workspace.id,
                ledger_id=ledger_id,
                amount_nanousd=cost.total_nanousd,
                run_id=None,
                eval_id=evaluation.id,
            )
            if not isinstance(held, budget.Reservation):
                left = month_budget(workspace).free_nanousd or 0
                raise EvalOverBudget(  # rolls the eval back
                    f"This eval is estimated at {pricing.format_usd(cost.total_nanousd)}; the "
                    f"budget has {pricing.format_usd(left)} left this month that is neither "
                    "spent nor held by calls in flight."
                )
        transaction.on_commit(lambda: broker.eval_send(evaluation.id))
    return evaluation


def _release(evaluation: Eval, amount_nanousd: int | None = None) -> int:
    """Take `amount_nanousd` (None: all) off the eval's hold; returns what was released."""
    hold_id = (
        BudgetReservation.objects.filter(eval_id=evaluation.id).values_list("id", flat=True).first()
    )
    if hold_id is None:
        return 0
    if amount_nanousd is None:
        amount_nanousd = evaluation.estimate_nanousd
    return budget.release_part(hold_id, amount_nanousd)


def _lend_to_parked(evaluation: Eval) -> int:
    """Lend the eval's runs that wait for budget what they need from its hold: runs
    parked for it, and running ones whose map items wait for it (workflows/runtime/items.py).
    The runs of its rows and their child runs (a workflow or map step's, `root`): a row's run
    waiting for a child is not the one waiting for budget."""
    # Read first (at most the eval's concurrency, give or take a pass): as a subquery under
    # an OR, PostgreSQL would scan every run instead of using the two indexes.
    rows = list(
        evaluation.items.filter(status=EvalItem.Status.STARTED, run__isnull=False).values_list(
            "run_id", flat=True
        )
    )
    if not rows:
        return 0
    needed = (
        Run.objects.filter(Q(id__in=rows) | Q(root_id__in=rows))
        .filter(budget_needed_nanousd__isnull=False)
        .filter(
            Q(status=Run.Status.WAITING, waiting_for=Run.WaitingFor.BUDGET)
            | Q(status=Run.Status.RUNNING)
        )
        .aggregate(n=Sum("budget_needed_nanousd"))["n"]
    )
    return _release(evaluation, needed) if needed else 0


def _outcome(item: EvalItem, run: Run) -> Outcome:
    return Outcome(
        succeeded=run.status == Run.Status.SUCCEEDED,
        output=run.output,
        error=run.error or run.status,
        cost_nanousd=run.cost_nanousd,
        latency_ms=run.duration_ms,
        expected=item.expected,
    )


def _score(evaluation: Eval, item: EvalItem) -> None:
    """Run every check on a claimed item whose run finished.

    A judge call that must wait for budget (BudgetBusy) stops the scoring; the checks
    done so far are kept on the item, so the next pass goes on from there and pays no
    judge twice."""
    run = Run.objects.get(id=item.run_id) if item.run_id else None
    results: list[dict[str, object]] = list(item.results or [])
    judge_cost = item.judge_cost_nanousd
    judge_tokens = item.judge_tokens
    for check in evaluation.checks[len(results) :]:
        kind, config = check["kind"], check["config"]
        if run is None:
            passed, reason = False, item.error or "the row did not run"
        elif kind == "llm_judge":
            if run.status != Run.Status.SUCCEEDED:
                passed, reason = False, f"the run failed: {run.error}"[:300]
            else:
                try:
                    judged = judge.judge(
                        workspace_id=evaluation.workspace_id,
                        rubric=config["rubric"],
                        inputs=item.inputs,
                        expected=item.expected,
                        output=run.output,
                    )
                except budget.BudgetExhausted:
                    passed, reason = False, "not judged: the workspace budget is exhausted"
                except budget.BudgetBusy:
                    EvalItem.objects.filter(id=item.id).update(
                        results=results, judge_cost_nanousd=judge_cost, judge_tokens=judge_tokens
                    )
                    raise
                else:
                    passed, reason = judged.verdict.passed, judged.verdict.reason
                    judge_cost += judged.cost_nanousd
                    judge_tokens += judged.tokens
        else:
            verdict = check_run(kind, config, _outcome(item, run))
            passed, reason = verdict.passed, verdict.reason
        # A judge's reason is a model's text: NUL becomes U+FFFD, as in what steps produce.
        reason = storable(reason)
        results.append({"name": check["name"], "kind": kind, "passed": passed, "reason": reason})
    succeeded = run is not None and run.status == Run.Status.SUCCEEDED
    item.results = results
    item.passed = succeeded and all(r["passed"] for r in results)
    item.judge_cost_nanousd = judge_cost
    item.judge_tokens = judge_tokens
    # The usage page counts the judge's cost on this day (workflows/billing/usage.py).
    item.scored_at = timezone.now()
    item.status = EvalItem.Status.SCORED
    item.save(
        update_fields=[
            "results",
            "passed",
            "judge_cost_nanousd",
            "judge_tokens",
            "scored_at",
            "status",
        ]
    )


def _score_finished(evaluation: Eval) -> bool:
    """Score each item whose run has finished; False when the budget was busy (try later)."""
    # A row whose run could not start has its error and no run; a row being started by a
    # concurrent pass has neither yet, and is left alone.
    finished = evaluation.items.filter(
        status=EvalItem.Status.STARTED, run__status__in=Run.FINISHED
    ) | evaluation.items.filter(status=EvalItem.Status.STARTED, run__isnull=True).exclude(error="")
    for item in list(finished):
        claimed = EvalItem.objects.filter(id=item.id, status=EvalItem.Status.STARTED).update(
            status=EvalItem.Status.SCORING
        )
        if claimed != 1:
            continue
        try:
            _score(evaluation, item)
        except budget.BudgetBusy as e:
            EvalItem.objects.filter(id=item.id).update(status=EvalItem.Status.STARTED)
            _release(evaluation, e.needed_nanousd)  # the next pass finds the room
            return False
    return True


def _start_pending(evaluation: Eval) -> int:
    in_flight = (
        evaluation.items.filter(status=EvalItem.Status.STARTED, run__isnull=False)
        .exclude(run__status__in=Run.FINISHED)
        .count()
    )
    room = evaluation.concurrency - in_flight
    started = 0
    if room <= 0:
        return 0
    workflow = evaluation.workflow
    share = None
    for item in evaluation.items.filter(status=EvalItem.Status.PENDING)[:room]:
        if (
            EvalItem.objects.filter(
                id=item.id, status=EvalItem.Status.PENDING, eval__status=Eval.Status.RUNNING
            ).update(status=EvalItem.Status.STARTED)
            != 1
        ):
            continue
        if share is None:
            share = evaluation.estimate_nanousd // max(1, evaluation.items.count())
        if share:
            _release(evaluation, share)
        try:
            with transaction.atomic():
                run = services.run_start(
                    workflow=workflow,
                    trigger=Run.Trigger.EVAL,
                    inputs=item.inputs,
                    user=evaluation.created_by,
                    version=item.version,
                    draft=item.target == DRAFT,
                )
                EvalItem.objects.filter(id=item.id).update(run=run)
        except (InputError, services.WorkflowInvalid, services.NotPublished) as e:
            EvalItem.objects.filter(id=item.id).update(error=str(e)[:1000] or "not started")
        else:
            # A cancel that committed after this row was claimed did not see its run
            # (`eval_cancel` reads the rows' runs after it stops the eval): cancel it here.
            if not Eval.objects.filter(id=evaluation.id, status=Eval.Status.RUNNING).exists():
                services.run_cancel(run=run)
                return started + 1
        started += 1
    return started


def eval_advance(eval_id: int) -> None:
    """Score what finished, start what fits, finish or look again later (see above)."""
    evaluation = (
        Eval.objects.select_related("workflow", "workflow__workspace", "created_by")
        .filter(id=eval_id, status=Eval.Status.RUNNING)
        .first()
    )
    if evaluation is None:
        return
    Eval.objects.filter(id=eval_id).update(advanced_at=timezone.now())
    while True:
        _score_finished(evaluation)
        # In eager mode (tests, `run_workflow`) a run finishes inside run_start.
        if not _start_pending(evaluation):
            break
    _score_finished(evaluation)
    if not evaluation.items.exclude(status=EvalItem.Status.SCORED).exists():
        Eval.objects.filter(id=eval_id, status=Eval.Status.RUNNING).update(
            status=Eval.Status.FINISHED, finished_at=timezone.now()
        )
        _release(evaluation)
        return
    _lend_to_parked(evaluation)
    broker.eval_send(eval_id, countdown=EVAL_POLL_SECONDS)


def eval_cancel(*, evaluation: Eval) -> bool:
    """Stop starting rows and cancel the eval's runs in flight."""
    if (
        Eval.objects.filter(id=evaluation.id, status=Eval.Status.RUNNING).update(
            status=Eval.Status.CANCELED, finished_at=timezone.now()
        )
        != 1
    ):
        return False
    for run in Run.objects.filter(
        id__in=evaluation.items.values("run_id"),
        status__in=[Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.WAITING],
    ):
        services.run_cancel(run=run)
    _release(evaluation)
    return True


def eval_nudge(evaluation: Eval) -> None:
    """Send `eval_advance` again for a running eval nothing moved for STALLED (its
    message lost, a worker killed): the result page and the API call this when read."""
    if evaluation.status != Eval.Status.RUNNING:
        return
    if (evaluation.advanced_at or evaluation.created_at) < timezone.now() - STALLED:
        broker.eval_send(evaluation.id)


def evals_nudge_stalled() -> int:
    """For the reaper: nudge every running eval nothing moved for STALLED, so one
    whose message was lost ends (and releases its budget hold) unread. Returns how many."""
    stalled_before = timezone.now() - STALLED
    stalled = Eval.objects.filter(
        status=Eval.Status.RUNNING, created_at__lt=stalled_before
    ).exclude(advanced_at__gte=stalled_before)
    ids = list(stalled.values_list("id", flat=True)[:100])
    for eval_id in ids:
        broker.eval_send(eval_id)
    return len(ids)
