"""The `approval` step's config: ask workspace members to approve or reject."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workflows.steps.base import StepBase

TYPE = "approval"
DEFAULTS: dict[str, Any] = {"timeout_seconds": 7 * 24 * 3600, "on_timeout": "reject"}

# A minute at least, 30 days at most (7 days unless set).
MIN_TIMEOUT_SECONDS = 60
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "by": {"type": ["string", "null"]},
        "comment": {"type": "string"},
        "at": {"type": "string"},
    },
    "required": ["approved", "by", "comment", "at"],
    "additionalProperties": False,
}


class ApprovalStep(StepBase):
    type: Literal["approval"] = "approval"
    # What the approvers read: a template over the run's variables.
    message: str = ""
    # Emails of workspace members (editor or above) who may decide; empty:
    # every member with the editor role or above.
    approvers: list[str] = Field(default_factory=list, max_length=50)
    timeout_seconds: int = Field(
        default=DEFAULTS["timeout_seconds"], ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    # What happens when nobody decided in time.
    on_timeout: Literal["reject", "approve"] = DEFAULTS["on_timeout"]


Config = ApprovalStep


def templates(step: ApprovalStep) -> list[tuple[str, str]]:
    return [("message", step.message)]


def targets(step: ApprovalStep) -> list[tuple[str, str]]:
    return [("next", step.next)] if step.next is not None else []


def output_schema(step: ApprovalStep) -> dict[str, Any] | None:
    return OUTPUT_SCHEMA


def next_key(step: ApprovalStep, output: object) -> str | None:
    return step.next
