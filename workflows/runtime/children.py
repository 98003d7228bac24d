"""Starting child runs: the runs of other workflows that a `workflow` or a
`map` step waits for.

They are created inside the transaction that parks their parent's step, so
a parent starts each child exactly once (a crash before that commit starts
none, and the step starts them again; after it, the step is parked with
them). A child is a run like any other (its own page, trigger `workflow`),
sent to the workers on commit; it knows its parent, step and item, and when
it finishes its parent is woken (workflows/runtime/waking.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows import broker, sql
from workflows.builder.definition import InputError, coerce_inputs
from workflows.models import Run, StepItem, Workflow, WorkflowVersion
from workflows.runtime.parsing import parsed
from workflows.steps.context import ChildSpec, StepFailed

# A run called by a run called by ... at most this many levels below a top-level run.
MAX_CALL_DEPTH = 5


def start(parent: Run, step_key: str, specs: list[ChildSpec]) -> list[int]:
    """Inside the caller's transaction: create the child runs of `specs` and
    send them on commit. Raises StepFailed when a called workflow is not
    there (deleted, archived, never published, another workspace's) or its
    inputs do not fit."""
    if not specs:
        return []
    if parent.depth >= MAX_CALL_DEPTH:
        raise StepFailed(
            f"Workflows can call workflows at most {MAX_CALL_DEPTH} levels deep; "
            "this run is already that deep."
        )
    workflows = {
        workflow.id: workflow
        for workflow in Workflow.objects.filter(
            id__in={spec.workflow_id for spec in specs},
            workspace_id=parent.workspace_id,
            archived_at__isnull=True,
        )
    }
    versions: dict[tuple[int, int | None], WorkflowVersion] = {}
    now = timezone.now()
    runs: list[Run] = []
    for spec in specs:
        workflow = workflows.get(spec.workflow_id)
        if workflow is None:
            raise StepFailed(
                f"Workflow #{spec.workflow_id} is not a workflow of this workspace "
                "(deleted or archived?)."
            )
        version = versions.get((spec.workflow_id, spec.version))
        if version is None:
            version = _version(workflow, spec.version)
            versions[(spec.workflow_id, spec.version)] = version
        definition = parsed(version.definition)
        try:
            inputs = coerce_inputs(definition, spec.inputs)
        except InputError as e:
            raise StepFailed(f"Inputs for “{workflow.name}” do not fit. {e}") from None
        runs.append(
            Run(
                workspace_id=parent.workspace_id,
                workflow=workflow,
                version=version,
                definition=version.definition,
                trigger=Run.Trigger.WORKFLOW,
                inputs=inputs,
                created_by_id=parent.created_by_id,
                api_token_id=parent.api_token_id,
                parent=parent,
                parent_step=step_key,
                parent_item=spec.item,
                depth=parent.depth + 1,
                root_id=parent.root_id or parent.id,
                enqueued_at=now,
            )
        )
    # Counted on the top-level run after every check above, before any child
    # exists: a step past the cap starts none of this batch.
    root_id = parent.root_id or parent.id
    cap = settings.RUN_MAX_DESCENDANTS
    if not sql.run_descendants_add(root_id=root_id, count=len(runs), cap=cap):
        raise StepFailed(
            f"Starting {len(runs)} more sub-workflow run{'s' if len(runs) != 1 else ''} "
            f"would take top-level run #{root_id} past {cap:,} runs started below it "
            "(nested workflow and map steps multiply). The server's RUN_MAX_DESCENDANTS "
            "setting raises this limit."
        )
    created = Run.objects.bulk_create(runs)
    ids = [run.id for run in created]
    # A map's items: each its row, linked to its run (kept in step with it by
    # waking.child_finished).
    StepItem.objects.bulk_create(
        [
            StepItem(
                run=parent,
                step_key=step_key,
                index=spec.item,
                status=StepItem.Status.RUNNING,
                input=spec.item_input,
                child_run_id=run_id,
                attempts=1,
                started_at=now,
            )
            for spec, run_id in zip(specs, ids, strict=True)
            if spec.item is not None
        ]
    )
    transaction.on_commit(lambda: _send(ids))
    return ids


def _version(workflow: Workflow, number: int | None) -> WorkflowVersion:
    if number is None:
        version = sql.workflow_latest_version(workflow_id=workflow.id)
        if version is None:
            raise StepFailed(f"“{workflow.name}” has no published version yet.")
        return version
    found = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
    if found is None:
        raise StepFailed(f"“{workflow.name}” has no version {number}.")
    return found


def _send(ids: list[int]) -> None:
    for run_id in ids:
        broker.run_send(run_id)
