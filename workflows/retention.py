"""Run retention: what a finished run keeps, for how long, and what deleting it does.

A run's **details** are what it was given and what it made: its inputs,
payload and output, each step's messages, output and state (a decision's
record), each map item's input, output and messages. Its **figures** are the
rest: the rows themselves, with status, trigger, starter, timestamps, error,
and every step's model, tokens, cost, latency and attempts.

- `runs_prune` (beat, nightly) blanks the details of finished runs older than
  their workspace's retention (`Workspace.run_retention_days_effective`: the
  owner's setting, capped by the operator's RUN_RETENTION_MAX_DAYS) and marks
  them `details_pruned_at`. The figures stay, so the usage page
  (workflows/billing/usage.py sums StepRun cost and tokens by day, workflow and
  starter, and evals' judges' cost kept on their EvalItem rows, which nothing here
  touches), the budget ledger (BudgetMonth, which no run row feeds after the
  call) and the audit log read the same before and after.
- `run_delete` and `workflow_runs_delete` (admins) do the same to the runs a
  member deletes, and mark them `deleted_at`: they leave every list, page and
  API answer (404), while their spend stays on the usage page and the budget.
  All of a workflow's runs may be many: the request
  (`workflow_runs_delete_request`) marks the workflow and sends the deletion
  to a worker on commit, which goes in batches like the prune.

Runs that are not finished (queued, running, waiting) are never touched, nor
is a finished child run whose parent is not finished yet (the parent reads
its output when it wakes). Work goes in batches of BATCH_SIZE runs, each its
own short transaction (UPDATE ... WHERE id IN (...)): no lock is held for
longer than one batch, and a prune stopped half-way is finished by the next.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Membership, Role, User, Workspace
from workflows import broker
from workflows.models import Run, StepItem, StepRun, Workflow

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# A deletion of a workflow's runs not done after this long is taken for lost (the broker lost
# its message, the worker died): the page offers it again, and asking again sends it again.
DELETE_STALE_AFTER = timedelta(minutes=15)
UNFINISHED = (Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.WAITING)


class RunNotDeletable(Exception):
    """The run is not finished (cancel it first): 409."""

    def __init__(self) -> None:
        super().__init__("This run has not finished: cancel it first, then delete it.")


class RunsBeingDeleted(Exception):
    """The workflow's runs are being deleted already (an earlier request): 409."""

    def __init__(self) -> None:
        super().__init__("The runs of this workflow are being deleted already.")


class NotAllowedToDelete(Exception):
    """Deleting runs needs the admin role: 403."""

    def __init__(self) -> None:
        super().__init__("Deleting runs needs the admin role or higher.")


def _prunable(runs: QuerySet[Run]) -> QuerySet[Run]:
    """Of `runs`, those whose details may go: finished, not pruned yet, and not the child of a
    run that has not finished (it reads its children's outputs when it wakes)."""
    return runs.filter(status__in=Run.FINISHED, details_pruned_at__isnull=True).exclude(
        Q(parent__isnull=False) & Q(parent__status__in=UNFINISHED)
    )


def _blank(run_ids: list[int], *, now: datetime, deleted: bool = False) -> int:
    """Blank the details of the runs `run_ids` that are still prunable, in one transaction.
    Returns how many runs were blanked (a run that got there first is not counted twice)."""
    with transaction.atomic():
        # The run's row first, conditionally: a run blanked meanwhile (a second prune, a
        # deletion) is skipped, and its steps are not touched twice.
        ids = list(
            _prunable(Run.objects.filter(id__in=run_ids))
            .select_for_update(of=("self",))
            .values_list("id", flat=True)
        )
        if not ids:
            return 0
        values: dict[str, object] = {
            "inputs": {},
            "payload": None,
            "output": None,
            "details_pruned_at": now,
        }
        if deleted:
            values["deleted_at"] = now
        Run.objects.filter(id__in=ids).update(**values)
        StepRun.objects.filter(run_id__in=ids).update(messages=None, output=None, state=None)
        StepItem.objects.filter(run_id__in=ids).update(input=None, output=None, messages=None)
        return len(ids)


def _blank_in_batches(runs: QuerySet[Run], *, now: datetime, deleted: bool = False) -> int:
    """Blank every prunable run of `runs`, BATCH_SIZE at a time (each its own transaction)."""
    total = 0
    after = 0
    while True:
        ids = list(
            _prunable(runs)
            .filter(id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:BATCH_SIZE]
        )
        if not ids:
            return total
        total += _blank(ids, now=now, deleted=deleted)
        after = ids[-1]


def retention_cutoff(workspace: Workspace, *, now: datetime | None = None) -> datetime:
    """Runs of `workspace` that finished before this have their details pruned."""
    return (now or timezone.now()) - timedelta(days=workspace.run_retention_days_effective)


def workspace_runs_prune(*, workspace: Workspace, now: datetime | None = None) -> int:
    """Blank the details of the workspace's runs that finished more than its retention ago.
    Returns how many runs were pruned; harmless to repeat (only runs not yet pruned count)."""
    now = now or timezone.now()
    due = Run.objects.filter(
        workspace=workspace, finished_at__lt=retention_cutoff(workspace, now=now)
    )
    return _blank_in_batches(due, now=now)


def runs_prune(*, now: datetime | None = None) -> int:
    """Beat's nightly prune over every workspace (see the module's docstring)."""
    now = now or timezone.now()
    total = 0
    for workspace in Workspace.objects.order_by("id").iterator():
        pruned = workspace_runs_prune(workspace=workspace, now=now)
        if pruned:
            log.info(
                "Pruned the details of %s runs of workspace %s (kept %s days)",
                pruned,
                workspace.id,
                workspace.run_retention_days_effective,
            )
        total += pruned
    return total


# Deleting ---------------------------------------------------------------------------------


def run_delete_allowed(membership: Membership) -> bool:
    return membership.allows(Role.ADMIN)


def run_delete(*, run: Run, membership: Membership | None = None) -> None:
    """Delete a finished run: its details are blanked and it leaves every list and page, while
    its figures stay for the usage page and the budget (see the module's docstring).
    Audit-logged as `run.delete`. Raises NotAllowedToDelete below the admin role (without a
    `membership`, the API's token, an admin's rights) and RunNotDeletable if it has not
    finished. A child of a run still waiting for it is not deletable either."""
    if membership is not None and not run_delete_allowed(membership):
        raise NotAllowedToDelete
    now = timezone.now()
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(id=run.id, deleted_at__isnull=True).first()
        if locked is None:
            return  # deleted meanwhile: nothing left to do
        if locked.status not in Run.FINISHED or (
            locked.parent_id is not None
            and Run.objects.filter(id=locked.parent_id, status__in=UNFINISHED).exists()
        ):
            raise RunNotDeletable
        if locked.details_pruned_at is None:
            _blank([locked.id], now=now, deleted=True)
        else:
            Run.objects.filter(id=locked.id).update(deleted_at=now)
        audit_record(
            workspace=run.workspace_id,
            actor=membership.user if membership is not None else None,
            action="run.delete",
            target=run,
            label=f"Run #{run.id} of {run.workflow.name}",
            before={"status": run.status, "cost_nanousd": run.cost_nanousd},
        )


def runs_deletion_under_way(workflow: Workflow, *, now: datetime | None = None) -> bool:
    """Whether the workflow's runs are being deleted (a request not yet stale)."""
    since = workflow.runs_deleting_since
    return since is not None and since > (now or timezone.now()) - DELETE_STALE_AFTER


def workflow_runs_delete_request(*, workflow: Workflow, membership: Membership | None) -> None:
    """Have every finished run of `workflow` deleted in the background: a worker's
    `workflow_runs_delete`, sent on commit with the workflow's id and who asked. Audit-logged
    at once as `workflow.runs_delete`, naming who asked. Raises NotAllowedToDelete below the
    admin role, and RunsBeingDeleted while an earlier request's deletion is under way (one
    conditional UPDATE claims it, so a double click sends one task)."""
    if membership is not None and not run_delete_allowed(membership):
        raise NotAllowedToDelete
    now = timezone.now()
    user = membership.user if membership is not None else None
    with transaction.atomic():
        claimed = (
            Workflow.objects.filter(id=workflow.id)
            .filter(
                Q(runs_deleting_since__isnull=True)
                | Q(runs_deleting_since__lte=now - DELETE_STALE_AFTER)
            )
            .update(runs_deleting_since=now)
        )
        if not claimed:
            raise RunsBeingDeleted
        workflow.runs_deleting_since = now
        audit_record(
            workspace=workflow.workspace_id,
            actor=user,
            action="workflow.runs_delete",
            target=workflow,
            after={"requested_at": now.isoformat()},
        )
        workflow_id, user_id = workflow.id, user.pk if user is not None else None
        transaction.on_commit(lambda: broker.workflow_runs_delete_send(workflow_id, user_id))


def workflow_runs_delete(*, workflow_id: int, requested_by_id: int | None) -> int:
    """The worker's part of `workflow_runs_delete_request`: delete every finished run of the
    workflow as `run_delete` does, BATCH_SIZE runs per transaction like the nightly prune;
    runs not finished are kept. Returns how many runs were deleted. Harmless to repeat (a
    redelivered message finds them deleted). Audit-logged when done as
    `workflow.runs_deleted`, with that number and who asked; the workflow's mark is cleared."""
    workflow = Workflow.objects.filter(id=workflow_id).first()
    if workflow is None:
        return 0  # the workflow was deleted meanwhile, and its runs with it
    now = timezone.now()
    runs = Run.objects.filter(workflow_id=workflow_id, deleted_at__isnull=True)
    deleted = _blank_in_batches(runs, now=now, deleted=True)
    # Runs pruned before were blanked already: only their mark is missing.
    deleted += _mark_deleted(
        runs.filter(status__in=Run.FINISHED, details_pruned_at__isnull=False), now=now
    )
    with transaction.atomic():
        Workflow.objects.filter(id=workflow_id).update(runs_deleting_since=None)
        requested_by = User.objects.filter(id=requested_by_id).first() if requested_by_id else None
        audit_record(
            workspace=workflow.workspace_id,
            actor=requested_by,
            action="workflow.runs_deleted",
            target=workflow,
            after={"runs_deleted": deleted},
        )
    log.info("Deleted %s runs of workflow %s", deleted, workflow_id)
    return deleted


def _mark_deleted(runs: QuerySet[Run], *, now: datetime) -> int:
    total = 0
    while True:
        ids = list(runs.order_by("id").values_list("id", flat=True)[:BATCH_SIZE])
        if not ids:
            return total
        total += Run.objects.filter(id__in=ids, deleted_at__isnull=True).update(deleted_at=now)
