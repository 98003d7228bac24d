"""The "When a run fails" page of a workspace's settings (admins and owners).

Email the owners and admins, and/or POST the failed runs to a URL signed with
a secret shown once (held across the redirect by `shown_once`), rotatable.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from accounts.access import AuthedRequest, workspace_for
from accounts.mail import mail_configured
from accounts.models import Membership, Role
from config.lib.outbound import url_refusal
from workflows.integrations import failure_alerts
from workflows.integrations.shown_once import shown_once_keep, shown_once_take

PAGE = "workflows/failure_alerts.html"


class FailureAlertForm(forms.Form):
    email = forms.BooleanField(required=False, label="Email the owners and admins")
    url = forms.URLField(
        max_length=2000,
        required=False,
        assume_scheme="https",
        label="POST failed runs to",
        help_text="Signed with Standard Webhooks under a secret shown once when the URL is set.",
    )

    def __init__(self, *args: object, membership: Membership, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.membership = membership

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        allowed = failure_alerts.allowance_of(self.membership.workspace)
        refusal = url_refusal(url, allowed=allowed) if url else None
        if refusal:
            raise forms.ValidationError(refusal)
        return url


def _page(request: HttpRequest) -> str:
    return reverse("failure_alerts", args=[request.resolver_match.kwargs["slug"]])  # type: ignore[union-attr]


def _render(
    request: HttpRequest,
    membership: Membership,
    *,
    form: FailureAlertForm | None = None,
    new_secret: str = "",
    status: int = 200,
) -> HttpResponse:
    alert = failure_alerts.failure_alert_of(membership.workspace)
    response = render(
        request,
        PAGE,
        {
            "membership": membership,
            "workspace": membership.workspace,
            "alert": alert,
            "form": form
            or FailureAlertForm(
                initial={"email": alert.email, "url": alert.url}, membership=membership
            ),
            "new_secret": new_secret,
            "mail_configured": mail_configured(),
            "subnav_name": "workspace_settings",
        },
        status=status,
    )
    add_never_cache_headers(response)  # a new secret shows here once
    return response


@login_required
@require_GET
def failure_alerts_page(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    held = shown_once_take(request, page=_page(request))
    return _render(request, membership, new_secret=held.secret if held else "")


@login_required
@require_POST
def failure_alerts_save(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    form = FailureAlertForm(request.POST, membership=membership)
    if not form.is_valid():
        return _render(request, membership, form=form, status=422)
    secret = failure_alerts.failure_alert_set(
        workspace=membership.workspace,
        email=form.cleaned_data["email"],
        url=form.cleaned_data["url"],
        user=request.user,
    )
    if secret:
        shown_once_keep(
            request, page=_page(request), object_id=membership.workspace_id, secret=secret
        )
    messages.success(request, "Saved what happens when a run fails.")
    return redirect("failure_alerts", slug)


@login_required
@require_POST
def failure_alerts_rotate(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    try:
        secret = failure_alerts.failure_alert_rotate(
            workspace=membership.workspace, user=request.user
        )
    except failure_alerts.NoAlertUrl as e:
        messages.error(request, str(e))
        return redirect("failure_alerts", slug)
    shown_once_keep(request, page=_page(request), object_id=membership.workspace_id, secret=secret)
    messages.success(request, "A new signing secret is made: the previous one no longer signs.")
    return redirect("failure_alerts", slug)
