from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.validators import validate_email
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from accounts import selectors, services, verification
from accounts.access import AuthedRequest, invitation_for, member_for, workspace_for
from accounts.audit_display import action_label, entry_diff
from accounts.forms import (
    AuditFilterForm,
    BudgetForm,
    InvitationForm,
    InvitationSignupForm,
    LoginForm,
    PublishRuleForm,
    RetentionForm,
    RoleForm,
    SignupForm,
    WorkspaceDeleteForm,
    WorkspaceForm,
    role_choices,
)
from accounts.mail import MailLimited, mail_configured, mail_request_allow
from accounts.models import MAX_RUN_RETENTION_DAYS, MailRequest, Membership, Role
from accounts.services import InvitationUnusable, MembershipRefused
from config.lib.client_ip import client_ip
from workflows.billing.charts import usage_chart
from workflows.billing.usage import daily_usage, month_budget, usage_by_member, usage_by_workflow
from workflows.integrations.shown_once import shown_once_keep, shown_once_take


def home(request: HttpRequest) -> HttpResponse:
    """The landing page; signed-in people go straight to a workspace."""
    if request.user.is_authenticated:
        membership = selectors.membership_first(request.user)
        if membership:
            return redirect("workspace_home", slug=membership.workspace.slug)
        return redirect("workspace_create")
    return render(request, "home.html")


def _limited(response: HttpResponse, limited: MailLimited) -> HttpResponse:
    response["Retry-After"] = str(limited.retry_after)
    return response


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """The same answer whether the address is new or taken (accounts/verification.py)."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        limited = mail_request_allow(
            kind=MailRequest.Kind.SIGNUP, ip=client_ip(request), recipient=email
        )
        if limited:
            form.add_error(None, limited.message)
            return _limited(
                render(request, "accounts/signup.html", {"form": form}, status=429), limited
            )
        user = verification.signup_request(
            email=email, password=form.cleaned_data["password"], name=form.cleaned_data["name"]
        )
        request.session["signup_email"] = email
        # Server-side only: lets the browser that signed up be logged in by the link.
        request.session["signup_user_id"] = user.id if user else None
        return redirect("signup_sent")
    return render(request, "accounts/signup.html", {"form": form})


@require_GET
def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(request, SIGNUP_SENT_PAGE, {"email": request.session.get("signup_email", "")})


@require_POST
def email_verify_resend(request: HttpRequest) -> HttpResponse:
    email = request.POST.get("email", "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        context = {"email": email, "resend_error": "Enter a valid email address."}
        return render(request, SIGNUP_SENT_PAGE, context, status=422)
    limited = mail_request_allow(
        kind=MailRequest.Kind.SIGNUP, ip=client_ip(request), recipient=email
    )
    if limited:
        context = {"email": email, "resend_error": limited.message}
        return _limited(render(request, SIGNUP_SENT_PAGE, context, status=429), limited)
    verification.verification_resend(email=email)
    request.session["signup_email"] = email
    return redirect("signup_sent")


@require_http_methods(["GET", "POST"])
def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the confirmation mail: a page with a
    button, so that mail scanners confirm nothing."""
    try:
        user = verification.user_for_token(token)
    except verification.LinkUnusable as e:
        return render(request, "accounts/email_verify.html", {"problem": str(e)}, status=410)
    if request.method == "POST":
        verification.email_verify(token=token)
        if request.session.get("signup_user_id") == user.id and user.is_active:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(
                request, "Your address is confirmed. Welcome to Stepwise! This is your workspace."
            )
            return redirect("home")
        messages.success(request, f"{user.email} is confirmed: log in to start.")
        return redirect("login")
    return render(request, "accounts/email_verify.html", {"user_email": user.email})


class LoginView(auth_views.LoginView):
    authentication_form = LoginForm


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, rate-limited per client address and per recipient (accounts/mail.py)."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        limited = mail_request_allow(
            kind=MailRequest.Kind.PASSWORD_RESET,
            ip=client_ip(self.request),
            recipient=form.cleaned_data["email"],
        )
        if limited:
            form.add_error(None, limited.message)
            return _limited(
                self.render_to_response(self.get_context_data(form=form), status=429), limited
            )
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        # The reset link came by mail to the account's address: that confirms it.
        verification.email_mark_verified(user=form.user)
        return response


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: AuthedRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.workspace_create(name=form.cleaned_data["name"], owner=request.user)
        messages.success(request, f"Workspace “{workspace.name}” created.")
        return redirect("workspace_home", slug=workspace.slug)
    return render(request, "accounts/workspace_create.html", {"form": form})


# --- Workspace settings: members, invitations, budget, the workspace itself -----------------------

SETTINGS_PAGE = "accounts/workspace_settings.html"
SIGNUP_SENT_PAGE = "accounts/signup_sent.html"
INVITATION_PAGE = "accounts/invitation_accept.html"


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    is_self: bool
    can_change: bool
    can_remove: bool
    is_last_owner: bool


def _member_rows(actor: Membership) -> list[MemberRow]:
    members = selectors.members(actor.workspace)
    owners = sum(1 for m in members if m.role == Role.OWNER)
    rows = []
    for m in members:
        manageable = services.membership_manageable(actor=actor, member=m)
        last_owner = m.role == Role.OWNER and owners <= 1
        rows.append(
            MemberRow(
                membership=m,
                is_self=m.id == actor.id,
                can_change=manageable and m.id != actor.id and not last_owner,
                can_remove=manageable and m.id != actor.id and not last_owner,
                is_last_owner=last_owner,
            )
        )
    return rows


def _settings_context(actor: Membership, **extra: object) -> dict[str, object]:
    workspace = actor.workspace
    budget_usd = (
        None if workspace.budget_nanousd is None else BudgetForm.usd(workspace.budget_nanousd)
    )
    context: dict[str, object] = {
        "membership": actor,
        "workspace": workspace,
        "member_rows": _member_rows(actor),
        "invitations": selectors.invitations_pending(workspace),
        "role_choices": role_choices(actor),
        "is_owner": actor.role == Role.OWNER,
        "month": month_budget(workspace),
        "rename_form": WorkspaceForm(initial={"name": workspace.name}),
        "budget_form": BudgetForm(initial={"monthly_budget_usd": budget_usd}),
        "retention_form": RetentionForm(
            initial={"run_retention_days": workspace.run_retention_days}
        ),
        "retention_cap": settings.RUN_RETENTION_MAX_DAYS,
        "max_retention_days": MAX_RUN_RETENTION_DAYS,
        "publish_rule_form": PublishRuleForm(
            initial={"eval_min_percent": actor.workspace.publish_eval_min_percent}
        ),
        "invite_form": InvitationForm(actor=actor),
        "delete_form": WorkspaceDeleteForm(workspace=workspace),
        # POSTs that re-render this page still show the Settings tab as current.
        "subnav_name": "workspace_settings",
    }
    context.update(extra)
    return context


def _settings_again(request: HttpRequest, actor: Membership, **forms: object) -> HttpResponse:
    """The settings page showing a form's errors (422: htmx swaps it like a 200)."""
    return render(request, SETTINGS_PAGE, _settings_context(actor, **forms), status=422)


def _back_to_settings(
    request: HttpRequest, slug: str, *, ok: str = "", error: str = ""
) -> HttpResponse:
    if ok:
        messages.success(request, ok)
    if error:
        messages.error(request, error)
    return redirect("workspace_settings", slug=slug)


@require_GET
@login_required
def workspace_settings(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    extra: dict[str, object] = {}
    held = shown_once_take(
        request, page=request.path
    )  # an invitation just made (invitation_create)
    if held is not None:
        invitation = selectors.invitation_pending(membership.workspace, held.object_id)
        if invitation is not None:
            invitation.email_error = held.detail
            extra = {
                "new_invitation": invitation,
                "new_invitation_link": services.invitation_link(held.secret, request),
            }
    response = render(request, SETTINGS_PAGE, _settings_context(membership, **extra))
    add_never_cache_headers(response)  # a new invitation's link shows here once
    return response


@require_POST
@login_required
def workspace_rename(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.OWNER)
    form = WorkspaceForm(request.POST)
    if not form.is_valid():
        return _settings_again(request, actor, rename_form=form)
    old = actor.workspace.name
    services.workspace_rename(
        workspace=actor.workspace, name=form.cleaned_data["name"], actor=actor
    )
    if old == actor.workspace.name:
        return _back_to_settings(request, slug)
    return _back_to_settings(request, slug, ok=f"Renamed “{old}” to “{actor.workspace.name}”.")


@require_POST
@login_required
def workspace_budget(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.OWNER)
    form = BudgetForm(request.POST)
    if not form.is_valid():
        return _settings_again(request, actor, budget_form=form)
    budget = form.budget_nanousd()
    services.budget_set(workspace=actor.workspace, budget_nanousd=budget, actor=actor)
    if budget is None:
        return _back_to_settings(
            request, slug, ok="The monthly budget is removed: LLM calls are not limited."
        )
    return _back_to_settings(
        request, slug, ok=f"The monthly budget is now ${BudgetForm.usd(budget):,}."
    )


@require_POST
@login_required
def workspace_retention(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.OWNER)
    form = RetentionForm(request.POST)
    if not form.is_valid():
        return _settings_again(request, actor, retention_form=form)
    workspace = services.run_retention_set(
        workspace=actor.workspace, days=form.cleaned_data["run_retention_days"], actor=actor
    )
    days = workspace.run_retention_days_effective
    return _back_to_settings(
        request, slug, ok=f"Run details are now kept for {days} day{'s' if days != 1 else ''}."
    )


@require_POST
@login_required
def workspace_publish_rule(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.OWNER)
    form = PublishRuleForm(request.POST)
    if not form.is_valid():
        return _settings_again(request, actor, publish_rule_form=form)
    percent = form.cleaned_data["eval_min_percent"]
    services.publish_eval_rule_set(workspace=actor.workspace, percent=percent, actor=actor)
    if percent is None:
        return _back_to_settings(request, slug, ok="Publishing no longer needs an eval.")
    return _back_to_settings(
        request, slug, ok=f"Publishing now needs an eval of the draft passing {percent} %."
    )


@require_POST
@login_required
def workspace_delete(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.OWNER)
    form = WorkspaceDeleteForm(request.POST, workspace=actor.workspace)
    if not form.is_valid():
        return _settings_again(request, actor, delete_form=form)
    name = actor.workspace.name
    services.workspace_delete(
        workspace=actor.workspace, confirm_name=form.cleaned_data["confirm_name"], actor=actor
    )
    messages.success(request, f"The workspace “{name}” and everything in it were deleted.")
    return redirect("home")


@require_POST
@login_required
def invitation_create(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.ADMIN)
    form = InvitationForm(request.POST, actor=actor)
    if not form.is_valid():
        if request.htmx:
            context = _settings_context(actor, invite_form=form)
            return render(request, f"{SETTINGS_PAGE}#invitations", context, status=422)
        return _settings_again(request, actor, invite_form=form)
    limited = mail_request_allow(
        kind=MailRequest.Kind.INVITATION, ip=client_ip(request), user=actor.user
    )
    if limited:
        form.add_error(None, limited.message)
        if request.htmx:  # 422: htmx swaps the card with the error in it
            context = _settings_context(actor, invite_form=form)
            response = render(request, f"{SETTINGS_PAGE}#invitations", context, status=422)
            return trigger_client_event(
                response, "toast", {"level": "error", "message": limited.message}
            )
        return _limited(
            render(request, SETTINGS_PAGE, _settings_context(actor, invite_form=form), status=429),
            limited,
        )
    try:
        invitation, token = services.invitation_create(
            workspace=actor.workspace,
            email=form.cleaned_data["email"],
            role=Role(form.cleaned_data["role"]),
            actor=actor,
        )
    except MembershipRefused as e:
        form.add_error(None, str(e))
        return _settings_again(request, actor, invite_form=form)
    # The link is shown here once, for sharing another way; only its hash is stored.
    context = _settings_context(
        actor,
        new_invitation=invitation,
        new_invitation_link=services.invitation_link(token, request),
    )
    if request.htmx:
        response = render(request, f"{SETTINGS_PAGE}#invitations", context)
        add_never_cache_headers(response)
        if invitation.email_error:
            message = f"The email to {invitation.email} could not be sent: share the link."
            toast = {"level": "warning", "message": message}
        elif not mail_configured():
            message = (
                "Mail is not configured on this server (EMAIL_URL): share the link with "
                f"{invitation.email}."
            )
            toast = {"level": "warning", "message": message}
        else:
            toast = {"level": "success", "message": f"Invitation sent to {invitation.email}."}
        return trigger_client_event(response, "toast", toast)
    # Without htmx: redirect, so that a reload does not invite again
    # (workflows/integrations/shown_once.py).
    page = reverse("workspace_settings", args=[slug])
    shown_once_keep(
        request,
        page=page,
        object_id=invitation.id,
        secret=token,
        detail=str(invitation.email_error or ""),
    )
    response = redirect(page)
    response.status_code = 303
    return response


@require_POST
@login_required
def invitation_revoke(request: AuthedRequest, slug: str, invitation_id: int) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.ADMIN)
    invitation = invitation_for(actor, invitation_id)
    try:
        services.invitation_revoke(invitation=invitation, actor=actor)
    except MembershipRefused as e:
        return _back_to_settings(request, slug, error=str(e))
    return _back_to_settings(
        request, slug, ok=f"The invitation to {invitation.email} was withdrawn."
    )


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@require_POST
@login_required
def member_role(request: AuthedRequest, slug: str, member_id: int) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.ADMIN)
    member = member_for(actor, member_id)
    form = RoleForm(request.POST, actor=actor)
    error = ok = ""
    if not form.is_valid():
        error = "Choose one of the roles offered."
    else:
        try:
            services.membership_change_role(
                membership=member, role=Role(form.cleaned_data["role"]), actor=actor
            )
            ok = (
                f"{member.user.display_name} is now "
                f"{_with_article(member.get_role_display().lower())}."
            )
        except MembershipRefused as e:
            error = str(e)
    if member.id == actor.id and not member.allows(Role.ADMIN):
        messages.success(request, ok)
        url = reverse("workspace_home", args=[slug])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.htmx:
        status = 422 if error else 200
        response = render(
            request, f"{SETTINGS_PAGE}#members", _settings_context(actor), status=status
        )
        toast = {"level": "error" if error else "success", "message": error or ok}
        return trigger_client_event(response, "toast", toast)
    return _back_to_settings(request, slug, ok=ok, error=error)


@require_POST
@login_required
def member_remove(request: AuthedRequest, slug: str, member_id: int) -> HttpResponse:
    actor = workspace_for(request, slug, role=Role.ADMIN)
    member = member_for(actor, member_id)
    if member.id == actor.id:
        return redirect("workspace_leave", slug=slug)
    try:
        services.membership_remove(membership=member, actor=actor)
    except MembershipRefused as e:
        return _back_to_settings(request, slug, error=str(e))
    return _back_to_settings(
        request, slug, ok=f"{member.user.display_name} was removed from {actor.workspace.name}."
    )


@require_http_methods(["GET", "POST"])
@login_required
def workspace_leave(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    workspace = membership.workspace
    error = ""
    if request.method == "POST":
        try:
            services.workspace_leave(membership=membership)
        except MembershipRefused as e:
            error = str(e)
        else:
            messages.success(request, f"You left {workspace.name}.")
            return redirect("home")
    owners = selectors.owners_count(workspace)
    return render(
        request,
        "accounts/workspace_leave.html",
        {
            "membership": membership,
            "workspace": workspace,
            "error": error,
            "is_last_owner": membership.role == Role.OWNER and owners <= 1,
            "subnav_name": "workspace_settings",
        },
        status=422 if error else 200,
    )


# --- Invitations, from the invitee's side --------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the email. Works for people with and without an account."""
    invitation = services.invitation_by_token(token)
    user = request.user if request.user.is_authenticated else None
    context: dict[str, object] = {"invitation": invitation, "token": token}
    try:
        services.invitation_check(invitation, user)
    except InvitationUnusable as e:
        if (
            e.reason == "used"
            and user is not None
            and invitation is not None
            and selectors.is_member(invitation.workspace, user)
        ):
            messages.info(request, f"You are already a member of {invitation.workspace.name}.")
            return redirect("workspace_home", slug=invitation.workspace.slug)
        status = {"unknown": 404, "wrong_account": 403}.get(e.reason, 410)
        return render(request, INVITATION_PAGE, {**context, "problem": e}, status=status)
    assert invitation is not None
    workspace = invitation.workspace
    role = _with_article(invitation.get_role_display().lower())

    if user is not None:
        if request.method == "POST":
            try:
                services.invitation_accept(invitation=invitation, user=user)
            except InvitationUnusable as e:  # withdrawn a moment ago
                return render(request, INVITATION_PAGE, {**context, "problem": e}, status=410)
            messages.success(request, f"Welcome to {workspace.name}! You joined as {role}.")
            return redirect("workspace_home", slug=workspace.slug)
        context["already_member"] = selectors.is_member(workspace, user)
        return render(request, INVITATION_PAGE, context)

    has_account = selectors.account_exists(invitation.email)
    form = InvitationSignupForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and not has_account and form.is_valid():
        try:
            new_user, _ = services.invitation_signup(
                invitation=invitation,
                password=form.cleaned_data["password"],
                name=form.cleaned_data["name"],
            )
        except IntegrityError:
            has_account = True
        except InvitationUnusable as e:
            return render(request, INVITATION_PAGE, {**context, "problem": e}, status=410)
        else:
            login(request, new_user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(
                request, f"Welcome to Stepwise! You joined {workspace.name} as {role}."
            )
            return redirect("workspace_home", slug=workspace.slug)
    context.update(
        has_account=has_account,
        form=form,
        login_url=f"{reverse('login')}?{urlencode({'next': request.path})}",
    )
    return render(request, INVITATION_PAGE, context, status=422 if form.errors else 200)


# --- Audit log and usage -------------------------------------------------------------------------

AUDIT_PAGE_SIZE = 50


@require_GET
@login_required
def audit_log(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.ADMIN)
    workspace = membership.workspace
    form = AuditFilterForm(
        request.GET,
        actions=[(a, action_label(a)) for a in selectors.audit_actions(workspace)],
        actors=selectors.audit_actors(workspace),
    )
    entries = selectors.audit_entries(workspace)
    filtered = False
    if form.is_valid():
        data = form.cleaned_data
        entries = selectors.audit_entries(
            workspace,
            action=data["action"],
            actor=data["actor"],
            since=data["since"],
            until=data["until"],
        )
        filtered = any(data.values())
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "accounts/audit_log.html",
        {
            "membership": membership,
            "workspace": workspace,
            "form": form,
            "filtered": filtered,
            "page": page,
            "rows": [
                (entry, action_label(entry.action), entry_diff(entry.before, entry.after))
                for entry in page
            ],
            "query": query.urlencode(),
        },
    )


@require_GET
@login_required
def workspace_usage(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    workspace = membership.workspace
    # "production": without eval runs (workflows/evals/), which the month's spend still counts.
    production = request.GET.get("view") == "production"
    days = daily_usage(workspace, production=production)
    by_workflow = usage_by_workflow(workspace, production=production)
    chart = usage_chart(days)
    return render(
        request,
        "accounts/usage.html",
        {
            "membership": membership,
            "workspace": workspace,
            "days": days,
            "chart": chart,
            "by_workflow": by_workflow,
            "by_member": usage_by_member(workspace, production=production),
            "production": production,
            "runs_total": sum(row.runs for row in by_workflow),
            "month": month_budget(workspace),
        },
    )
