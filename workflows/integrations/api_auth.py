"""Workspace API tokens: `Authorization: Bearer sw_…` for /api/v1.

A token is shown once, when created; only its SHA-256 is stored (a token is
256 random bits, so a fast hash is enough: there is nothing to brute-force).
A token acts for its workspace with the rights of an admin, and its
requests are recorded in the audit log under the member who created it. It
works only while that member is an active admin or owner of the workspace:
removing, demoting or deleting them revokes it (accounts/services.py), and
`token_authenticate` checks it again at every use.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from accounts.audit import audit_record
from accounts.models import Role, User, Workspace
from workflows.models import ApiToken

TOKEN_PREFIX = "sw_"
# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenWithSecret:
    """A token's row and its value in clear: returned once, never stored."""

    token: ApiToken
    value: str


@transaction.atomic
def token_create(*, workspace: Workspace, name: str, user: User | None) -> TokenWithSecret:
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        workspace=workspace,
        name=name.strip()[:100] or "API token",
        prefix=value[:10],
        token_hash=token_hash(value),
        created_by=user,
    )
    audit_record(
        workspace=workspace,
        actor=user,
        action="token.create",
        target=token,
        after={"name": token.name, "prefix": token.prefix},
    )
    return TokenWithSecret(token=token, value=value)


@transaction.atomic
def token_revoke(*, token: ApiToken, user: User | None) -> bool:
    """Revoke `token` at once; False if it already was."""
    if (
        ApiToken.objects.filter(id=token.id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        != 1
    ):
        return False
    audit_record(
        workspace=token.workspace_id,
        actor=user,
        action="token.revoke",
        target=token,
        before={"name": token.name, "prefix": token.prefix},
    )
    return True


def token_authenticate(value: str) -> ApiToken | None:
    """The live token with this value, its last use recorded; None for anything else."""
    if not value.startswith(TOKEN_PREFIX) or len(value) > 100:
        return None
    # The creator's standing is checked at every use, not only revoked by the
    # member services: a token dies with its maker's admin rights even when the
    # role is changed behind the services' back (the admin site, a shell).
    token = (
        ApiToken.objects.select_related("workspace", "created_by")
        .filter(
            token_hash=token_hash(value),
            revoked_at__isnull=True,
            created_by__is_active=True,
            created_by__memberships__workspace_id=F("workspace_id"),
            created_by__memberships__role__in=[role for role in Role if role.allows(Role.ADMIN)],
        )
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
        token.last_used_at = now
    return token


class WorkspaceToken(HttpBearer):
    """django-ninja auth: `request.auth` becomes the ApiToken."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        return token_authenticate(token.strip())
