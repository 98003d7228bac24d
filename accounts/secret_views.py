"""The Secrets page of a workspace's settings (admins and owners), and its internal hosts.

A secret's value is typed once and never shown again, not even to admins: the
page lists names and the hosts each may be sent to (or, for a secret saved
before hosts existed, a warning that it may go anywhere); a value and its
hosts can be replaced, or the secret deleted.
Owners also choose here which of the operator's internal hosts the
workspace's http steps may reach (OUTBOUND_ALLOWED_HOSTS, narrowed).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors, services
from accounts.access import AuthedRequest, workspace_for
from accounts.forms import OutboundHostsForm, SecretForm, SecretValueForm
from accounts.models import Membership, Role, WorkspaceSecret

PAGE = "accounts/secrets.html"


def _render_secrets(
    request: HttpRequest,
    membership: Membership,
    *,
    status: int = 200,
    form: SecretForm | None = None,
    rotate: tuple[int, SecretValueForm] | None = None,
    hosts_form: OutboundHostsForm | None = None,
) -> HttpResponse:
    workspace = membership.workspace
    secrets = list(selectors.workspace_secrets(membership))
    response = render(
        request,
        PAGE,
        {
            "membership": membership,
            "workspace": workspace,
            "secrets": secrets,
            "legacy_secrets": [secret for secret in secrets if secret.any_host],
            "form": form or SecretForm(),
            "rotate_id": rotate[0] if rotate else None,
            "rotate_form": rotate[1] if rotate else SecretValueForm(auto_id="rotate_%s"),
            "is_owner": membership.role == Role.OWNER,
            "operator_hosts": list(settings.OUTBOUND_ALLOWED_HOSTS),
            "hosts_form": hosts_form
            or OutboundHostsForm(
                initial={
                    "narrowed": workspace.outbound_narrowed,
                    "allowed_hosts": workspace.outbound_allowed_hosts,
                }
            ),
            "subnav_name": "workspace_settings",  # the header's Settings tab is the current one
        },
        status=status,
    )
    add_never_cache_headers(response)
    return response


def _secret(membership: Membership, secret_id: int) -> WorkspaceSecret:
    secret = selectors.workspace_secret_of(membership, secret_id)
    if secret is None:
        raise Http404("No such secret.")
    return secret


@login_required
@require_GET
def secrets_page(request: AuthedRequest, slug: str) -> HttpResponse:
    return _render_secrets(request, workspace_for(request, slug, role=Role.ADMIN))


@login_required
@require_POST
def secret_create(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    form = SecretForm(request.POST)
    if form.is_valid():
        try:
            secret = services.secret_create(
                workspace=membership.workspace,
                name=form.cleaned_data["name"],
                value=form.cleaned_data["value"],
                allowed_hosts=form.cleaned_data["allowed_hosts"],
                actor=membership,
            )
        except services.SecretRefused as e:
            form.add_error("name", str(e))
        else:
            messages.success(
                request, f"Secret {secret.name} saved. Use it as {{{{ secrets.{secret.name} }}}}."
            )
            return redirect("secrets", slug)
    return _render_secrets(request, membership, status=422, form=form)


@login_required
@require_POST
def secret_rotate(request: AuthedRequest, slug: str, secret_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    secret = _secret(membership, secret_id)
    form = SecretValueForm(request.POST, auto_id="rotate_%s")
    if form.is_valid():
        try:
            services.secret_rotate(
                secret=secret,
                value=form.cleaned_data["value"],
                allowed_hosts=form.cleaned_data["allowed_hosts"],
                actor=membership,
            )
        except services.SecretRefused as e:
            form.add_error("value", str(e))
        else:
            hosts = ", ".join(secret.allowed_hosts)
            if form.cleaned_data["value"]:
                done = f"The value of {secret.name} is replaced"
            else:
                done = f"{secret.name} keeps its value"
            messages.success(request, f"{done}; runs send it only to {hosts} from now on.")
            return redirect("secrets", slug)
    return _render_secrets(request, membership, status=422, rotate=(secret.id, form))


@login_required
@require_POST
def secret_delete(request: AuthedRequest, slug: str, secret_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    secret = _secret(membership, secret_id)
    services.secret_delete(secret=secret, actor=membership)
    messages.success(
        request, f"Secret {secret.name} deleted: http steps that use it fail until it exists again."
    )
    return redirect("secrets", slug)


@login_required
@require_POST
def outbound_hosts(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.OWNER)
    form = OutboundHostsForm(request.POST)
    if not form.is_valid():
        return _render_secrets(request, membership, status=422, hosts_form=form)
    services.outbound_narrow(
        workspace=membership.workspace,
        narrowed=form.cleaned_data["narrowed"],
        allowed_hosts=form.cleaned_data["allowed_hosts"],
        actor=membership,
    )
    messages.success(request, "Saved which internal hosts this workspace's http steps may reach.")
    return redirect("secrets", slug)
