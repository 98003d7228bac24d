"""Writes for workflows and runs. Views, the API, commands and tests call these.

Each service is keyword-only and atomic; a run is enqueued only after its
transaction commits, so a worker never looks for a row that is not there yet.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User, Workspace
from workflows.definition import Definition, InputError, Issue, coerce_inputs, validate_definition
from workflows.models import Run, StepRun, Workflow, WorkflowVersion


class WorkflowInvalid(Exception):
    """The definition does not validate; `issues` name each step and field."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{i.step or 'workflow'}.{i.field}: {i.message}" for i in issues))
        self.issues = issues


class NotPublished(Exception):
    pass


def allowed_models() -> dict[str, int]:
    return {name: info["max_output_tokens"] for name, info in settings.LLM_MODELS.items()}


def definition_check(data: object) -> tuple[Definition | None, list[Issue]]:
    return validate_definition(data, models=allowed_models())


def definition_parse(data: object) -> Definition:
    """The validated definition, or WorkflowInvalid."""
    definition, issues = definition_check(data)
    if issues or definition is None:
        raise WorkflowInvalid(issues)
    return definition


@transaction.atomic
def workflow_create(*, workspace: Workspace, definition: dict, user: User | None) -> Workflow:
    """A new workflow whose draft is `definition` (validated: drafts from outside must be sound)."""
    parsed = definition_parse(definition)
    workflow = Workflow.objects.create(
        workspace=workspace,
        name=parsed.name,
        description=parsed.description,
        definition=parsed.model_dump(mode="json", by_alias=True),
        created_by=user,
    )
    audit_record(workspace=workspace, actor=user, action="workflow.create", target=workflow,
                 after=workflow.definition)
    return workflow


@transaction.atomic
def workflow_save_draft(*, workflow: Workflow, definition: dict, user: User | None) -> list[Issue]:
    """Store the draft as given, even when it does not validate: an edit is never lost.

    The issues are returned for the editor to show; publishing refuses them.
    """
    parsed, issues = definition_check(definition)
    before = workflow.definition
    workflow.definition = parsed.model_dump(mode="json", by_alias=True) if parsed and not issues else definition
    if parsed is not None:
        workflow.name = parsed.name
        workflow.description = parsed.description
    workflow.updated_at = timezone.now()
    workflow.save(update_fields=["definition", "name", "description", "updated_at"])
    if before != workflow.definition:
        audit_record(workspace=workflow.workspace_id, actor=user, action="workflow.edit", target=workflow,
                     before=before, after=workflow.definition)
    return issues


@transaction.atomic
def workflow_publish(*, workflow: Workflow, user: User | None, summary: str = "") -> WorkflowVersion:
    """Snapshot the draft as the next immutable version (refused if it does not validate)."""
    parsed = definition_parse(workflow.definition)
    # Lock the workflow row so two publishers cannot take the same number.
    Workflow.objects.select_for_update().filter(id=workflow.id).first()
    last = workflow.versions.aggregate(n=Max("number"))["n"] or 0
    version = WorkflowVersion.objects.create(
        workflow=workflow,
        number=last + 1,
        definition=parsed.model_dump(mode="json", by_alias=True),
        summary=summary,
        author=user,
    )
    audit_record(workspace=workflow.workspace_id, actor=user, action="workflow.publish", target=workflow,
                 after={"version": version.number, "summary": summary})
    return version


@transaction.atomic
def workflow_delete(*, workflow: Workflow, user: User | None) -> None:
    """Delete a workflow with its versions and runs (the audit log keeps its last definition)."""
    audit_record(workspace=workflow.workspace_id, actor=user, action="workflow.delete", target=workflow,
                 before=workflow.definition)
    workflow.delete()


@transaction.atomic
def workflow_import(*, workspace: Workspace, definition: dict, user: User | None) -> Workflow:
    """Create the workflow, or replace the draft of the one with the same name."""
    parsed = definition_parse(definition)
    existing = workspace.workflows.select_for_update().filter(name=parsed.name).first()
    if existing is None:
        return workflow_create(workspace=workspace, definition=definition, user=user)
    workflow_save_draft(workflow=existing, definition=definition, user=user)
    return existing


def latest_version(workflow: Workflow) -> WorkflowVersion | None:
    return workflow.versions.order_by("-number").first()


def run_start(
    *,
    workflow: Workflow,
    trigger: str,
    inputs: dict[str, object],
    user: User | None = None,
    version: WorkflowVersion | None = None,
    draft: bool = False,
    idempotency_key: str | None = None,
    payload: object = None,
) -> Run:
    """Create a run and enqueue it once committed.

    Runs the draft when `draft`, else `version` or the latest published one.
    Raises WorkflowInvalid, NotPublished, or InputError naming the missing or
    malformed inputs, before anything is created. With an `idempotency_key`,
    a second call with the same key returns the first run and starts nothing,
    also under concurrency (a unique constraint decides, not a prior check).
    """
    if draft:
        definition_data = workflow.definition
        version = None
    else:
        version = version or latest_version(workflow)
        if version is None:
            raise NotPublished("This workflow has no published version yet. Publish it first.")
        definition_data = version.definition
    definition = definition_parse(definition_data)
    if idempotency_key:
        existing = Run.objects.filter(workflow=workflow, idempotency_key=idempotency_key).first()
        if existing:
            return existing
    coerced = coerce_inputs(definition, inputs)
    try:
        with transaction.atomic():
            run = Run.objects.create(
                workspace_id=workflow.workspace_id,
                workflow=workflow,
                version=version,
                definition=definition.model_dump(mode="json", by_alias=True),
                trigger=trigger,
                inputs=coerced,
                payload=payload,
                created_by=user,
                idempotency_key=idempotency_key or None,
            )
            _enqueue_on_commit(run.id)
    except IntegrityError:
        if not idempotency_key:
            raise
        return Run.objects.get(workflow=workflow, idempotency_key=idempotency_key)
    return run


def _enqueue_on_commit(run_id: int) -> None:
    from workflows.tasks import run_execute

    transaction.on_commit(lambda: run_execute.delay(run_id))


@transaction.atomic
def run_resume(*, run: Run, user: User | None) -> Run:
    """A new run of the same definition and inputs that reuses the finished steps.

    Steps that succeeded in `run` are copied as reused (not called, not paid
    again); execution starts at the first step that did not finish.
    """
    new = Run.objects.create(
        workspace_id=run.workspace_id,
        workflow_id=run.workflow_id,
        version_id=run.version_id,
        definition=run.definition,
        trigger=run.trigger,
        inputs=run.inputs,
        payload=run.payload,
        created_by=user,
        resumed_from=run,
    )
    StepRun.objects.bulk_create(
        StepRun(
            run=new,
            key=step.key,
            position=step.position,
            type=step.type,
            status=StepRun.Status.SUCCEEDED,
            messages=step.messages,
            output=step.output,
            model=step.model,
            reused=True,
            started_at=step.started_at,
            finished_at=step.finished_at,
            latency_ms=step.latency_ms,
        )
        for step in run.steps.filter(status=StepRun.Status.SUCCEEDED)
    )
    _enqueue_on_commit(new.id)
    return new


def run_cancel(*, run: Run) -> bool:
    """Cancel a queued or running run. A step in flight finishes and is recorded."""
    return (
        Run.objects.filter(id=run.id, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).update(
            status=Run.Status.CANCELED, finished_at=timezone.now(), error="Canceled."
        )
        == 1
    )


__all__ = [
    "InputError",
    "NotPublished",
    "WorkflowInvalid",
    "run_cancel",
    "run_resume",
    "run_start",
    "workflow_create",
    "workflow_delete",
    "workflow_import",
    "workflow_publish",
    "workflow_save_draft",
]
