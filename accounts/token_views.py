"""The API tokens page of a workspace's settings (admins and owners).

A new token is shown once: the POST that made it redirects to the page, which
shows it on its next GET only (workflows/integrations/shown_once.py: held
encrypted in the session in between, never in clear). The page answers
`Cache-Control: no-store`, so neither Back nor a reload brings a token back.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from accounts.access import AuthedRequest, workspace_for
from accounts.forms import TokenForm
from accounts.models import Membership, Role
from workflows import selectors
from workflows.integrations import api_auth
from workflows.integrations.shown_once import shown_once_keep, shown_once_take


def _render_tokens(
    request: HttpRequest,
    membership: Membership,
    *,
    status: int = 200,
    form: TokenForm | None = None,
    new_token: api_auth.TokenWithSecret | None = None,
) -> HttpResponse:
    tokens = selectors.api_tokens(membership)
    response = render(
        request,
        "accounts/api_tokens.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "tokens": tokens,
            "form": form or TokenForm(),
            "new_token": new_token,
            "subnav_name": "workspace_settings",  # the header's Settings tab is the current one
        },
        status=status,
    )
    add_never_cache_headers(response)  # a new token shows here once
    return response


@login_required
@require_GET
def api_tokens(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    new_token = None
    held = shown_once_take(request, page=request.path)
    if held is not None:
        token = selectors.api_token_of(membership, held.object_id, revoked=False)
        if token is not None:
            new_token = api_auth.TokenWithSecret(token=token, value=held.secret)
    return _render_tokens(request, membership, new_token=new_token)


@login_required
@require_POST
def api_token_create(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render_tokens(request, membership, status=422, form=form)
    made = api_auth.token_create(
        workspace=membership.workspace, name=form.cleaned_data["name"], user=request.user
    )
    page = reverse("api_tokens", args=[slug])
    shown_once_keep(request, page=page, object_id=made.token.id, secret=made.value)
    response = redirect(page)
    response.status_code = 303
    return response


@login_required
@require_POST
def api_token_revoke(request: AuthedRequest, slug: str, token_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    token = selectors.api_token_of(membership, token_id)
    if token is None:
        raise Http404("No such token.")
    if api_auth.token_revoke(token=token, user=request.user):
        messages.success(request, f"Token “{token.name}” revoked: it stops working now.")
    return redirect("api_tokens", slug)
