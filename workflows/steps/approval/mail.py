"""The approval's email: once the run is parked at the step (the engine's
`parked` hook, once, after the commit), each approver gets the message and
a signed link of their own (workflows/steps/decisions.py) that decides
after signing in as them, until the timeout."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import Membership
from config.lib.site import site_url
from workflows.models import Run
from workflows.steps.approval.config import ApprovalStep
from workflows.steps.approval.run import DECIDERS
from workflows.steps.decisions import link_token, named_approver_ids, parse_iso

log = logging.getLogger(__name__)


def parked(step: ApprovalStep, state: Mapping[str, object], run_id: int) -> None:
    """Email every approver (the named ones, else every editor or above)."""
    run = Run.objects.select_related("workflow", "workspace").filter(id=run_id).first()
    timeout_at = parse_iso(state.get("timeout_at"))
    if run is None or timeout_at is None:
        return
    members = Membership.objects.filter(workspace_id=run.workspace_id, role__in=DECIDERS)
    named = named_approver_ids(state)
    if named:
        members = members.filter(user_id__in=named)
    run_url = site_url() + reverse("run_detail", args=[run.workspace.slug, run.id])
    for user_id, email in members.values_list("user_id", "user__email").order_by("user_id"):
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
