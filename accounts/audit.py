"""The audit log: services call `audit_record` inside their transaction."""

from __future__ import annotations

from django.db import models

from accounts.models import AuditEntry, User, Workspace


def audit_record(
    *,
    workspace: Workspace | int,
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    label: str = "",
    before: object = None,
    after: object = None,
) -> AuditEntry:
    """Append one entry. `action` is a dotted verb such as "workflow.publish"."""
    return AuditEntry.objects.create(
        workspace_id=workspace if isinstance(workspace, int) else workspace.pk,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_email=actor.email if actor is not None and actor.is_authenticated else "",
        action=action,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(label or str(target))[:200] if target is not None or label else "",
        before=before,
        after=after,
    )
