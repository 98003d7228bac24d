from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import workspace_for
from accounts.models import Role


@login_required
def workspace_home(request: HttpRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    workspace = membership.workspace
    workflows = workspace.workflows.filter(archived_at__isnull=True).order_by("name")
    return render(
        request,
        "workflows/workflow_list.html",
        {"membership": membership, "workspace": workspace, "workflows": workflows},
    )
