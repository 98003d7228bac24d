"""Reads of accounts: the queries the account and workspace pages ask, named. Nothing here writes;
views reach the workspace through accounts.access first and pass it in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.db.models import QuerySet

from accounts.models import (
    AuditEntry,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
    WorkspaceSecret,
)


def membership_first(user: User) -> Membership | None:
    """The person's oldest membership (where signing in takes them), with its workspace."""
    return (
        Membership.objects.filter(user=user)
        .select_related("workspace")
        .order_by("created_at")
        .first()
    )


def members(workspace: Workspace) -> list[Membership]:
    """The workspace's memberships with their users, in the order they joined."""
    return list(workspace.memberships.select_related("user").order_by("created_at", "id"))


def owners_count(workspace: Workspace) -> int:
    return workspace.memberships.filter(role=Role.OWNER).count()


def is_member(workspace: Workspace, user: User) -> bool:
    return workspace.memberships.filter(user=user).exists()


def account_exists(email: str) -> bool:
    """Whether someone signed up with this address (any case)."""
    return User.objects.filter(email__iexact=email).exists()


def invitations_pending(workspace: Workspace) -> QuerySet[Invitation]:
    """Invitations neither accepted nor withdrawn, newest first, with who sent them."""
    return (
        workspace.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def invitation_pending(workspace: Workspace, invitation_id: int) -> Invitation | None:
    return workspace.invitations.filter(
        id=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True
    ).first()


def audit_actions(workspace: Workspace) -> list[str]:
    """The actions the workspace's audit log holds, for its filter."""
    return list(
        workspace.audit_entries.order_by("action").values_list("action", flat=True).distinct()
    )


def audit_actors(workspace: Workspace) -> list[str]:
    """The addresses of the people the workspace's audit log names, for its filter."""
    return list(
        workspace.audit_entries.exclude(actor_email="")
        .order_by("actor_email")
        .values_list("actor_email", flat=True)
        .distinct()
    )


def audit_entries(
    workspace: Workspace,
    *,
    action: str = "",
    actor: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEntry]:
    """The workspace's audit entries (newest first, the model's order), filtered: `since` and
    `until` are whole days in UTC, both included."""
    entries = workspace.audit_entries.select_related("actor")
    if action:
        entries = entries.filter(action=action)
    if actor:
        entries = entries.filter(actor_email=actor)
    if since:
        entries = entries.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until:
        entries = entries.filter(
            created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return entries


def workspace_secrets(membership: Membership) -> QuerySet[WorkspaceSecret]:
    """The secrets of the membership's workspace, by name, with who made each (no values)."""
    return WorkspaceSecret.objects.filter(workspace=membership.workspace).select_related(
        "created_by"
    )


def workspace_secret_of(membership: Membership, secret_id: int) -> WorkspaceSecret | None:
    """Secret `secret_id` of the membership's workspace, if it is one of them."""
    return WorkspaceSecret.objects.filter(id=secret_id, workspace=membership.workspace).first()


def secret_names(workspace_id: int) -> set[str]:
    return set(
        WorkspaceSecret.objects.filter(workspace_id=workspace_id).values_list("name", flat=True)
    )
