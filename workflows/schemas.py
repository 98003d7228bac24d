"""The shapes of Stepwise's JSON answers: one pydantic (django-ninja) schema
per object, and the functions that build each from the models.

The API declares these as its responses (so they are its OpenAPI document),
and every other JSON answer of a run (`selectors.run_json`: the webhooks'
answers, completion callbacks, `manage.py run_workflow`) is the same schema
dumped, so no two places can describe a run differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict, StrictInt

from accounts.models import WorkspaceSecret
from config.lib.names import DirectionSafe
from workflows.builder.definition import Issue, secrets_used
from workflows.evals.results import EvalResult
from workflows.llm.pricing import usd_text
from workflows.models import Dataset, Run, StepItem, StepRun, Trigger, Workflow, WorkflowVersion
from workflows.services import definition_check
from workflows.steps import runs_items, starts_runs
from workflows.steps.decisions import asked, decision_of, output_of

# Ids are 64-bit; larger numbers are refused as invalid rather than overflowing the database.
MAX_ID = 2**63 - 1
# The longest an API or webhook caller may wait for a run's result, in seconds.
MAX_WAIT_SECONDS = 60
# The longest Idempotency-Key / webhook-id accepted.
MAX_KEY_LENGTH = 150


class ErrorOut(Schema):
    error: str
    details: Any = None


class IssueOut(Schema):
    step: str | None
    field: str
    message: str


class ValidationOut(Schema):
    valid: bool
    issues: list[IssueOut]


class VersionOut(Schema):
    number: int
    summary: str
    created_at: datetime


class WorkflowOut(Schema):
    id: int
    name: str
    description: str
    published_version: int | None
    created_at: datetime
    updated_at: datetime


class WorkflowDetailOut(WorkflowOut):
    definition: dict[str, Any]
    versions: list[VersionOut]
    secrets: list[str] = Field(
        description="The workspace secrets its draft's http steps use ({{ secrets.NAME }}), "
        "by name: an exported definition carries no values."
    )
    missing_secrets: list[str] = Field(
        description="Those of `secrets` the workspace does not have (yet): after an import, "
        "create them in Settings → Secrets, or its http steps fail."
    )
    issues: list[IssueOut] = Field(
        description="What keeps the draft from being published or run, as "
        "`POST /workflows/{id}/validate` says it; empty when nothing does. After an import, "
        "a step calling a workflow that is not in this workspace is named here "
        "(`Workflow #7 is not in this workspace.`) until another is picked in the editor."
    )


class WorkflowFileOut(BaseModel):
    """A definition as a file to import: the workflow format (docs/workflow-format.md), as
    stored (a draft is exported even while it does not validate), its keys in their order.
    (A plain pydantic model: ninja's Schema reads attributes and would drop the extra keys.)"""

    model_config = ConfigDict(extra="allow")


class PublishIn(Schema):
    summary: str = Field("", max_length=2000)


class TriggerIn(Schema):
    name: Annotated[str, DirectionSafe] = Field("", max_length=100)
    callback_url: str = Field(
        "", max_length=2000, description="Where to POST each run's result (optional)."
    )
    rate_limit_per_minute: int = Field(60, ge=1, le=100_000)


class TriggerOut(Schema):
    id: int
    url: str
    name: str
    signing_required: bool
    callback_url: str
    rate_limit_per_minute: int
    created_at: datetime
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None


class TriggerSecretOut(TriggerOut):
    secret: str = Field(
        description="The Standard Webhooks secret (whsec_…). Shown only in this answer."
    )


class DecisionIn(Schema):
    approve: bool
    comment: str = Field("", max_length=2000)


class RunIn(Schema):
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: int = Field(
        0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description=(
            "Seconds to wait for the result: 200 with the run if it finishes in time, else 202."
        ),
    )


class RunAccepted(Schema):
    run_id: int
    status: str
    status_url: str


class DecisionOut(Schema):
    """An approval: what was asked, and the outcome once there is one."""

    message: str = Field(description="What the approvers were asked, with variables filled in.")
    approvers: list[str] = Field(
        description="Emails of the members who may decide; empty: any editor or above."
    )
    emails_held: list[str] = Field(
        description="Approvers who were not emailed: the server's mail limits (MAIL_LIMIT_*) "
        "held their email. They decide on the run page or through this API."
    )
    asked_at: str
    timeout_at: str = Field(description="When it goes on by itself, as `on_timeout` says.")
    on_timeout: Literal["approve", "reject"]
    approved: bool | None = Field(description="null while nobody decided.")
    by: str | None = Field(description="Who decided (an email); null while waiting or on timeout.")
    comment: str
    at: str | None = Field(description="When it was decided (or timed out).")


class ItemOut(Schema):
    index: int
    status: str = Field(description="pending, running, succeeded, failed or skipped.")
    input: Any = Field(description="The item of the list the step goes over.")
    output: Any
    cost_usd: str
    latency_ms: int | None
    error: str
    run_id: int | None = Field(description="Over a workflow: the item's child run.")


class StepOut(Schema):
    key: str
    type: str
    status: str
    output: Any
    decision: DecisionOut | None = Field(
        description="For a step that asks for a decision (an approval): what was asked and "
        "the outcome; else null."
    )
    tokens_in: int
    tokens_cached: int
    tokens_out: int
    cost_usd: str
    latency_ms: int | None
    attempts: int
    reused: bool
    error: str
    items: list[ItemOut] = Field(
        default_factory=list,
        description="For a `map` step: its items so far, in item order (else empty).",
    )


class ChildOut(Schema):
    id: int
    workflow_id: int
    step: str = Field(description="The key of the step that started it.")
    item: int | None = Field(description="For a `map` step: the index of its item.")
    status: str


class RunOut(Schema):
    id: int
    workflow_id: int
    version: int | None
    trigger: str
    status: str
    waiting_for: str = Field(
        description='While the status is "waiting": what for ("budget", "children", '
        '"decision" or "time"); else empty.'
    )
    wake_at: str | None = Field(
        description="While waiting for a time or a decision: when it goes on by itself."
    )
    waited_ms: int = Field(description="Time spent waiting: not counted in its duration.")
    parent_id: int | None = Field(description="The run whose step started this one, if any.")
    children: list[ChildOut] = Field(description="The runs its steps started, oldest first.")
    details_removed: str | None = Field(
        None,
        description="Set when the workspace's retention removed the run's details, e.g. "
        '"Details removed after 30 days (2026-12-02)."; its `inputs`, `output` and its steps\' '
        "`output` are then null, while its cost, tokens and times are kept. Else null.",
    )
    inputs: dict[str, Any] | None = Field(
        description="What it was given; null once its details were removed."
    )
    output: Any
    error: str
    cost_usd: str
    cost_nanousd: int
    tokens_in: int
    tokens_cached: int
    tokens_out: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    steps: list[StepOut]


class RunListOut(Schema):
    items: list[RunOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class RunFilters(Schema):
    workflow_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: Literal["queued", "running", "waiting", "succeeded", "failed", "canceled"] | None = None
    trigger: (
        Literal["manual", "api", "webhook", "schedule", "cli", "workflow", "mcp", "eval"] | None
    ) = None
    before: int | None = Field(None, ge=1, le=MAX_ID, description="Only runs with a smaller id.")
    limit: int = Field(20, ge=1, le=100)


class RunExportFilters(Schema):
    workflow_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: Literal["queued", "running", "waiting", "succeeded", "failed", "canceled"] | None = None
    trigger: (
        Literal["manual", "api", "webhook", "schedule", "cli", "workflow", "mcp", "eval"] | None
    ) = None


class DatasetRowIn(Schema):
    inputs: dict[str, Any]
    expected: Any = None


class DatasetIn(Schema):
    name: Annotated[str, DirectionSafe] = Field(min_length=1, max_length=200)
    rows: list[DatasetRowIn] | None = Field(
        None, description="The rows; or `from_runs`. Inputs are checked against the draft's."
    )
    from_runs: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None,
        description="Ids of this workflow's runs: their inputs, and as expected output the "
        "output of each that succeeded.",
    )


class DatasetOut(Schema):
    id: int
    workflow_id: int
    name: str
    rows: int
    created_at: datetime


class EvalIn(Schema):
    dataset_id: int = Field(ge=1, le=MAX_ID)
    # Strict: `true` is not version 1.
    versions: list[Literal["draft"] | Annotated[StrictInt, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1, max_length=4, description='"draft" and/or version numbers.'
    )
    concurrency: int = Field(4, ge=1, le=100)


class EvalAccepted(Schema):
    id: int
    status: str
    estimate_usd: str


class CheckResultOut(Schema):
    name: str
    kind: str
    passed: bool
    reason: str


class EvalCellOut(Schema):
    target: str
    status: str
    output: str
    passed: bool | None
    checks: list[CheckResultOut]
    cost_usd: str
    judge_cost_usd: str
    tokens_in: int
    tokens_out: int
    latency_ms: int | None
    run_id: int | None
    error: str


class EvalRowOut(Schema):
    position: int
    inputs: dict[str, Any]
    expected: Any
    results: list[EvalCellOut]


class EvalTargetOut(Schema):
    target: str = Field(description='"draft" or "v<number>".')
    rows: int
    scored: int
    passed: int
    pass_rate: float | None = Field(description="Percent of the scored rows passing every check.")
    cost_usd: str = Field(description="What its runs cost.")
    judge_cost_usd: str = Field(description="What judging them cost (apart).")
    tokens_in: int
    tokens_out: int
    latency_ms_avg: int | None


class EvalOut(Schema):
    id: int
    workflow_id: int
    dataset_id: int | None = Field(description="None once the dataset was deleted.")
    dataset_name: str
    status: Literal["running", "finished", "canceled"]
    estimate_usd: str
    held_usd: str = Field(
        description="What it still holds of the month's budget for its rows not started yet."
    )
    created_at: datetime
    finished_at: datetime | None
    targets: list[EvalTargetOut]
    rows: list[EvalRowOut]


# Every operation declares every error it can answer, all of them `{"error", "details"}`:
# 413 is a body over MAX_REQUEST_BODY_BYTES (config/lib/body_limit.py).
ERRORS: dict[int, type[Schema]] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    413: ErrorOut,
    422: ErrorOut,
    503: ErrorOut,  # over capacity (no database connection in time): retry after Retry-After
}


# Builders --------------------------------------------------------------------


def validation_out(issues: Iterable[Issue]) -> ValidationOut:
    issues = list(issues)
    return ValidationOut(
        valid=not issues,
        issues=[IssueOut(step=i.step, field=i.field, message=i.message) for i in issues],
    )


def version_out(version: WorkflowVersion) -> VersionOut:
    return VersionOut(number=version.number, summary=version.summary, created_at=version.created_at)


def workflow_out(workflow: Workflow, latest: WorkflowVersion | None) -> WorkflowOut:
    """The workflow, with `latest` its latest published version."""
    return WorkflowOut(
        id=workflow.id,
        name=workflow.name,
        description=workflow.description,
        published_version=latest.number if latest else None,
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )


def workflow_detail_out(workflow: Workflow) -> WorkflowDetailOut:
    """The workflow with its draft and all its published versions, newest first."""
    versions = list(workflow.versions.order_by("-number"))
    _, issues = definition_check(workflow.definition, workflow=workflow)
    used = secrets_used(workflow.definition)
    have = (
        set(
            WorkspaceSecret.objects.filter(
                workspace_id=workflow.workspace_id, name__in=used
            ).values_list("name", flat=True)
        )
        if used
        else set()
    )
    return WorkflowDetailOut(
        **workflow_out(workflow, versions[0] if versions else None).model_dump(),
        definition=workflow.definition,
        versions=[version_out(version) for version in versions],
        secrets=used,
        missing_secrets=[name for name in used if name not in have],
        issues=validation_out(issues).issues,
    )


def workflow_file_out(definition: dict[str, Any]) -> WorkflowFileOut:
    return WorkflowFileOut.model_validate(definition)


def trigger_out(trigger: Trigger) -> TriggerOut:
    return TriggerOut(**_trigger_fields(trigger))


def trigger_secret_out(trigger: Trigger, secret: str) -> TriggerSecretOut:
    """The trigger with its secret: only in the answer that made the secret."""
    return TriggerSecretOut(**_trigger_fields(trigger), secret=secret)


def _trigger_fields(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "url": trigger.url(),
        "name": trigger.name,
        "signing_required": trigger.signing_required,
        "callback_url": trigger.callback_url,
        "rate_limit_per_minute": trigger.rate_limit_per_minute,
        "created_at": trigger.created_at,
        "rotated_at": trigger.rotated_at,
        "previous_secret_expires_at": trigger.previous_expires_at,
    }


def item_out(item: StepItem) -> ItemOut:
    return ItemOut(
        index=item.index,
        status=item.status,
        input=item.input,
        output=item.output,
        cost_usd=usd_text(item.cost_nanousd),
        latency_ms=item.latency_ms,
        error=item.error,
        run_id=item.child_run_id,
    )


def step_out(step: StepRun, items: Iterable[StepItem] = ()) -> StepOut:
    return StepOut(
        items=[item_out(item) for item in items],
        key=step.key,
        type=step.type,
        status=step.status,
        output=step.output,
        tokens_in=step.tokens_in,
        tokens_cached=step.tokens_cached,
        tokens_out=step.tokens_out,
        cost_usd=usd_text(step.cost_nanousd),
        latency_ms=step.latency_ms,
        attempts=step.attempts,
        reused=step.reused,
        error=step.error,
        decision=decision_out(step),
    )


def decision_out(step: StepRun) -> DecisionOut | None:
    state = step.state
    if not isinstance(state, dict) or not asked(state):
        return None
    decided = decision_of(state)
    outcome: dict[str, Any] = {"approved": None, "by": None, "comment": "", "at": None}
    if decided is not None:
        outcome = output_of(decided)
    elif step.status == StepRun.Status.SUCCEEDED and isinstance(step.output, dict):
        outcome = output_of(step.output)  # timed out
    return DecisionOut(
        message=str(state.get("message") or ""),
        approvers=[
            str(approver.get("email"))
            for approver in state.get("approvers") or []
            if isinstance(approver, dict)
        ],
        emails_held=[str(email) for email in state.get("emails_held") or []],
        asked_at=str(state.get("asked_at") or ""),
        timeout_at=str(state.get("timeout_at") or ""),
        on_timeout="approve" if state.get("on_timeout") == "approve" else "reject",
        **outcome,
    )


def run_out(run: Run, steps: Iterable[StepRun] | None = None) -> RunOut:
    """The run with `steps` (by default all of its steps, in order)."""
    if steps is None:
        steps = run.steps.order_by("position")
    steps = list(steps)
    items = _items_by_step(run, steps)
    return RunOut(
        id=run.id,
        workflow_id=run.workflow_id,
        version=run.version.number if run.version_id and run.version else None,
        trigger=run.trigger,
        status=run.status,
        waiting_for=run.waiting_for,
        wake_at=run.wake_at.isoformat() if run.wake_at else None,
        waited_ms=run.waited_ms,
        parent_id=run.parent_id,
        children=_children_out(run),
        details_removed=run.details_removed_note or None,
        inputs=None if run.details_pruned_at else run.inputs,
        output=run.output,
        error=run.error,
        cost_usd=usd_text(run.cost_nanousd),
        cost_nanousd=run.cost_nanousd,
        tokens_in=run.tokens_in,
        tokens_cached=run.tokens_cached,
        tokens_out=run.tokens_out,
        created_at=run.created_at.isoformat(),
        started_at=run.started_at.isoformat() if run.started_at else None,
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
        steps=[step_out(step, items.get(step.key, [])) for step in steps],
    )


def _items_by_step(run: Run, steps: list[StepRun]) -> dict[str, list[StepItem]]:
    # Only a run whose steps go over lists, and that shows steps, asks for their items.
    if not steps or not runs_items(run.definition):
        return {}
    by_step: dict[str, list[StepItem]] = {}
    for item in StepItem.objects.filter(run=run).order_by("step_key", "index"):
        by_step.setdefault(item.step_key, []).append(item)
    return by_step


def _children_out(run: Run) -> list[ChildOut]:
    # Only a run whose steps can start runs asks the database for them.
    if not starts_runs(run.definition):
        return []
    return [
        ChildOut(id=id_, workflow_id=workflow_id, step=step, item=item, status=status)
        for id_, workflow_id, step, item, status in Run.objects.filter(
            parent=run, deleted_at__isnull=True
        )
        .order_by("id")
        .values_list("id", "workflow_id", "parent_step", "parent_item", "status")
    ]


def run_accepted(run: Run) -> RunAccepted:
    """A run not finished yet: its id, its status and where to look (never its output)."""
    return RunAccepted(
        run_id=run.id, status=run.status, status_url=f"{settings.SITE_URL}/api/v1/runs/{run.id}"
    )


def dataset_out(dataset: Dataset, rows: int) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        workflow_id=dataset.workflow_id,
        name=dataset.name,
        rows=rows,
        created_at=dataset.created_at,
    )


def eval_out(result: EvalResult) -> EvalOut:
    """An eval with the figures its result page shows (workflows/evals/results.py)."""
    evaluation = result.evaluation
    return EvalOut(
        id=evaluation.id,
        workflow_id=evaluation.workflow_id,
        dataset_id=evaluation.dataset_id,
        dataset_name=evaluation.dataset_name,
        status=evaluation.status,  # type: ignore[arg-type]
        estimate_usd=usd_text(evaluation.estimate_nanousd),
        held_usd=usd_text(result.held_nanousd),
        created_at=evaluation.created_at,
        finished_at=evaluation.finished_at,
        targets=[
            EvalTargetOut(
                target=t.target,
                rows=t.rows,
                scored=t.scored,
                passed=t.passed,
                pass_rate=t.pass_percent,
                cost_usd=usd_text(t.cost_nanousd),
                judge_cost_usd=usd_text(t.judge_cost_nanousd),
                tokens_in=t.tokens_in,
                tokens_out=t.tokens_out,
                latency_ms_avg=t.latency_ms_avg,
            )
            for t in result.totals
        ],
        rows=[
            EvalRowOut(
                position=row.position,
                inputs=row.inputs,
                expected=row.expected,
                results=[
                    EvalCellOut(
                        target=c.target,
                        status=c.status,
                        output=c.output,
                        passed=c.passed,
                        checks=[CheckResultOut(**r) for r in c.results],
                        cost_usd=usd_text(c.cost_nanousd),
                        judge_cost_usd=usd_text(c.judge_cost_nanousd),
                        tokens_in=c.tokens_in,
                        tokens_out=c.tokens_out,
                        latency_ms=c.latency_ms,
                        run_id=c.run_id,
                        error=c.error,
                    )
                    for c in row.cells
                ],
            )
            for row in result.rows
        ],
    )
