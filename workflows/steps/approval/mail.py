"""The approval's email: once the run is parked at the step (the engine's
`parked` hook, once, after the commit), each approver gets the message and
a signed link of their own (workflows/steps/decisions.py) that decides
after signing in as them, until the timeout.

The emails count against the limits on mail people can make the server send
(accounts/mail.py, kind "approval"): `APPROVAL_MAILS_PER_APPROVER` an hour to
one approver, `APPROVAL_MAILS_PER_STARTER` an hour for the runs one member started.
A workflow is text anyone with the editor role writes, and a map over a
workflow that asks for approval, or many approval steps, would otherwise
mail the workspace's editors without end. An email over a limit is held,
not sent later: the step's state lists who was not emailed (`emails_held`),
the run page says so beside the pending decision, and the decision is made
there as with any approval."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.mail import mail_request_allow
from accounts.models import MailRequest, Membership, User
from config.lib.site import site_url
from workflows import sql
from workflows.models import Run, StepRun
from workflows.steps.approval.config import ApprovalStep
from workflows.steps.approval.run import DECIDERS
from workflows.steps.decisions import link_token, named_approver_ids, parse_iso

log = logging.getLogger(__name__)


def parked(step: ApprovalStep, state: Mapping[str, object], run_id: int) -> None:
    """Email every approver (the named ones, else every editor or above)."""
    run = (
        Run.objects.select_related("workflow", "workspace", "created_by").filter(id=run_id).first()
    )
    timeout_at = parse_iso(state.get("timeout_at"))
    if run is None or timeout_at is None:
        return
    members = Membership.objects.filter(workspace_id=run.workspace_id, role__in=DECIDERS)
    named = named_approver_ids(state)
    if named:
        members = members.filter(user_id__in=named)
    run_url = site_url() + reverse("run_detail", args=[run.workspace.slug, run.id])
    held: list[str] = []
    for user_id, email in members.values_list("user_id", "user__email").order_by("user_id"):
        if not _allowed(user_id=user_id, email=email, starter=run.created_by):
            held.append(email)
            continue
        token = link_token(run_id=run.id, step_key=step.key, user_id=user_id, expires_at=timeout_at)
        context = {
            "workflow": run.workflow.name,
            "workspace": run.workspace.name,
            "run_id": run.id,
            "step": step.title or step.key,
            "message": str(state.get("message") or ""),
            "link": site_url() + reverse("decision_link", args=[token]),
            "run_url": run_url,
            "timeout_at": timeout_at,
            "on_timeout": step.on_timeout,
        }
        mail = EmailMultiAlternatives(
            f"Approval needed: {run.workflow.name} (run #{run.id})",
            render_to_string("steps/approval/email.txt", context),
            None,
            [email],
        )
        mail.attach_alternative(render_to_string("steps/approval/email.html", context), "text/html")
        try:
            mail.send()
        except Exception:  # SMTP has many ways to fail; the run page still asks
            log.warning(
                "Run %s: the approval email to a member could not be sent", run.id, exc_info=True
            )
    if held:
        log.warning(
            "Run %s: %s approval email(s) held by the mail limits (MAIL_LIMIT_*)", run.id, len(held)
        )
        _record_held(run.id, step.key, held)


def _allowed(*, user_id: int, email: str, starter: User | None) -> bool:
    """Count one approval email against the limits, or say it is over one."""
    with transaction.atomic():
        # One approver's count is taken by one worker at a time, so that the
        # items of a map parked at once cannot all pass it before any counts.
        User.objects.select_for_update().filter(id=user_id).values_list("id").first()
        limited = mail_request_allow(
            kind=MailRequest.Kind.APPROVAL,
            ip="",
            user=starter,
            recipient=email,
            per_user=settings.APPROVAL_MAILS_PER_STARTER,
            per_recipient=settings.APPROVAL_MAILS_PER_APPROVER,
        )
    return limited is None


def _record_held(run_id: int, step_key: str, held: list[str]) -> None:
    """Say on the step who was not emailed; a decision recorded meanwhile is kept."""
    with transaction.atomic():
        step_run = StepRun.objects.select_for_update().filter(run_id=run_id, key=step_key).first()
        if step_run is None:
            return
        state = dict(step_run.state or {})
        earlier = state.get("emails_held")
        state["emails_held"] = sorted({*(earlier if isinstance(earlier, list) else []), *held})
        sql.update(StepRun, where={"id": step_run.id}, values={"state": state})
