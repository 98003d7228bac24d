"""The `approval` step in the editor: the message, who decides, the timeout
and what a timeout means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict

from accounts.models import Membership
from workflows.models import Workflow
from workflows.steps.approval.config import DEFAULTS, OUTPUT_SCHEMA, TYPE
from workflows.steps.approval.run import DECIDERS
from workflows.steps.form import Parsed, next_branches, next_from_post, summary_of, text_value

LABEL = "Approval"
HINT = "ask a teammate to approve"
SHORT_LABEL = "Approval"
TONE = "warning"
BLURB = (
    "Pauses the run until a member approves or rejects it (on the run page, by an emailed "
    "link or by the API), or until its timeout. Later steps read "
    "{{ step.approved }}, {{ step.by }} and {{ step.comment }}."
)
EMPTY_SUMMARY = "Write what the approvers read"
PANEL = "steps/approval/panel.html"
FIELD_LABELS = {
    "message": "Message",
    "approvers": "Approvers",
    "timeout_seconds": "Timeout",
    "on_timeout": "On timeout",
}
LIST_FIELDS: dict[str, str] = {}

# The timeout is edited in hours; the definition keeps seconds.
_TIMEOUT_FIELD = "timeout_hours"


def new_step(
    *, key: str, previous: str | None, previous_json: dict[str, dict], following: str | None
) -> dict:
    message = f"Please review:\n\n{{{{ {previous} }}}}" if previous else ""
    return {"key": key, "type": TYPE, "title": "", "message": message, **DEFAULTS}


def summary(step: dict) -> str:
    message = step.get("message")
    return summary_of(message) if isinstance(message, str) else ""


def branches(step: dict) -> list[tuple[str, str, str]]:
    return next_branches(step)


def json_properties(step: dict) -> dict[str, dict]:
    return dict(OUTPUT_SCHEMA["properties"])


def posted_path(name: str) -> str | None:
    if name == _TIMEOUT_FIELD:
        return "timeout_seconds"
    return name if name in ("message", "approvers", "on_timeout", "next") else None


def form_name(path: str) -> str | None:
    if path == "timeout_seconds":
        return _TIMEOUT_FIELD
    return path if path in ("message", "approvers", "on_timeout", "next") else None


def action_path(action: str) -> tuple[str, str] | None:
    return None


def fields(step: dict) -> list[str]:
    return ["message", "approvers", "timeout_seconds", "on_timeout", "next"]


def template_values(step: dict) -> dict[str, str]:
    return {"message": step["message"]} if isinstance(step.get("message"), str) else {}


def rename(step: dict, rewrite: Callable[[object], object], old: str, new: str) -> None:
    if "message" in step:
        step["message"] = rewrite(step["message"])


def from_post(step: dict, current: dict, data: QueryDict, parsed: Parsed) -> None:
    if "message" in data:
        step["message"] = text_value(data, "message")
    if "approvers" in data:
        raw = text_value(data, "approvers").replace(";", ",").replace("\n", ",")
        emails = [email.strip() for email in raw.split(",") if email.strip()]
        if emails:
            step["approvers"] = emails
        else:
            step.pop("approvers", None)
    if _TIMEOUT_FIELD in data:
        raw = data.get(_TIMEOUT_FIELD, "").strip()
        if not raw:
            step.pop("timeout_seconds", None)
        else:
            try:
                step["timeout_seconds"] = round(float(raw) * 3600)
            except ValueError:
                parsed.error("timeout_seconds", "Enter a number of hours, such as 24 or 0.5.")
                step["timeout_seconds"] = raw
    if "on_timeout" in data:
        step["on_timeout"] = data.get("on_timeout", "")
    next_from_post(step, data)


def apply_action(
    step: dict, action: str, data: QueryDict, *, previous: str | None, errors: dict[str, list[str]]
) -> dict:
    return step


def _hours(seconds: object) -> str:
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return "" if seconds is None else str(seconds)
    hours = seconds / 3600
    return str(int(hours)) if hours.is_integer() else f"{hours:.4g}"


def panel_context(step: dict, slots: dict[str, Any], *, workflow: Workflow) -> dict[str, Any]:
    """The timeout in hours, and the workspace's members who may decide (for the hint)."""
    approvers = step.get("approvers")
    deciders = list(
        Membership.objects.filter(workspace_id=workflow.workspace_id, role__in=DECIDERS)
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )
    named = [str(a) for a in approvers] if isinstance(approvers, list) else []
    known = {email.lower() for email in deciders}
    return {
        # Named, but not an editor or above here: ignored when the run asks.
        "not_deciders": [email for email in named if email.strip().lower() not in known],
        "timeout_hours": _hours(step.get("timeout_seconds", DEFAULTS["timeout_seconds"])),
        "approvers_text": ", ".join(str(a) for a in approvers)
        if isinstance(approvers, list)
        else "",
        "deciders": deciders,
    }
