"""How the audit log page shows an entry: a sentence for the action, and what changed.

Small flat records ({"role": "editor"} → {"role": "admin"}) read as field
changes; nested ones (a workflow definition) as a unified diff of their
pretty-printed JSON, so an edit of one prompt shows as a few lines.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, TypeGuard

ACTION_LABELS = {
    "workspace.create": "Created the workspace",
    "workspace.rename": "Renamed the workspace",
    "budget.change": "Changed the monthly budget",
    "retention.change": "Changed how long run details are kept",
    "invitation.create": "Invited someone",
    "invitation.revoke": "Withdrew an invitation",
    "invitation.accept": "Accepted an invitation",
    "member.role_change": "Changed a member's role",
    "member.remove": "Removed a member",
    "member.leave": "Left the workspace",
    "workflow.create": "Created a workflow",
    "workflow.edit": "Edited a workflow",
    "workflow.publish": "Published a workflow",
    "workflow.delete": "Deleted a workflow",
    "workflow.duplicate": "Duplicated a workflow",
    "workflow.archive": "Archived a workflow",
    "workflow.unarchive": "Unarchived a workflow",
    "workflow.restore_version": "Restored a version into the draft",
    "workflow.mcp_expose": "Changed whether a workflow is an MCP tool",
    "run.decision": "Approved or rejected a run",
    "workflow.runs_delete": "Asked for a workflow's runs to be deleted",
    "workflow.runs_deleted": "Deleted a workflow's runs (done in the background)",
    "run.delete": "Deleted a run",
    "trigger.create": "Created a trigger",
    "trigger.update": "Changed a trigger",
    "trigger.edit": "Changed a webhook",
    "trigger.rotate": "Rotated a trigger's secret",
    "trigger.signing_change": "Changed whether a webhook needs signatures",
    "trigger.delete": "Deleted a trigger",
    "schedule.create": "Created a schedule",
    "schedule.update": "Changed a schedule",
    "schedule.edit": "Changed a schedule",
    "schedule.delete": "Deleted a schedule",
    "token.create": "Created an API token",
    "token.revoke": "Revoked an API token",
    "secret.create": "Created a secret",
    "secret.rotate": "Replaced a secret's value",
    "secret.hosts": "Changed the hosts a secret may be sent to",
    "secret.delete": "Deleted a secret",
    "workspace.outbound": "Changed which internal hosts http steps may reach",
    "failure_alert.change": "Changed what happens when a run fails",
    "failure_alert.rotate": "Rotated the failed-runs POST's signing secret",
    "workspace.publish_rule": "Changed whether publishing needs a passing eval",
}

MAX_DIFF_LINES = 400
MAX_SNAPSHOT_CHARS = 20_000


def action_label(action: str) -> str:
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    # An action without a sentence of its own: "Widget:
    # restore version", never "Restore version widget".
    noun, _, verb = action.partition(".")
    noun = noun.replace("_", " ").capitalize()
    return f"{noun}: {verb.replace('_', ' ')}" if verb else noun or "Changed something"


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: str | None
    after: str | None


@dataclass
class EntryDiff:
    fields: list[FieldChange] = field(default_factory=list)
    # ("add" | "del" | "ctx" | "hunk", text) lines of a unified diff
    lines: list[tuple[str, str]] = field(default_factory=list)
    # The one side there is, pretty-printed, when there is nothing to compare.
    snapshot: str = ""
    snapshot_label: str = ""
    # Both sides were recorded: fields read "before → after", a missing value as "none".
    is_update: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.fields or self.lines or self.snapshot)

    @property
    def added(self) -> int:
        return sum(1 for kind, _ in self.lines if kind == "add")

    @property
    def removed(self) -> int:
        return sum(1 for kind, _ in self.lines if kind == "del")


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _flat(value: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and all(_scalar(v) for v in value.values())


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pretty(value: object) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def entry_diff(before: object, after: object) -> EntryDiff:
    if before is None and after is None:
        return EntryDiff()
    if (before is None or _flat(before)) and (after is None or _flat(after)):
        old = before or {}
        new = after or {}
        names = list(dict.fromkeys([*old, *new]))
        return EntryDiff(
            fields=[
                FieldChange(name, _text(old.get(name)), _text(new.get(name)))
                for name in names
                if before is None or after is None or old.get(name) != new.get(name)
            ],
            is_update=before is not None and after is not None,
        )
    if before is None or after is None:
        snapshot = "\n".join(_pretty(after if before is None else before))
        if len(snapshot) > MAX_SNAPSHOT_CHARS:
            snapshot = snapshot[:MAX_SNAPSHOT_CHARS] + "\n…"
        return EntryDiff(snapshot=snapshot, snapshot_label="After" if before is None else "Before")
    lines: list[tuple[str, str]] = []
    for line in difflib.unified_diff(_pretty(before), _pretty(after), n=2, lineterm=""):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        lines.append((kind, "…" if kind == "hunk" else line))
        if len(lines) >= MAX_DIFF_LINES:
            lines.append(("hunk", "… (the rest of the diff is not shown)"))
            break
    return EntryDiff(lines=lines)
