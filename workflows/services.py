"""Writes for workflows and runs. Views, the API, commands and tests call these.

Each service is keyword-only and atomic; a run is enqueued only after its
transaction commits, so a worker never looks for a row that is not there yet.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditEntry, Membership, Role, User, Workspace
from workflows import broker, sql
from workflows.builder import draft_changes
from workflows.builder.definition import (
    Definition,
    InputError,
    Issue,
    coerce_inputs,
    run_output_schema,
    validate_definition,
)
from workflows.models import (
    ApiToken,
    EditorPresence,
    Eval,
    EvalItem,
    Run,
    StepItem,
    StepRun,
    Workflow,
    WorkflowVersion,
)
from workflows.runtime import dispatch, waking
from workflows.runtime.children import MAX_CALL_DEPTH
from workflows.steps import kind_of, module_for, starts_runs
from workflows.steps.decisions import (
    MAX_COMMENT,
    decision_of,
    iso,
    may_decide,
    output_of,
    parse_iso,
)

log = logging.getLogger(__name__)


class WorkflowInvalid(Exception):
    """The definition does not validate; `issues` name each step and field."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(
            "; ".join(f"{i.step or 'workflow'}.{i.field}: {i.message}" for i in issues)
        )
        self.issues = issues


class NotPublished(Exception):
    pass


def allowed_models() -> dict[str, int]:
    return {name: info["max_output_tokens"] for name, info in settings.LLM_MODELS.items()}


def definition_check(
    data: object, *, workflow: Workflow | None = None, workspace_id: int | None = None
) -> tuple[Definition | None, list[Issue]]:
    """Validate a definition. In a workspace (`workspace_id`, or that of
    `workflow`), the fields later steps read from a called workflow's output
    are checked against what it outputs; as the draft of `workflow`, the
    workflows its steps call are checked too (see `call_issues`)."""
    if workflow is not None:
        workspace_id = workflow.workspace_id
    called = _called_schemas(workspace_id, data) if workspace_id is not None else None
    definition, issues = validate_definition(data, models=allowed_models(), called_schemas=called)
    if workflow is not None and definition is not None:
        issues += call_issues(workflow, definition)
    return definition, issues


def _call_targets(data: object) -> dict[int, int | None]:
    """The workflows a raw definition's steps call: id -> pinned version (None: the latest)."""
    steps = data.get("steps") if isinstance(data, dict) else None
    wanted: dict[int, int | None] = {}
    for step in steps if isinstance(steps, list) else []:
        kind = kind_of(step)
        target = step.get("workflow") if isinstance(step, dict) else None
        if kind is not None and hasattr(kind, "calls") and isinstance(target, int) and target > 0:
            version = step.get("version")
            wanted[target] = version if isinstance(version, int) else None
    return wanted


def _called_schemas(workspace_id: int, data: object) -> dict[int, dict[str, Any] | None]:
    """The output schemas of the workflows a definition's steps call (None: text),
    as the versions that would run declare them.

    A called id that is no published workflow of `workspace_id` (another
    workspace's, deleted, never published) gets the schema that allows any
    field: what its output holds cannot be known, and the call itself is what
    is wrong (`call_issues` says so in the same words whoever's id it is; at
    run time the step fails, see runtime/children.py). So an import keeps
    such a step instead of refusing the fields read from it, and a published
    version whose called workflow was deleted since still starts."""
    wanted = _call_targets(data)
    if not wanted:
        return {}
    targets = Workflow.objects.filter(workspace_id=workspace_id, id__in=wanted)
    schemas: dict[int, dict[str, Any] | None] = {target: {} for target in wanted}
    for target in targets:
        called = _called_definition(target, wanted[target.id])
        if called is not None:
            schemas[target.id] = run_output_schema(called)
    return schemas


def definition_parse(
    data: object, *, workflow: Workflow | None = None, workspace_id: int | None = None
) -> Definition:
    """The validated definition, or WorkflowInvalid (see `definition_check`)."""
    definition, issues = definition_check(data, workflow=workflow, workspace_id=workspace_id)
    if issues or definition is None:
        raise WorkflowInvalid(issues)
    return definition


def _calls(definition: Definition) -> list[tuple[str, int, int | None]]:
    """The workflows a definition's steps run: (step key, workflow id, pinned version)."""
    found: list[tuple[str, int, int | None]] = []
    for step in definition.steps:
        calls = getattr(module_for(step), "calls", None)
        if calls is not None:
            found += [(step.key, target, version) for target, version in calls(step) if target]
    return found


def _called_definition(target: Workflow, version: int | None) -> Definition | None:
    found = (
        sql.workflow_latest_version(workflow_id=target.id)
        if version is None
        else WorkflowVersion.objects.filter(workflow=target, number=version).first()
    )
    return version_definition(found) if found is not None else None


def call_issues(workflow: Workflow, definition: Definition) -> list[Issue]:
    """What is wrong with the workflows `definition` (the draft of `workflow`)
    runs: one not of its workspace, archived, unpublished or without the
    pinned version; inputs it does not have or required ones not given; a
    call cycle (A runs B runs A, through any versions that would run); calls
    nested deeper than MAX_CALL_DEPTH."""
    issues: list[Issue] = []
    targets = {
        target.id: target
        for target in Workflow.objects.filter(
            workspace_id=workflow.workspace_id,
            id__in={target for _, target, _ in _calls(definition)},
        )
    }
    for key, target_id, version in _calls(definition):
        target = targets.get(target_id)
        if target is None:
            issues.append(
                Issue(key, "workflow", f"Workflow #{target_id} is not in this workspace.")
            )
            continue
        if target.id == workflow.id:
            issues.append(Issue(key, "workflow", "A workflow cannot run itself."))
            continue
        if target.archived_at is not None:
            issues.append(Issue(key, "workflow", f"“{target.name}” is archived."))
            continue
        called = _called_definition(target, version)
        if called is None:
            message = (
                f"“{target.name}” has no published version yet; publish it first."
                if version is None
                else f"“{target.name}” has no version {version}."
            )
            issues.append(Issue(key, "version" if version else "workflow", message))
            continue
        issues += _input_issues(key, target, called, definition)
        problem = _call_chain_problem(
            called,
            [workflow.id, target.id],
            {workflow.id: workflow.name, target.id: target.name},
            workspace_id=workflow.workspace_id,
        )
        if problem:
            issues.append(Issue(key, "workflow", problem))
    return issues


def _input_issues(
    key: str, target: Workflow, called: Definition, caller: Definition
) -> list[Issue]:
    step = next(step for step in caller.steps if step.key == key)
    given = set(getattr(step, "inputs", None) or {})
    names = {spec.name for spec in called.inputs}
    issues = [
        Issue(key, f"inputs.{name}", f"“{target.name}” has no input “{name}”.")
        for name in sorted(given - names)
    ]
    missing = [
        spec.name
        for spec in called.inputs
        if spec.required and spec.default is None and spec.name not in given
    ]
    if missing:
        issues.append(
            Issue(
                key,
                "inputs",
                f"“{target.name}” needs {', '.join(missing)}: map them from variables.",
            )
        )
    return issues


def _call_chain_problem(
    definition: Definition, chain: list[int], names: dict[int, str], *, workspace_id: int
) -> str:
    """Walk the calls below `definition` (reached through `chain`): a cycle or too deep.
    Only the workspace's workflows are walked: another workspace's, named in a
    version stored before its calls were checked, is neither named nor read."""
    if len(chain) - 1 > MAX_CALL_DEPTH:
        return f"Workflows would run workflows more than {MAX_CALL_DEPTH} levels deep."
    calls = _calls(definition)
    if not calls:
        return ""
    targets = {
        target.id: target
        for target in Workflow.objects.filter(
            workspace_id=workspace_id, id__in={t for _, t, _ in calls}
        )
    }
    for _, target_id, version in calls:
        target = targets.get(target_id)
        if target is None:
            continue  # its own validation says so when it runs
        names[target.id] = target.name
        if target_id in chain:
            path = " → ".join(
                names.get(id_, f"#{id_}") for id_ in [*chain[chain.index(target_id) :], target_id]
            )
            return f"This would make a cycle: {path}."
        called = _called_definition(target, version)
        if called is not None:
            problem = _call_chain_problem(
                called, [*chain, target_id], names, workspace_id=workspace_id
            )
            if problem:
                return problem
    return ""


class WorkflowNameTaken(Exception):
    """Another workflow of the workspace has this name (names are unique in a workspace)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"A workflow named “{name}” already exists in this workspace.")
        self.name = name


def workflow_name_check(*, workflow: Workflow, name: str) -> None:
    """Raises WorkflowNameTaken if another workflow of `workflow`'s workspace is called `name`."""
    if (
        Workflow.objects.filter(workspace_id=workflow.workspace_id, name=name)
        .exclude(id=workflow.id)
        .exists()
    ):
        raise WorkflowNameTaken(name)


@transaction.atomic
def workflow_create(*, workspace: Workspace, definition: dict, user: User | None) -> Workflow:
    """A new workflow whose draft is `definition` (validated: drafts from outside must be sound).
    Raises WorkflowNameTaken if the workspace has a workflow of that name.

    What its steps call is not a reason to refuse it: a step calling a
    workflow that is not a published one of this workspace (an import from
    another workspace, a deleted workflow) is kept, and the draft's issues
    (`definition_check` with the workflow) say so until someone picks one in
    the editor; it cannot be published or run before."""
    parsed = definition_parse(definition, workspace_id=workspace.id)
    if workspace.workflows.filter(name=parsed.name).exists():
        raise WorkflowNameTaken(parsed.name)
    try:
        with transaction.atomic():  # a savepoint: a concurrent create of the name may win
            workflow = Workflow.objects.create(
                workspace=workspace,
                name=parsed.name,
                description=parsed.description,
                definition=parsed.model_dump(mode="json", by_alias=True),
                created_by=user,
            )
    except IntegrityError:
        raise WorkflowNameTaken(parsed.name) from None
    audit_record(
        workspace=workspace,
        actor=user,
        action="workflow.create",
        target=workflow,
        after=workflow.definition,
    )
    return workflow


class DraftConflict(Exception):
    """A write based on an older revision touched fields someone else changed since.

    Nothing was written. `workflow` is the draft as it is now.
    """

    def __init__(self, conflicts: list[draft_changes.FieldConflict], workflow: Workflow) -> None:
        super().__init__("; ".join(f"{c.name} changed {c.label}" for c in conflicts))
        self.conflicts = conflicts
        self.workflow = workflow


def workflow_save_draft(*, workflow: Workflow, definition: dict, user: User | None) -> list[Issue]:
    """Replace the whole draft (API, import, restoring a version). See `workflow_edit_draft`."""
    return workflow_edit_draft(workflow=workflow, user=user, edit=lambda _current: definition)


CAS_ATTEMPTS = 20


def workflow_edit_draft(
    *,
    workflow: Workflow,
    user: User | None,
    edit: Callable[[dict], dict],
    bases: dict[str, int | None] | None = None,
) -> list[Issue]:
    """Apply `edit` to the stored draft, even if the result does not validate: no edit is lost.

    `edit` receives a copy of the draft as stored now (never the caller's
    possibly stale copy) and returns the new draft. `bases` maps each field
    path the person changes to the revision their value was based on; if
    someone else changed one of them after that revision, DraftConflict is
    raised and nothing is written. The write is a compare-and-set on
    `draft_revision` (retried when another write got in first), which also
    records who changed which paths. A write that changes nothing is not a
    revision. `workflow` is updated in place. The issues are returned for the
    editor to show; publishing refuses them. A valid draft whose name another
    workflow of the workspace has raises WorkflowNameTaken (nothing written),
    also when a concurrent rename to that name wins the race.
    """
    actor_id = user.pk if user is not None and user.is_authenticated else None
    actor_name = user.display_name if user is not None and actor_id is not None else "Someone"
    for _attempt in range(CAS_ATTEMPTS):
        parsed: Definition | None = None
        try:
            with transaction.atomic():
                current = (
                    Workflow.objects.filter(pk=workflow.pk)
                    .values("name", "definition", "draft_revision", "draft_changes")
                    .get()
                )
                changes = (
                    current["draft_changes"] if isinstance(current["draft_changes"], dict) else {}
                )
                found = draft_changes.conflicts(changes, bases or {}, actor_id)
                if found:
                    _refresh(workflow, current)
                    raise DraftConflict(found, workflow)
                before = current["definition"]
                definition = edit(copy.deepcopy(before))
                parsed, issues = definition_check(definition, workflow=workflow)
                stored = (
                    parsed.model_dump(mode="json", by_alias=True)
                    if parsed and not issues
                    else definition
                )
                paths, renames = draft_changes.changed_paths(before, stored)
                if not paths:
                    _refresh(workflow, current)
                    return issues
                revision = current["draft_revision"] + 1
                now = timezone.now()
                values: dict[str, object] = {
                    "definition": stored,
                    "draft_revision": revision,
                    "draft_changes": draft_changes.record(
                        changes,
                        paths=paths,
                        renames=renames,
                        revision=revision,
                        user_id=actor_id,
                        name=actor_name,
                        at=now,
                    ),
                    "updated_at": now,
                }
                if parsed is not None:
                    if parsed.name != current["name"]:
                        workflow_name_check(workflow=workflow, name=parsed.name)
                    values["name"] = parsed.name
                    values["description"] = parsed.description
                if (
                    Workflow.objects.filter(
                        pk=workflow.pk, draft_revision=current["draft_revision"]
                    ).update(**values)
                    != 1
                ):
                    continue  # another write got in first: start again from what it stored
                for name, value in values.items():
                    setattr(workflow, name, value)
                if not _edited_recently(workflow, user):
                    audit_record(
                        workspace=workflow.workspace_id,
                        actor=user,
                        action="workflow.edit",
                        target=workflow,
                        before=before,
                        after=stored,
                    )
                return issues
        except IntegrityError:  # a concurrent rename to this name won the race
            if parsed is None:
                raise
            raise WorkflowNameTaken(parsed.name) from None
    raise RuntimeError("The draft kept changing under this write; try again.")


def _refresh(workflow: Workflow, current: Mapping[str, Any]) -> None:
    workflow.definition = current["definition"]
    workflow.draft_revision = current["draft_revision"]
    workflow.draft_changes = current["draft_changes"]


def editor_presence_touch(*, workflow: Workflow, user: User) -> None:
    """Say that `user` has the editor of `workflow` open
    (the sync poll calls this every few seconds)."""
    updated = EditorPresence.objects.filter(workflow=workflow, user=user).update(
        seen_at=timezone.now()
    )
    if not updated:
        try:
            with transaction.atomic():
                EditorPresence.objects.create(workflow=workflow, user=user)
        except IntegrityError:
            pass  # created by a concurrent poll of the same person


# The editor autosaves as people type: one "edited" entry per person and
# workflow per editing session, not one per keystroke. Publishing records the
# result as a version, and the version history diffs it.
EDIT_AUDIT_SESSION = timedelta(minutes=10)


def _edited_recently(workflow: Workflow, user: User | None) -> bool:
    return AuditEntry.objects.filter(
        workspace_id=workflow.workspace_id,
        action="workflow.edit",
        target_type="workflow",
        target_id=str(workflow.pk),
        actor=user if user is not None and user.is_authenticated else None,
        created_at__gte=timezone.now() - EDIT_AUDIT_SESSION,
    ).exists()


class EvalRequired(Exception):
    """The workspace requires a passing eval of the draft before publishing, and the
    draft as it is has none."""


def draft_eval_percent(workflow: Workflow) -> tuple[Eval | None, float | None]:
    """The latest finished eval of the draft as it is now (same revision) and the share of
    its draft rows that passed every check."""
    evaluation = (
        Eval.objects.filter(
            workflow=workflow,
            status=Eval.Status.FINISHED,
            draft_revision=workflow.draft_revision,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if evaluation is None:
        return None, None
    items = EvalItem.objects.filter(eval=evaluation, target="draft")
    total = items.count()
    if not total:
        return evaluation, None
    return evaluation, round(items.filter(passed=True).count() * 100 / total, 1)


def publish_eval_check(workflow: Workflow) -> None:
    """Raise EvalRequired when the workspace's rule (an owner setting) is not met."""
    minimum = Workspace.objects.filter(id=workflow.workspace_id).values_list(
        "publish_eval_min_percent", flat=True
    )[0]
    if minimum is None:
        return
    evaluation, percent = draft_eval_percent(workflow)
    if evaluation is not None and not evaluation.checks:
        # Without a check every row passes: that proves nothing.
        raise EvalRequired(
            "The draft's latest eval had no checks, so it cannot count for publishing: "
            "add at least one check and run the eval again."
        )
    if evaluation is None or percent is None:
        raise EvalRequired(
            f"This workspace requires an eval of the draft passing at least {minimum} % of its "
            "rows before publishing; the draft as it is now has none."
        )
    if percent < minimum:
        raise EvalRequired(
            f"The draft's latest eval passed {percent:g} % of its rows; this workspace requires "
            f"at least {minimum} % before publishing."
        )


@transaction.atomic
def workflow_publish(
    *, workflow: Workflow, user: User | None, summary: str = ""
) -> WorkflowVersion:
    """Snapshot the draft as the next immutable version (refused if it does not validate,
    or, when the workspace requires one, without a passing eval of the draft: EvalRequired)."""
    parsed = definition_parse(workflow.definition, workflow=workflow)
    publish_eval_check(workflow)
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
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="workflow.publish",
        target=workflow,
        after={"version": version.number, "summary": summary},
    )
    return version


@transaction.atomic
def workflow_delete(*, workflow: Workflow, user: User | None) -> None:
    """Delete a workflow with its versions and runs (the audit log keeps its last definition)."""
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="workflow.delete",
        target=workflow,
        before=workflow.definition,
    )
    workflow.delete()


@transaction.atomic
def workflow_import(*, workspace: Workspace, definition: dict, user: User | None) -> Workflow:
    """Create the workflow, or replace the draft of the one with the same name.
    Refused (WorkflowInvalid) only for what is wrong in the definition itself;
    the workflows its steps call are checked as for `workflow_create`."""
    parsed = definition_parse(definition, workspace_id=workspace.id)
    existing = workspace.workflows.select_for_update().filter(name=parsed.name).first()
    if existing is None:
        return workflow_create(workspace=workspace, definition=definition, user=user)
    workflow_save_draft(workflow=existing, definition=definition, user=user)
    return existing


def workflow_unique_name(
    *, workspace: Workspace, name: str, exclude: Workflow | None = None
) -> str:
    """`name`, or "name (2)", "name (3)"…: the first one no other workflow of the workspace has."""
    name = name.strip()[:190] or "Untitled workflow"
    others = workspace.workflows.exclude(id=exclude.id) if exclude else workspace.workflows.all()
    taken = set(others.filter(name__startswith=name).values_list("name", flat=True))
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


@transaction.atomic
def workflow_duplicate(*, workflow: Workflow, user: User | None) -> Workflow:
    """A new workflow whose draft is a copy of this one's draft (versions and runs stay behind).

    The draft is copied as it is, even when it does not validate, so a
    half-finished workflow can be duplicated too.
    """
    name = workflow_unique_name(workspace=workflow.workspace, name=f"{workflow.name} (copy)")
    definition = (
        {**workflow.definition, "name": name}
        if isinstance(workflow.definition, dict)
        else {"name": name}
    )
    copy = Workflow.objects.create(
        workspace_id=workflow.workspace_id,
        name=name,
        description=workflow.description,
        definition=definition,
        created_by=user,
    )
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="workflow.duplicate",
        target=copy,
        after={"from": workflow.id, "from_name": workflow.name},
    )
    return copy


@transaction.atomic
def workflow_archive(*, workflow: Workflow, user: User | None) -> None:
    """Hide a workflow from the list. Its versions, runs and triggers are kept."""
    if workflow.archived_at is not None:
        return
    workflow.archived_at = timezone.now()
    workflow.save(update_fields=["archived_at"])
    audit_record(
        workspace=workflow.workspace_id, actor=user, action="workflow.archive", target=workflow
    )


@transaction.atomic
def workflow_unarchive(*, workflow: Workflow, user: User | None) -> None:
    if workflow.archived_at is None:
        return
    workflow.archived_at = None
    workflow.save(update_fields=["archived_at"])
    audit_record(
        workspace=workflow.workspace_id, actor=user, action="workflow.unarchive", target=workflow
    )


@transaction.atomic
def workflow_restore_version(
    *, workflow: Workflow, version: WorkflowVersion, user: User | None
) -> list[Issue]:
    """Copy a published version's definition into the draft (the draft it replaces is audited)."""
    if version.workflow_id != workflow.id:
        raise ValueError("That version belongs to another workflow.")
    definition = dict(version.definition)
    # The workflow may have been renamed since; keep its current name (names are unique).
    definition["name"] = workflow.name
    issues = workflow_save_draft(workflow=workflow, definition=definition, user=user)
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="workflow.restore_version",
        target=workflow,
        after={"version": version.number},
    )
    return issues


def latest_version(workflow: Workflow) -> WorkflowVersion | None:
    return sql.workflow_latest_version(workflow_id=workflow.pk)


@functools.lru_cache(maxsize=512)
def _parsed_version(version_id: int, data: str, workflow_id: int) -> Definition:
    parsed = json.loads(data)
    # What the workflows it calls output, for the fields later steps read.
    called: dict[int, dict[str, Any] | None] = {}
    if starts_runs(parsed):
        owner = Workflow.objects.filter(id=workflow_id).only("workspace_id").first()
        if owner is not None:
            called = _called_schemas(owner.workspace_id, parsed)
    definition, issues = validate_definition(parsed, models=allowed_models(), called_schemas=called)
    if issues or definition is None:
        raise WorkflowInvalid(issues)
    return definition


def version_definition(version: WorkflowVersion) -> Definition:
    """A published version's parsed definition. Versions never change, so the
    parse (the validator's work) is done once per process, not once per run."""
    return _parsed_version(
        version.id, json.dumps(version.definition, sort_keys=True), version.workflow_id
    )


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
    api_token: ApiToken | None = None,
) -> Run:
    """Create a run and enqueue it once committed.

    Runs the draft when `draft`, else `version` or the latest published one.
    Raises WorkflowInvalid, NotPublished, or InputError naming the missing or
    malformed inputs, before anything is created. With an `idempotency_key`,
    a second call with the same key returns the first run (`found_existing`
    set) and starts nothing, also under concurrency (a unique constraint
    decides, not a prior check).
    """
    if draft:
        definition = definition_parse(workflow.definition, workflow=workflow)
        snapshot = definition.model_dump(mode="json", by_alias=True)
        version = None
    else:
        version = version or latest_version(workflow)
        if version is None:
            raise NotPublished("This workflow has no published version yet. Publish it first.")
        definition = version_definition(version)
        snapshot = version.definition  # stored normalized at publish
    coerced = coerce_inputs(definition, inputs)
    # Sent to the workers now if the workspace has a free slot, else it waits its turn.
    send_now = dispatch.may_send_now(workflow.workspace_id)
    try:
        with transaction.atomic():
            run = Run.objects.create(
                workspace_id=workflow.workspace_id,
                workflow=workflow,
                version=version,
                definition=snapshot,
                trigger=trigger,
                inputs=coerced,
                payload=payload,
                created_by=user,
                api_token=api_token,
                idempotency_key=idempotency_key or None,
                enqueued_at=timezone.now() if send_now else None,
            )
            if send_now:
                _enqueue_on_commit(run.id)
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = Run.objects.get(workflow=workflow, idempotency_key=idempotency_key)
        existing.found_existing = True
        return existing
    return run


def _enqueue_on_commit(run_id: int) -> None:
    transaction.on_commit(lambda: broker.run_send(run_id))


class RunNotResumable(Exception):
    """Only a failed or canceled run can be resumed."""

    def __init__(self) -> None:
        super().__init__("Only a failed or canceled run can be resumed.")


def run_resumable(run: Run) -> bool:
    # A run whose details were pruned has no outputs left to reuse.
    return run.status in (Run.Status.FAILED, Run.Status.CANCELED) and run.details_pruned_at is None


@transaction.atomic
def run_resume(*, run: Run, user: User | None) -> Run:
    """A new run of the same definition and inputs that reuses the finished steps.

    Steps that succeeded in `run` are copied as reused (not called, not paid
    again), and so are the finished items of a map over a prompt that did
    not; execution starts at the first step that did not finish. Raises
    RunNotResumable unless `run` failed or was canceled.
    """
    if not run_resumable(run):
        raise RunNotResumable
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
        enqueued_at=timezone.now(),
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
    # The finished items of a map over a prompt that did not finish (stopped
    # at the budget, by a failed item): kept, not called or paid again.
    StepItem.objects.bulk_create(
        StepItem(
            run=new,
            step_key=item.step_key,
            index=item.index,
            status=StepItem.Status.SUCCEEDED,
            input=item.input,
            output=item.output,
            model=item.model,
            latency_ms=item.latency_ms,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )
        for item in run.items.filter(
            status=StepItem.Status.SUCCEEDED, child_run__isnull=True
        ).exclude(step_key__in=run.steps.filter(status=StepRun.Status.SUCCEEDED).values("key"))
    )
    _enqueue_on_commit(new.id)
    return new


class NotAllowedToCancel(Exception):
    """A member below the editor role may cancel only the runs they started."""

    def __init__(self) -> None:
        super().__init__("Canceling another person's run needs the editor role or higher.")


def run_cancel_allowed(*, run: Run, membership: Membership) -> bool:
    # Viewers may run workflows, so they may stop their own runs; others' runs need an editor.
    return membership.allows(Role.EDITOR) or run.created_by_id == membership.user_id


@transaction.atomic
def run_cancel(*, run: Run, membership: Membership | None = None) -> bool:
    """Cancel a queued, running or waiting run and the child runs it waits
    for; False if it had already finished.

    A step in flight finishes and is recorded; a step that waits (for budget)
    was never sent and never will be. A canceled child wakes its parent (whose
    step then fails). A member canceling (`membership`) who may not cancel
    this run gets NotAllowedToCancel (see `run_cancel_allowed`); without one
    (the API's token, the engine) any run of the workspace may be.
    """
    if membership is not None and not run_cancel_allowed(run=run, membership=membership):
        raise NotAllowedToCancel
    active = [Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.WAITING]
    now = timezone.now()
    canceled = (
        Run.objects.filter(id=run.id, status__in=active).update(
            status=Run.Status.CANCELED, finished_at=now, error="Canceled."
        )
        == 1
    )
    if not canceled:
        return False
    ids = [run.id]
    parents = ids
    while parents:
        below = list(
            Run.objects.filter(parent_id__in=parents, status__in=active).values_list(
                "id", flat=True
            )
        )
        if below:
            Run.objects.filter(id__in=below, status__in=active).update(
                status=Run.Status.CANCELED,
                finished_at=now,
                error="Canceled with the run that called it.",
            )
        ids += below
        parents = below
    waiting = StepRun.objects.filter(run_id__in=ids, status=StepRun.Status.WAITING)
    # A call that waited for budget was never started: it has no start time.
    waiting.filter(started_at__isnull=True).update(
        status=StepRun.Status.FAILED,
        finished_at=now,
        error="Canceled while waiting; nothing was sent.",
    )
    waiting.update(status=StepRun.Status.FAILED, finished_at=now, error="Canceled while waiting.")
    if run.parent_id is not None:
        waking.child_finished(run.id, run.parent_id)
    transaction.on_commit(lambda: dispatch.dispatch_waiting(run.workspace_id))
    return True


# Decisions -----------------------------------------------------------------------------


class NotAllowedToDecide(Exception):
    """A viewer, or a member who is not one of the approvers named (403)."""


class NotWaitingForDecision(Exception):
    """The run does not wait for a decision (now), or its time to decide is over (409)."""

    def __init__(self, message: str = "This run is not waiting for a decision.") -> None:
        super().__init__(message)


class AlreadyDecided(Exception):
    """Someone decided first (409): `decision` says who, what and when."""

    def __init__(self, decision: Mapping[str, object]) -> None:
        self.decision = dict(decision)
        verdict = "approved" if decision.get("approved") else "rejected"
        super().__init__(f"Already decided: {verdict} by {decision.get('by') or 'nobody'}.")


class DecisionInvalid(Exception):
    """The decision as sent cannot be recorded (its comment is too long)."""


def run_decision_step(run: Run) -> StepRun | None:
    """The step of `run` waiting for a decision now, if any."""
    if run.status != Run.Status.WAITING or run.waiting_for != Run.WaitingFor.DECISION:
        return None
    return StepRun.objects.filter(run=run, status=StepRun.Status.WAITING).first()


def run_decide_allowed(*, state: object, membership: Membership) -> bool:
    """Whether `membership` may decide a step with this state (see steps/decisions.py)."""
    return may_decide(state, user_id=membership.user_id, is_editor=membership.allows(Role.EDITOR))


@transaction.atomic
def run_decide(
    *,
    run: Run,
    membership: Membership,
    approve: bool | None,
    comment: str = "",
    step_key: str | None = None,
    via: str = "page",
) -> dict[str, object]:
    """Record `membership`'s decision on the step of `run` that waits for one
    (`step_key`, or whichever waits) and wake the run: one transaction.
    Returns the step's output to be, {"approved", "by", "comment", "at"}.

    Exactly once: the run's row is locked, and the decision is claimed by the
    conditional UPDATE that wakes the run (waiting for a decision -> queued);
    a second decider finds the decision (AlreadyDecided) or the run no longer
    waiting (NotWaitingForDecision), and nothing of theirs is written. A
    viewer, or a member who is not a named approver, gets NotAllowedToDecide;
    `approve` None (neither chosen) or too long a comment, DecisionInvalid.
    `via` ("page", "link", "api") is kept in the step's state and the audit log.
    """
    if run.workspace_id != membership.workspace_id:
        raise NotAllowedToDecide("This run is not in your workspace.")
    if not membership.allows(Role.EDITOR):
        raise NotAllowedToDecide("Viewers cannot approve or reject; an editor or above can.")
    if approve is None:
        raise DecisionInvalid("Choose Approve or Reject.")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise DecisionInvalid(f"A comment can be {MAX_COMMENT} characters at most.")
    status = (
        Run.objects.select_for_update()
        .filter(id=run.id)
        .values_list("status", "waiting_for")
        .first()
    )
    steps = StepRun.objects.select_for_update().filter(run_id=run.id)
    if step_key is not None:
        step = steps.filter(key=step_key).first()
    else:
        step = steps.filter(status=StepRun.Status.WAITING).first()
    decided = decision_of(step.state) if step is not None else None
    if decided is not None:
        raise AlreadyDecided(decided)
    if (
        status != (Run.Status.WAITING, Run.WaitingFor.DECISION)
        or step is None
        or step.status != StepRun.Status.WAITING
    ):
        raise NotWaitingForDecision
    state = dict(step.state or {})
    if not run_decide_allowed(state=state, membership=membership):
        raise NotAllowedToDecide("Only the approvers named in this step can decide.")
    now = timezone.now()
    timeout_at = parse_iso(state.get("timeout_at"))
    if timeout_at is not None and now >= timeout_at:
        raise NotWaitingForDecision("The time to decide is over: the run goes on as on timeout.")
    if not waking.wake(run.id, waiting_for=[Run.WaitingFor.DECISION]):
        raise NotWaitingForDecision
    user = membership.user
    decision: dict[str, object] = {
        "approved": bool(approve),
        "by": user.email,
        "by_id": user.id,
        "comment": comment,
        "at": iso(now),
        "via": via,
    }
    state["decision"] = decision
    sql.update(StepRun, where={"id": step.id}, values={"state": state})
    audit_record(
        workspace=run.workspace_id,
        actor=user,
        action="run.decision",
        target=run,
        label=f"Run #{run.id} · {step.key}",
        after={"step": step.key, "approved": bool(approve), "comment": comment, "via": via},
    )
    return output_of(decision)


__all__ = [
    "AlreadyDecided",
    "DecisionInvalid",
    "DraftConflict",
    "InputError",
    "NotAllowedToCancel",
    "NotAllowedToDecide",
    "NotWaitingForDecision",
    "NotPublished",
    "RunNotResumable",
    "WorkflowInvalid",
    "WorkflowNameTaken",
    "editor_presence_touch",
    "run_cancel",
    "run_cancel_allowed",
    "run_decide",
    "run_decide_allowed",
    "run_decision_step",
    "run_resumable",
    "run_resume",
    "run_start",
    "workflow_archive",
    "workflow_create",
    "workflow_delete",
    "workflow_duplicate",
    "workflow_edit_draft",
    "workflow_import",
    "workflow_name_check",
    "workflow_publish",
    "workflow_restore_version",
    "workflow_save_draft",
    "workflow_unarchive",
    "workflow_unique_name",
]
