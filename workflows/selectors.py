"""Reads: the queries the pages ask, named, and the shapes other parts of Stepwise and outside
programs depend on. Views reach their objects through accounts.access and call these for the
rest; nothing here writes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from workflows.llm.pricing import format_usd
from workflows.models import (
    ApiToken,
    Dataset,
    EditorPresence,
    Run,
    Schedule,
    StepItem,
    StepRun,
    Trigger,
    WebhookDelivery,
    Workflow,
    WorkflowVersion,
)
from workflows.schemas import run_out
from workflows.steps import runs_items, starts_runs


def run_json(run: Run, steps: list[StepRun] | None = None) -> dict[str, object]:
    """A run as `run_workflow` prints it, the API returns it and callbacks send
    it: the API's RunOut schema, dumped (a stable shape)."""
    return run_out(run, steps).model_dump(mode="json")


# The workflows page ----------------------------------------------------------------


def _month_start() -> datetime:
    return timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class WorkflowRow:
    """A row of the workflows page: the workflow with its last run, runs and spend this month."""

    id: int
    name: str
    description: str
    archived_at: datetime | None
    updated_at: datetime
    runs_this_month: int
    spend_this_month: int  # nanousd
    last_run_id: int | None
    last_run_status: str | None
    last_run_at: datetime | None
    version_number: int | None  # the latest published version, None for a draft only

    @property
    def spend_text(self) -> str:
        return format_usd(self.spend_this_month)


def workflow_rows(workspace: Workspace, *, archived: bool) -> list[WorkflowRow]:
    """The workspace's active (or archived) workflows, by name: one query."""
    this_month = Q(runs__created_at__gte=_month_start())
    last_run = Run.objects.filter(workflow=OuterRef("pk")).order_by("-created_at", "-id")
    latest = WorkflowVersion.objects.filter(workflow=OuterRef("pk")).order_by("-number")
    rows = (
        workspace.workflows.filter(archived_at__isnull=not archived)
        .annotate(
            runs_this_month=Count("runs", filter=this_month),
            spend_this_month=Coalesce(
                Sum("runs__cost_nanousd", filter=this_month), Value(0), output_field=IntegerField()
            ),
            last_run_id=Subquery(last_run.values("id")[:1]),
            last_run_status=Subquery(last_run.values("status")[:1]),
            last_run_at=Subquery(last_run.values("created_at")[:1]),
            version_number=Subquery(latest.values("number")[:1]),
        )
        .order_by("name", "id")
        .values(
            "id",
            "name",
            "description",
            "archived_at",
            "updated_at",
            "runs_this_month",
            "spend_this_month",
            "last_run_id",
            "last_run_status",
            "last_run_at",
            "version_number",
        )
    )
    return [WorkflowRow(**row) for row in rows]


def workflow_counts(workspace: Workspace) -> dict[str, int]:
    """How many workflows of the workspace are `active` and `archived`."""
    return workspace.workflows.aggregate(
        active=Count("id", filter=Q(archived_at__isnull=True)),
        archived=Count("id", filter=Q(archived_at__isnull=False)),
    )


def workflow_delete_counts(workflow: Workflow) -> dict[str, int]:
    """What deleting the workflow deletes with it: its `versions` and `runs`."""
    return Workflow.objects.filter(id=workflow.id).aggregate(
        versions=Count("versions", distinct=True), runs=Count("runs", distinct=True)
    )


# The editor --------------------------------------------------------------------------


def draft_run_latest(workflow: Workflow, user: User) -> tuple[Run | None, list[StepRun]]:
    """The person's latest test run of the draft, with its steps (not a row of their eval)."""
    run = (
        Run.objects.filter(
            workflow=workflow, version__isnull=True, created_by=user, deleted_at__isnull=True
        )
        .exclude(trigger=Run.Trigger.EVAL)
        .order_by("-created_at", "-id")
        .first()
    )
    return run, (list(run.steps.all()) if run else [])


def editor_others(workflow: Workflow, user: User, *, seconds: int) -> list[User]:
    """The other people whose editor of this workflow polled in the last `seconds`."""
    return [
        presence.user
        for presence in EditorPresence.objects.filter(
            workflow=workflow, seen_at__gte=timezone.now() - timedelta(seconds=seconds)
        )
        .exclude(user=user)
        .select_related("user")
        .order_by("user__name", "user__email")
    ]


def versions_recent(workflow: Workflow, *, limit: int = 50) -> list[WorkflowVersion]:
    """The workflow's latest published versions with their authors, newest first."""
    return list(workflow.versions.select_related("author").order_by("-number")[:limit])


# The API -----------------------------------------------------------------------------------


def workflows_active(workspace_id: int) -> QuerySet[Workflow]:
    """The workspace's workflows that are not archived, by name."""
    return Workflow.objects.filter(workspace_id=workspace_id, archived_at__isnull=True).order_by(
        "name"
    )


def version_of(workflow: Workflow, number: int) -> WorkflowVersion | None:
    return workflow.versions.filter(number=number).first()


def runs_before(
    workspace_id: int,
    *,
    workflow_id: int | None = None,
    status: str = "",
    trigger: str = "",
    before: int | None = None,
    limit: int,
) -> list[Run]:
    """Up to `limit` of the workspace's runs, newest (highest id) first, with their version;
    only those with an id below `before` if given (the next page)."""
    runs = Run.objects.select_related("version").filter(
        workspace_id=workspace_id, deleted_at__isnull=True
    )
    if workflow_id:
        runs = runs.filter(workflow_id=workflow_id)
    if status:
        runs = runs.filter(status=status)
    if trigger:
        runs = runs.filter(trigger=trigger)
    if before:
        runs = runs.filter(id__lt=before)
    return list(runs.order_by("-id")[:limit])


# The runs page ---------------------------------------------------------------------------

# The version filter's value for test runs of the draft.
DRAFT = "draft"


def workflow_choices(workspace: Workspace) -> list[Workflow]:
    """The workspace's workflows, archived too, by name: only their id, name, archived_at and
    whether their runs are being deleted."""
    return list(
        workspace.workflows.order_by("name").only(
            "id", "name", "archived_at", "runs_deleting_since"
        )
    )


def version_numbers(workspace: Workspace, *, workflow_id: int | None = None) -> list[int]:
    """The version numbers published in the workspace (of one workflow if given), ascending."""
    versions = WorkflowVersion.objects.filter(workflow__workspace=workspace)
    if workflow_id:
        versions = versions.filter(workflow_id=workflow_id)
    return list(versions.order_by("number").values_list("number", flat=True).distinct())


def runs_filtered(
    workspace: Workspace,
    *,
    status: str = "",
    trigger: str = "",
    workflow_id: int | None = None,
    version: str = "",
) -> QuerySet[Run]:
    """The workspace's runs, newest first, with what the list shows of their workflow and
    version. `version` is a number, or DRAFT for the test runs of drafts. Deleted runs are
    left out."""
    runs = Run.objects.filter(workspace=workspace, deleted_at__isnull=True)
    if status:
        runs = runs.filter(status=status)
    if trigger:
        runs = runs.filter(trigger=trigger)
    if workflow_id:
        runs = runs.filter(workflow_id=workflow_id)
    if version == DRAFT:
        runs = runs.filter(version__isnull=True)
    elif version:
        runs = runs.filter(version__number=int(version))
    return (
        runs.select_related("workflow", "version")
        .only(
            "id",
            "status",
            "trigger",
            "error",
            "tokens_in",
            "tokens_cached",
            "tokens_out",
            "cost_nanousd",
            "created_at",
            "started_at",
            "finished_at",
            "resumed_from_id",
            "waiting_for",
            "waiting_since",
            "waited_ms",
            "details_pruned_at",
            "workflow__id",
            "workflow__name",
            "version__id",
            "version__number",
        )
        .order_by("-created_at", "-id")
    )


# The triggers and API tokens pages ---------------------------------------------------------


def schedules_of(workflow: Workflow) -> list[Schedule]:
    """The workflow's schedules with their last run."""
    return list(workflow.schedules.select_related("last_run"))


def deliveries_recent(workflow: Workflow, *, limit: int) -> QuerySet[WebhookDelivery]:
    """The latest webhook deliveries to the workflow's triggers (the model's order), with their
    trigger."""
    return WebhookDelivery.objects.filter(trigger__workflow=workflow).select_related("trigger")[
        :limit
    ]


def trigger_of(workflow: Workflow, trigger_id: int) -> Trigger | None:
    return workflow.triggers.filter(id=trigger_id).first()


def schedule_of(workflow: Workflow, schedule_id: int) -> Schedule | None:
    return workflow.schedules.filter(id=schedule_id).first()


def api_tokens(membership: Membership) -> QuerySet[ApiToken]:
    """The API tokens of the membership's workspace (the model's order), with who made each."""
    return ApiToken.objects.filter(workspace=membership.workspace).select_related("created_by")


def api_token_of(membership: Membership, token_id: int, *, revoked: bool = True) -> ApiToken | None:
    """Token `token_id` of the membership's workspace, if it is one of them (and not revoked,
    with `revoked=False`)."""
    tokens = ApiToken.objects.filter(id=token_id, workspace=membership.workspace)
    if not revoked:
        tokens = tokens.filter(revoked_at__isnull=True)
    return tokens.first()


def step_items(run: Run) -> dict[str, list[StepItem]]:
    """The items of `run`'s map steps by step key, in item order (their
    messages left out: the page does not show them)."""
    if not runs_items(run.definition):
        return {}  # no query for the runs of workflows without a map
    by_step: dict[str, list[StepItem]] = {}
    for item in StepItem.objects.filter(run=run).defer("messages").order_by("step_key", "index"):
        by_step.setdefault(item.step_key, []).append(item)
    return by_step


def run_children(run: Run) -> list[Run]:
    """The runs `run`'s steps started (sub-workflows, a map's items), oldest first."""
    if not starts_runs(run.definition):
        return []  # no query for the runs of workflows that call none
    return list(
        Run.objects.filter(parent=run, deleted_at__isnull=True)
        .select_related("workflow")
        .only(
            "id",
            "status",
            "waiting_for",
            "parent_step",
            "parent_item",
            "cost_nanousd",
            "workflow__name",
            "finished_at",
        )
        .order_by("id")
    )


# MCP (workflows/integrations/mcp_server.py) ------------------------------------------------


def mcp_workflows(
    workspace_id: int, *, name: str | None = None
) -> list[tuple[Workflow, WorkflowVersion]]:
    """The workspace's workflows an admin exposed at /mcp, each with its latest published
    version (never published, or archived: not a tool), by tool name; with `name`, only
    that tool. Two queries, however many tools."""
    latest = (
        WorkflowVersion.objects.filter(workflow=OuterRef("pk")).order_by("-number").values("id")[:1]
    )
    workflows = (
        Workflow.objects.filter(
            workspace_id=workspace_id, mcp_exposed=True, archived_at__isnull=True
        )
        .exclude(mcp_name="")
        .annotate(latest_version_id=Subquery(latest, output_field=IntegerField()))
        .filter(latest_version_id__isnull=False)
        .order_by("mcp_name")
    )
    if name is not None:
        workflows = workflows.filter(mcp_name=name)
    rows = list(workflows)
    versions = WorkflowVersion.objects.in_bulk([row.latest_version_id for row in rows])
    return [
        (row, versions[row.latest_version_id]) for row in rows if row.latest_version_id in versions
    ]


def mcp_names_taken(workspace_id: int) -> set[str]:
    """Tool names the workspace's workflows hold (exposed or not: a name stays with its
    workflow)."""
    return set(
        Workflow.objects.filter(workspace_id=workspace_id)
        .exclude(mcp_name="")
        .values_list("mcp_name", flat=True)
    )


def run_by_idempotency_key(workflow: Workflow, key: str) -> Run | None:
    return Run.objects.filter(workflow=workflow, idempotency_key=key).first()


def step_waiting(run: Run, key: str) -> bool:
    """Whether step `key` of a waiting `run` is the one it waits at."""
    return (
        run.status == Run.Status.WAITING
        and StepRun.objects.filter(run=run, key=key, status=StepRun.Status.WAITING).exists()
    )


def run_workspace_slug(run_id: int) -> str | None:
    """The slug of the workspace of run `run_id` (a signed link names only the run)."""
    return Run.objects.filter(id=run_id).values_list("workspace__slug", flat=True).first()


def run_step(run: Run, key: str) -> StepRun | None:
    return StepRun.objects.filter(run=run, key=key).first()


def token_membership(token: ApiToken) -> Membership | None:
    """The membership of an API token's creator in its workspace (who decides by the API)."""
    if token.created_by_id is None:
        return None
    return (
        Membership.objects.select_related("user", "workspace")
        .filter(workspace_id=token.workspace_id, user_id=token.created_by_id)
        .first()
    )


# Exports ---------------------------------------------------------------------------------

# Runs read at once by an export: each chunk is one short query (and one for their steps).
EXPORT_CHUNK = 200


def runs_jsonl(runs: QuerySet[Run]) -> Iterator[bytes]:
    """Each run of `runs` as a line of JSON, the API's RunOut shape with its steps (and a
    pruned run's "details_removed"), newest (highest id) first. Read EXPORT_CHUNK runs at a
    time by id, so that a large export streams without holding a cursor or a transaction
    open while the client reads."""
    ids = runs.order_by().values("id")
    before: int | None = None
    while True:
        chunk = (
            Run.objects.filter(id__in=ids)
            .select_related("version")
            .prefetch_related(Prefetch("steps", queryset=StepRun.objects.order_by("position")))
            .order_by("-id")
        )
        if before is not None:
            chunk = chunk.filter(id__lt=before)
        page = list(chunk[:EXPORT_CHUNK])
        if not page:
            return
        for run in page:
            yield run_out(run, steps=run.steps.all()).model_dump_json().encode() + b"\n"
        before = page[-1].id


def datasets_of(workflow: Workflow) -> list[tuple[Dataset, int]]:
    """The workflow's datasets, newest first, each with its number of rows."""
    rows = workflow.datasets.annotate(row_count=Count("rows"))
    return [(dataset, dataset.row_count) for dataset in rows]
