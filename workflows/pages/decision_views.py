"""Deciding on a run that waits for approval: the run page's banner form,
and the page of the signed link emailed to each approver.

Both call `services.run_decide`; a viewer (or a member who is not a named
approver) gets 403, a decision that comes too late (someone decided first,
the run went on or timed out) 409 with the page saying why.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import AuthedRequest, membership_for, run_for, workspace_for
from accounts.models import Membership, Role
from workflows import selectors, services
from workflows.models import Run
from workflows.pages.run_views import run_context
from workflows.steps.decisions import LinkExpired, LinkInvalid, decision_of, link_read, parse_iso

LINK_PAGE = "workflows/decision.html"


def _decided_message(approve: bool, comment: str) -> str:
    verdict = "approved" if approve else "rejected"
    return f"You {verdict} it{' with a comment' if comment else ''}; the run goes on."


def _decide(
    request: HttpRequest,
    *,
    membership: Membership,
    run: Run,
    step_key: str | None,
    via: str,
) -> str | None:
    """Record the posted decision; None, or why it was refused (a conflict)."""
    approve = {"approve": True, "reject": False}.get(request.POST.get("decision", ""))
    comment = request.POST.get("comment", "")
    try:
        services.run_decide(
            run=run,
            membership=membership,
            approve=approve,
            comment=comment,
            step_key=step_key,
            via=via,
        )
    except services.NotAllowedToDecide as e:
        raise PermissionDenied(str(e)) from None
    except (
        services.NotWaitingForDecision,
        services.AlreadyDecided,
        services.DecisionInvalid,
    ) as e:
        return str(e)
    messages.success(request, _decided_message(bool(approve), comment.strip()))
    return None


@require_POST
@login_required
def run_decide(request: AuthedRequest, slug: str, run_id: int) -> HttpResponse:
    """The banner's Approve / Reject on the run page."""
    membership = workspace_for(request, slug, role=Role.VIEWER)
    run = run_for(membership, run_id)
    problem = _decide(
        request,
        membership=membership,
        run=run,
        step_key=request.POST.get("step_key") or None,
        via="page",
    )
    if problem is None:
        return redirect("run_detail", slug=slug, run_id=run.id)
    run.refresh_from_db()
    context = {**run_context(membership, run), "decision_problem": problem}
    return render(request, "workflows/run_detail.html", context, status=409)


@require_http_methods(["GET", "POST"])
@login_required
def decision_link(request: AuthedRequest, token: str) -> HttpResponse:
    """The emailed link: for the member it was sent to, signed in; until the
    step's timeout; once (a decided step refuses it, saying who decided)."""
    try:
        link = link_read(token, now=timezone.now())
    except LinkInvalid:
        raise Http404("No such link.") from None
    except LinkExpired:
        return _problem(request, "expired", "The time to decide is over.", status=410)
    if link.user_id != request.user.id:
        return _problem(
            request,
            "wrong_account",
            "This link was emailed to another member. Log in as the person it was sent to.",
            status=403,
        )
    workspace_slug = selectors.run_workspace_slug(link.run_id)
    if workspace_slug is None:
        raise Http404("No such run.")
    membership = membership_for(request.user, workspace_slug, role=Role.VIEWER)
    run = run_for(membership, link.run_id)
    step = selectors.run_step(run, link.step_key)
    if step is None:
        raise Http404("No such step.")
    decided = decision_of(step.state)
    context: dict[str, object] = {
        "run": run,
        "workspace": membership.workspace,
        "step": step,
        "state": step.state if isinstance(step.state, dict) else {},
        "timeout_at": parse_iso((step.state or {}).get("timeout_at"))
        if isinstance(step.state, dict)
        else None,
    }
    if decided is not None:
        verdict = "approved" if decided.get("approved") else "rejected"
        by = decided.get("by") or "someone"
        return _problem(request, "decided", f"Already decided: {verdict} by {by}.", status=409)
    if not selectors.step_waiting(run, step.key):
        return _problem(
            request, "not_waiting", "This run no longer waits for this decision.", status=409
        )
    if not services.run_decide_allowed(state=step.state, membership=membership):
        return _problem(
            request,
            "not_allowed",
            "You can no longer decide here: it takes the editor role or above.",
            status=403,
        )
    if request.method == "POST":
        problem = _decide(request, membership=membership, run=run, step_key=step.key, via="link")
        if problem is None:
            return redirect("run_detail", slug=membership.workspace.slug, run_id=run.id)
        return _problem(request, "refused", problem, status=409)
    return render(request, LINK_PAGE, context)


def _problem(request: HttpRequest, reason: str, message: str, *, status: int) -> HttpResponse:
    return render(
        request, LINK_PAGE, {"problem": {"reason": reason, "message": message}}, status=status
    )
