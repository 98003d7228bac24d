"""The `approval` step's checks and execution: it parks the run, waiting for
a member's decision (services.run_decide records it and wakes the run) or
for its timeout (beat wakes the run at `wake_at`), and outputs the decision."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from accounts.models import Membership, Role
from workflows.models import Run
from workflows.rendering import render
from workflows.steps.approval.config import ApprovalStep
from workflows.steps.context import StepFailed, StepResult, Wait, WaitContext
from workflows.steps.decisions import decision_of, iso, output_of, parse_iso

WAITS = True

# The form's check, not deliverability: the address must be a member's anyway.
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")

# The roles that may decide: the editor role and above.
DECIDERS = tuple(role for role in Role if role.allows(Role.EDITOR))


def check(step: ApprovalStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not step.message.strip():
        problems.append(("message", "Write the message the approvers read."))
    for email in step.approvers:
        if not _EMAIL_RE.match(email.strip()):
            problems.append(("approvers", f"“{email}” is not an email address."))
    lowered = [email.strip().lower() for email in step.approvers]
    if len(set(lowered)) != len(lowered):
        problems.append(("approvers", "An approver is listed twice."))
    return problems


def deciders(workspace_id: int, emails: list[str]) -> tuple[list[dict[str, object]], list[str]]:
    """The members named by `emails` who may decide (editor or above), as
    [{"id", "email"}], and the emails that are not such a member (ignored)."""
    wanted = {email.strip().lower(): email for email in emails}
    if not wanted:
        return [], []
    # A workspace's editors are few: one query, matched without regard to case.
    found = {
        email.lower(): (user_id, email)
        for user_id, email in Membership.objects.filter(
            workspace_id=workspace_id, role__in=DECIDERS
        ).values_list("user_id", "user__email")
    }
    approvers = [{"id": found[key][0], "email": found[key][1]} for key in wanted if key in found]
    ignored = [wanted[key] for key in wanted if key not in found]
    return approvers, ignored


def begin(step: ApprovalStep, context: WaitContext) -> StepResult | Wait:
    message = render(step.message, context.variables)
    approvers, ignored = deciders(context.workspace_id, step.approvers)
    if step.approvers and not approvers:
        raise StepFailed(
            "None of the approvers ("
            + ", ".join(step.approvers)
            + ") is a member of this workspace with the editor role or above, "
            "so nobody could decide."
        )
    timeout_at = context.now + timedelta(seconds=step.timeout_seconds)
    state: dict[str, object] = {
        "message": message,
        "approvers": approvers,
        "ignored": ignored,
        "asked_at": iso(context.now),
        "timeout_at": iso(timeout_at),
        "on_timeout": step.on_timeout,
    }
    return Wait(waiting_for=Run.WaitingFor.DECISION, state=state, wake_at=timeout_at)


def resume(
    step: ApprovalStep, state: Mapping[str, object], context: WaitContext
) -> StepResult | Wait:
    decision = decision_of(state)
    if decision is not None:
        return StepResult(output=output_of(decision))
    timeout_at = parse_iso(state.get("timeout_at"))
    if timeout_at is None:
        raise StepFailed("The approval's record is damaged: it has no timeout.")
    if context.now >= timeout_at:
        outcome = "approved" if step.on_timeout == "approve" else "rejected"
        return StepResult(
            output={
                "approved": step.on_timeout == "approve",
                "by": None,
                "comment": f"Nobody decided in time: timed out, so {outcome}.",
                "at": iso(timeout_at),
            }
        )
    # Woken early (a clock skew, a duplicate wake-up): wait again.
    return Wait(waiting_for=Run.WaitingFor.DECISION, state=dict(state), wake_at=timeout_at)
