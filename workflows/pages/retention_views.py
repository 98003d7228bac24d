"""Keeping and removing runs from the pages: deleting one run or all of a workflow's runs
(admins), and exporting the runs a list shows as JSONL (editors). What deleting keeps is in
workflows/retention.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.access import AuthedRequest, run_for, workflow_for, workspace_for
from accounts.models import Role
from workflows import retention, selectors
from workflows.pages.run_views import RunFilterForm, wanted_workflow_id

JSONL = "application/x-ndjson"


@require_POST
@login_required
def run_delete(request: AuthedRequest, slug: str, run_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    run = run_for(membership, run_id)
    try:
        retention.run_delete(run=run, membership=membership)
    except retention.RunNotDeletable as e:
        messages.error(request, str(e))
        return redirect("run_detail", slug=slug, run_id=run.id)
    messages.success(
        request, f"Run #{run.id} deleted. Its cost stays on the usage page and in the budget."
    )
    return redirect(f"{reverse('run_list', args=[slug])}?workflow={run.workflow_id}")


@require_POST
@login_required
def workflow_runs_delete(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.ADMIN)
    try:
        retention.workflow_runs_delete_request(workflow=workflow, membership=membership)
    except retention.RunsBeingDeleted as e:
        messages.info(request, str(e))
    else:
        messages.success(
            request,
            f"Deleting the finished runs of “{workflow.name}” in the background: they leave "
            "this list as they go. Runs not finished yet stay; their cost stays on the usage "
            "page and in the budget.",
        )
    return redirect(f"{reverse('run_list', args=[slug])}?workflow={workflow.id}")


@require_GET
@login_required
def run_export(request: AuthedRequest, slug: str) -> StreamingHttpResponse:
    """The runs the list shows with the same filters, one JSON object per line (the API's
    run shape, with steps), streamed as a file."""
    membership = workspace_for(request, slug, role=Role.EDITOR)
    workspace = membership.workspace
    workflows = selectors.workflow_choices(workspace)
    version_numbers = selectors.version_numbers(
        workspace, workflow_id=wanted_workflow_id(request, workflows)
    )
    form = RunFilterForm(request.GET, workflows=workflows, version_numbers=version_numbers)
    response = StreamingHttpResponse(selectors.runs_jsonl(form.runs(workspace)), content_type=JSONL)
    day = timezone.now().strftime("%Y-%m-%d")
    response["Content-Disposition"] = f'attachment; filename="runs-{workspace.slug}-{day}.jsonl"'
    response["Cache-Control"] = "no-store"
    return response
