"""The runs pages: a workspace's runs (filtered, paginated) and one run in detail.

The detail page is one `{% partialdef run_live %}`: while the run is queued or
running it polls itself every second, and the answer for a finished run is
rendered without the trigger (and with status 286), so polling stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, push_url

from accounts.access import AuthedRequest, HtmxRequest, run_for, workspace_for
from accounts.models import Membership, Role, Workspace
from workflows import retention, selectors, services, sql
from workflows.builder.definition import InputError
from workflows.integrations import stream_slots
from workflows.integrations.run_events import BrowserFeed, event_response, item_preview
from workflows.models import Run, StepItem, StepRun, Workflow
from workflows.selectors import DRAFT
from workflows.steps import STEP_TYPES
from workflows.steps.decisions import parse_iso
from workflows.templatetags.run_format import TRIGGER_LABELS

PAGE_SIZE = 25
# A step shorter than this share of the run still gets a visible bar.
MIN_BAR_PERCENT = 0.6


# The list ----------------------------------------------------------------------


class RunFilterForm(forms.Form):
    """The list's filters. An unknown value is ignored, never an error page."""

    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Run.Status.choices])
    trigger = forms.ChoiceField(
        required=False, choices=[("", "Any trigger"), *TRIGGER_LABELS.items()]
    )
    workflow = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    version = forms.ChoiceField(required=False)

    def __init__(
        self, data: QueryDict, *, workflows: list[Workflow], version_numbers: list[int]
    ) -> None:
        super().__init__(data)
        cast(forms.ChoiceField, self.fields["workflow"]).choices = [("", "All workflows")] + [
            (w.id, f"{w.name} (archived)" if w.archived_at else w.name) for w in workflows
        ]
        cast(forms.ChoiceField, self.fields["version"]).choices = [
            ("", "Any version"),
            (DRAFT, "Draft (test runs)"),
        ] + [(str(n), f"v{n}") for n in version_numbers]

    def runs(self, workspace: Workspace) -> QuerySet[Run]:
        """The workspace's runs these filters let through (an invalid one is left out)."""
        self.is_valid()
        data = self.cleaned_data
        return selectors.runs_filtered(
            workspace,
            status=data.get("status") or "",
            trigger=data.get("trigger") or "",
            workflow_id=data.get("workflow"),
            version=data.get("version") or "",
        )

    @property
    def active(self) -> bool:
        return any(self.cleaned_data.get(name) for name in self.fields)


def wanted_workflow_id(request: HttpRequest, workflows: list[Workflow]) -> int | None:
    value = request.GET.get("workflow", "")
    return next((w.id for w in workflows if str(w.id) == value), None)


def _partial_wanted(request: HtmxRequest, target: str) -> bool:
    """htmx asks for the element with this id (a history restore wants the whole page)."""
    return (
        bool(request.htmx)
        and request.htmx.target == target
        and not request.htmx.history_restore_request
    )


@login_required
@require_GET
def run_list(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    workspace = membership.workspace
    workflows = selectors.workflow_choices(workspace)
    workflow_id = wanted_workflow_id(request, workflows)
    version_numbers = selectors.version_numbers(workspace, workflow_id=workflow_id)
    form = RunFilterForm(request.GET, workflows=workflows, version_numbers=version_numbers)

    runs = form.runs(workspace)
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    filtered_workflow = next((w for w in workflows if w.id == workflow_id), None)
    context = {
        "membership": membership,
        "workspace": workspace,
        "form": form,
        "page": page,
        "has_workflows": bool(workflows),
        # The export takes the list's filters (not its page).
        "export_query": query.urlencode(),
        "can_export": membership.allows(Role.EDITOR),
        "can_delete": retention.run_delete_allowed(membership),
        "filtered_workflow": filtered_workflow,
        "runs_deleting": filtered_workflow is not None
        and retention.runs_deletion_under_way(filtered_workflow),
    }
    if not _partial_wanted(request, "run-results"):
        response = render(request, "workflows/run_list.html", context)
        patch_vary_headers(response, ("HX-Request", "HX-Target"))
        return response
    response = render(request, "workflows/run_list.html#run_results", context)
    # The address pushed to the history leaves out the filters left at "any".
    query = request.GET.copy()
    for key in [key for key, values in query.lists() if not any(values)]:
        del query[key]
    push_url(response, f"{request.path}?{query.urlencode()}" if query else request.path)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


# The detail --------------------------------------------------------------------


@dataclass
class ItemRow:
    """One item of a map, as its table shows it."""

    item: StepItem
    input_text: str
    output_text: str

    @property
    def finished(self) -> bool:
        return self.item.status in (
            StepItem.Status.SUCCEEDED,
            StepItem.Status.FAILED,
            StepItem.Status.SKIPPED,
        )

    @property
    def badge(self) -> str:
        return "queued" if self.item.status == StepItem.Status.PENDING else self.item.status


@dataclass
class StepRow:
    """One step of the run's definition, with what happened to it (if anything yet)."""

    index: int
    key: str
    title: str
    type: str
    status: str  # a StepRun status, or "pending" (not reached yet) or "not_run"
    step: StepRun | None
    bar_x: float | None = None  # percent of the run's span
    bar_width: float | None = None
    output_text: str = ""
    output_is_json: bool = False
    model: str = ""
    # A step of a paid kind (an LLM call): its tokens, cost and attempts are shown.
    paid: bool = False
    # While it waits: what for, in words.
    wait_note: str = ""
    # The runs it started (a `workflow` or `map` step's children).
    children: list[Run] = field(default_factory=list)
    # A map's items so far, and how many it goes over.
    items: list[ItemRow] = field(default_factory=list)
    items_total: int = 0

    @property
    def items_done(self) -> int:
        return sum(1 for item in self.items if item.finished)

    @property
    def items_failed(self) -> int:
        return sum(1 for item in self.items if item.item.status == StepItem.Status.FAILED)

    @property
    def label(self) -> str:
        return self.title or self.key


def _output_text(output: object) -> tuple[str, bool]:
    """Text to show, and whether it is JSON (pretty-printed)."""
    if output is None:
        return "", False
    if isinstance(output, str):
        stripped = output.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False), True
            except ValueError:
                pass
        return output, False
    return json.dumps(output, indent=2, ensure_ascii=False), True


def _ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


@dataclass
class Timeline:
    rows: list[StepRow]
    span_ms: int
    has_bars: bool


def _wait_note(run: Run, row: StepRow) -> str:
    """What a waiting step waits for, in a few words (the timeline and its card)."""
    state = row.step.state if row.step is not None and isinstance(row.step.state, dict) else {}
    if row.step is not None and row.step.started_at is None:
        return "Waiting for budget · not sent yet"
    if run.waiting_for == Run.WaitingFor.TIME and state.get("until"):
        return f"Waiting until {state['until']}"
    if run.waiting_for == Run.WaitingFor.DECISION:
        return "Waiting for a decision"
    if row.children:
        done = sum(1 for child in row.children if child.is_finished)
        if len(row.children) == 1:
            return f"Waiting for run #{row.children[0].id}"
        return f"Waiting for runs: {done} of {len(row.children)} done"
    return "Waiting"


def _timeline(run: Run, step_runs: list[StepRun], now: datetime) -> Timeline:
    by_key = {s.key: s for s in step_runs}
    definition_steps = (run.definition or {}).get("steps", [])
    rows: list[StepRow] = []
    for index, step in enumerate(definition_steps):
        step_run = by_key.pop(step.get("key"), None)
        if step_run is not None:
            status = step_run.status
        else:
            status = "not_run" if run.is_finished else "pending"
        kind = STEP_TYPES.get(str(step.get("type", "")))
        paid = bool(getattr(kind, "PAID", False))
        model = ""
        if kind is not None and paid:
            model = (
                (step_run.model if step_run else "")
                or step.get("model")
                or kind.DEFAULTS.get("model", "")
            )
        rows.append(
            StepRow(
                index=index + 1,
                key=step.get("key", ""),
                title=step.get("title", ""),
                type=step.get("type", ""),
                status=status,
                step=step_run,
                model=model,
                paid=paid,
            )
        )
    # Steps no longer in the snapshot cannot happen, but never hide a paid step.
    for step_run in by_key.values():
        rows.append(
            StepRow(
                index=len(rows) + 1,
                key=step_run.key,
                title="",
                type=step_run.type,
                status=step_run.status,
                step=step_run,
                paid=bool(getattr(STEP_TYPES.get(step_run.type), "PAID", False)),
            )
        )

    children = selectors.run_children(run)
    items = selectors.step_items(run)
    for row in rows:
        row.children = [child for child in children if child.parent_step == row.key]
        row.items = [
            ItemRow(
                item=item,
                input_text=item_preview(item.input),
                output_text=item_preview(item.output),
            )
            for item in items.get(row.key, [])
        ]
        if row.items and row.step is not None and isinstance(row.step.state, dict):
            total = row.step.state.get("total")
            row.items_total = total if isinstance(total, int) else len(row.items)
        elif row.items:
            row.items_total = len(row.items)
        if row.step is not None:
            row.output_text, row.output_is_json = _output_text(row.step.output)
            if row.status == StepRun.Status.WAITING:
                row.wait_note = _wait_note(run, row)

    start = run.started_at
    if start is None:
        return Timeline(rows=rows, span_ms=0, has_bars=False)
    end = run.finished_at or now
    # Reused steps ran in the earlier run and skipped ones not at all: they get no bar.
    timed = [
        (r, r.step, r.step.started_at)
        for r in rows
        if r.step and r.step.started_at and not r.step.reused and r.status != StepRun.Status.SKIPPED
    ]
    for _row, step, _started_at in timed:
        end = max(end, step.finished_at or now)
    span = max(_ms(start, end), 1.0)
    for row, step, started_at in timed:
        x = min(max(_ms(start, started_at) / span * 100, 0.0), 100.0)
        width = max(_ms(started_at, step.finished_at or now) / span * 100, MIN_BAR_PERCENT)
        row.bar_x = round(min(x, 100 - MIN_BAR_PERCENT), 2)
        row.bar_width = round(min(width, 100 - row.bar_x), 2)
    return Timeline(rows=rows, span_ms=round(span), has_bars=bool(timed))


DECISION_SHOWN = "decision:"


@dataclass
class DecisionAsk:
    """The step waiting for a decision, as its banner shows it."""

    step_key: str
    label: str
    message: str
    approvers: list[str]
    # Named in the step, but not editors or above when it asked: they cannot decide.
    ignored: list[str]
    # Approvers not emailed: the mail limits held their email (steps/approval/mail.py).
    emails_held: list[str]
    timeout_at: datetime | None
    on_timeout: str
    can_decide: bool

    @property
    def shown(self) -> str:
        """What the polling page says it shows (see `run_detail`)."""
        return DECISION_SHOWN + self.step_key


def _decision_ask(run: Run, rows: list[StepRow], membership: Membership) -> DecisionAsk | None:
    if run.status != Run.Status.WAITING or run.waiting_for != Run.WaitingFor.DECISION:
        return None
    row = next((r for r in rows if r.status == StepRun.Status.WAITING and r.step), None)
    if row is None or row.step is None:
        return None
    state = row.step.state if isinstance(row.step.state, dict) else {}
    approvers = state.get("approvers")
    return DecisionAsk(
        step_key=row.key,
        label=row.label,
        message=str(state.get("message") or ""),
        approvers=[str(a.get("email")) for a in approvers or [] if isinstance(a, dict)],
        ignored=[str(email) for email in state.get("ignored") or []],
        emails_held=[str(email) for email in state.get("emails_held") or []],
        timeout_at=parse_iso(state.get("timeout_at")),
        on_timeout=str(state.get("on_timeout") or "reject"),
        can_decide=services.run_decide_allowed(state=state, membership=membership),
    )


def run_context(membership: Membership, run: Run) -> dict[str, object]:
    """What the run page shows (also answered with a refused decision)."""
    now = timezone.now()
    timeline = _timeline(run, list(run.steps.all()), now)
    rows = timeline.rows
    inputs_text = {name: _output_text(value) for name, value in (run.inputs or {}).items()}
    output_text, output_is_json = _output_text(run.output)
    # Time spent waiting (for budget) is not running time.
    elapsed_ms = run.running_ms(now) if run.started_at else None
    return {
        "membership": membership,
        "workspace": membership.workspace,
        "run": run,
        "rows": rows,
        "timeline": timeline,
        "elapsed_ms": elapsed_ms,
        "steps_done": sum(
            1 for r in rows if r.status in (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED)
        ),
        "inputs_text": inputs_text,
        "output_text": output_text,
        "output_is_json": output_is_json,
        "payload_text": _output_text(run.payload)[0],
        "can_cancel": not run.is_finished
        and services.run_cancel_allowed(run=run, membership=membership),
        "can_resume": services.run_resumable(run),
        # Pruned by the workspace's retention: nothing left to run again with.
        "can_rerun": run.details_pruned_at is None,
        "can_delete": run.is_finished and retention.run_delete_allowed(membership),
        "decision": _decision_ask(run, rows, membership),
    }


@login_required
@require_GET
def run_detail(request: AuthedRequest, slug: str, run_id: int) -> HttpResponse:
    """The run page. While the run waits for a decision its poll says what it
    shows (`?shown=decision:<step>`), and is answered 204 (nothing swapped) as
    long as that is still so: a comment being typed in the banner survives."""
    membership = workspace_for(request, slug, role=Role.VIEWER)
    run = run_for(membership, run_id)
    polling = _partial_wanted(request, "run-live")
    shown = request.GET.get("shown", "")
    if (
        polling
        and shown.startswith(DECISION_SHOWN)
        and run.waiting_for == Run.WaitingFor.DECISION
        and selectors.step_waiting(run, shown.removeprefix(DECISION_SHOWN))
    ):
        return HttpResponse(status=204)
    context = run_context(membership, run)
    if polling:
        status = HttpResponseStopPolling.status_code if run.is_finished else 200
        response = render(request, "workflows/run_detail.html#run_live", context, status=status)
    else:
        response = render(request, "workflows/run_detail.html", context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


@login_required
@require_GET
async def run_events(request: AuthedRequest, slug: str, run_id: int) -> HttpResponseBase:
    """The run's progress as server-sent events, for the run page and the
    editor's test-run cards (htmx's SSE extension): holds no thread while it
    streams, and shares one database poll per run with every other viewer. A member with
    STREAMS_PER_USER streams open already gets a plain 429."""
    membership = await sync_to_async(workspace_for)(request, slug, role=Role.VIEWER)
    run = await sync_to_async(run_for)(membership, run_id)
    slot = await sync_to_async(stream_slots.take)(stream_slots.user_holder(request.user.pk))
    # The request's connection goes back now: the hub polls with its own.
    await sync_to_async(sql.connection_release)(keep_unpooled=False)
    if slot is None:
        # The page's stream is an extra: its every-10-s poll goes on, and the SSE extension
        # tries again later, backing off.
        return HttpResponse(
            f"Too many live streams open ({settings.STREAMS_PER_USER}): close a few tabs.",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
    linger = "text/event-stream" in request.headers.get("Accept", "")
    return event_response(request, run.id, BrowserFeed(linger=linger), slot)


# Actions -----------------------------------------------------------------------


@require_POST
@login_required
def run_rerun(request: AuthedRequest, slug: str, run_id: int) -> HttpResponse:
    """A new run with the same inputs: the same version, or the current draft for a test run."""
    membership = workspace_for(request, slug, role=Role.VIEWER)
    run = run_for(membership, run_id)
    if run.details_pruned_at is not None:
        messages.error(request, f"{run.details_removed_note} Its inputs are gone: run it anew.")
        return redirect("run_detail", slug=slug, run_id=run.id)
    try:
        new = services.run_start(
            workflow=run.workflow,
            trigger=Run.Trigger.MANUAL,
            inputs=run.inputs,
            user=request.user,
            version=run.version,
            draft=run.version_id is None,
            payload=run.payload,  # a webhook's body is part of what the run was given
        )
    except services.WorkflowInvalid as e:
        messages.error(
            request, f"The draft has errors, so it cannot run: {e}. Fix them in the editor."
        )
        return redirect("run_detail", slug=slug, run_id=run.id)
    except (InputError, services.NotPublished) as e:
        messages.error(request, f"Could not start the run: {e}")
        return redirect("run_detail", slug=slug, run_id=run.id)
    messages.success(request, f"Run #{new.id} started with the inputs of run #{run.id}.")
    return redirect("run_detail", slug=slug, run_id=new.id)


@require_POST
@login_required
def run_resume(request: AuthedRequest, slug: str, run_id: int) -> HttpResponse:
    """Resume from the failed step: finished steps are reused, not called or paid again."""
    membership = workspace_for(request, slug, role=Role.VIEWER)
    run = run_for(membership, run_id)
    try:
        new = services.run_resume(run=run, user=request.user)
    except services.RunNotResumable as e:
        messages.error(request, str(e))
        return redirect("run_detail", slug=slug, run_id=run.id)
    messages.success(
        request, f"Run #{new.id} resumes run #{run.id}; its finished steps are reused."
    )
    return redirect("run_detail", slug=slug, run_id=new.id)


@require_POST
@login_required
def run_cancel(request: AuthedRequest, slug: str, run_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    run = run_for(membership, run_id)
    try:
        canceled = services.run_cancel(run=run, membership=membership)
    except services.NotAllowedToCancel as e:
        raise PermissionDenied(str(e)) from None
    if canceled:
        messages.success(
            request, "Run canceled. A step already in flight finishes and is recorded."
        )
    else:
        messages.info(request, "This run had already finished.")
    return redirect("run_detail", slug=slug, run_id=run.id)
