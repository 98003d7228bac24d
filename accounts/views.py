from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.access import workspace_for
from accounts.forms import SignupForm, WorkspaceForm
from accounts.models import Membership, Role


def home(request: HttpRequest) -> HttpResponse:
    """The landing page; signed-in people go straight to a workspace."""
    if request.user.is_authenticated:
        membership = (
            Membership.objects.filter(user=request.user).select_related("workspace").order_by("created_at").first()
        )
        if membership:
            return redirect("workspace_home", slug=membership.workspace.slug)
        return redirect("workspace_create")
    return render(request, "home.html")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, workspace = services.user_signup(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            name=form.cleaned_data["name"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to Stepwise! This is your workspace.")
        return redirect("workspace_home", slug=workspace.slug)
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.workspace_create(name=form.cleaned_data["name"], owner=request.user)
        messages.success(request, f"Workspace “{workspace.name}” created.")
        return redirect("workspace_home", slug=workspace.slug)
    return render(request, "accounts/workspace_create.html", {"form": form})


@login_required
def workspace_settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    members = membership.workspace.memberships.select_related("user").order_by("created_at")
    return render(
        request,
        "accounts/workspace_settings.html",
        {"membership": membership, "workspace": membership.workspace, "members": members},
    )
