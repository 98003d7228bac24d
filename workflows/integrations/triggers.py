"""Webhook triggers: their secrets, and every write about them.

A Standard Webhooks secret has to be known, not just checked, to verify an
HMAC, so it cannot be hashed like a password. It is encrypted at rest with
Fernet under a key derived from SECRET_KEY (and SECRET_KEY_FALLBACKS, so
rotating SECRET_KEY keeps old secrets readable), and shown in clear only
once: in the answer to the create or rotate that made it.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.audit import audit_record
from accounts.models import User
from workflows.integrations.signing import SECRET_PREFIX
from workflows.models import Trigger, Workflow

# After a rotation the previous secret keeps working this long, so senders
# can switch over without a window of refused deliveries.
ROTATION_GRACE = timedelta(hours=24)


def _fernet() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(
                    salted_hmac(
                        "stepwise.trigger-secret", "", secret=key, algorithm="sha256"
                    ).digest()
                )
            )
            for key in keys
        ]
    )


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str | None:
    """The secret in clear, or None when it cannot be read (SECRET_KEY changed)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def secrets_reencrypt() -> tuple[int, int]:
    """Re-encrypt every trigger secret under the current SECRET_KEY.

    After a rotation, secrets stay readable through SECRET_KEY_FALLBACKS;
    once this has run, the old key can leave the fallbacks. Returns (secrets
    re-encrypted, secrets readable under none of the keys: left as they are).
    """
    fernet = _fernet()
    done = unreadable = 0
    for trigger in Trigger.objects.only(
        "id", "secret_encrypted", "previous_secret_encrypted"
    ).iterator():
        changed: dict[str, str] = {}
        for name in ("secret_encrypted", "previous_secret_encrypted"):
            token = getattr(trigger, name)
            if not token:
                continue
            try:
                changed[name] = fernet.rotate(token.encode()).decode()
            except (InvalidToken, ValueError):
                unreadable += 1
        if changed:
            # Conditional on the old values: a rotation meanwhile is not overwritten.
            olds = {name: getattr(trigger, name) for name in changed}
            done += len(changed) * Trigger.objects.filter(id=trigger.id, **olds).update(**changed)
    return done, unreadable


def secret_generate() -> str:
    """A new `whsec_<base64>` secret of 32 random bytes, as Standard Webhooks defines it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def verification_secrets(trigger: Trigger) -> list[str]:
    """The secrets a signature may be made with now: the current one, and the
    previous one during its rotation grace period."""
    found = [secret_decrypt(trigger.secret_encrypted)]
    if (
        trigger.previous_secret_encrypted
        and trigger.previous_expires_at
        and trigger.previous_expires_at > timezone.now()
    ):
        found.append(secret_decrypt(trigger.previous_secret_encrypted))
    return [secret for secret in found if secret]


@dataclass(frozen=True)
class TriggerWithSecret:
    """A trigger and its new secret in clear: returned once, never stored so."""

    trigger: Trigger
    secret: str


def _public_id() -> str:
    # 192 random bits, URL-safe.
    return secrets.token_urlsafe(24)


@transaction.atomic
def trigger_create(
    *,
    workflow: Workflow,
    user: User | None,
    name: str = "",
    callback_url: str = "",
    rate_limit_per_minute: int = 60,
) -> TriggerWithSecret:
    """A new signed webhook trigger for `workflow`; its secret is in the answer, once."""
    secret = secret_generate()
    trigger = Trigger.objects.create(
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        public_id=_public_id(),
        name=name,
        secret_encrypted=secret_encrypt(secret),
        callback_url=callback_url,
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=user,
    )
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="trigger.create",
        target=trigger,
        after=_audit_view(trigger),
    )
    return TriggerWithSecret(trigger=trigger, secret=secret)


@transaction.atomic
def trigger_rotate(*, trigger: Trigger, user: User | None) -> TriggerWithSecret:
    """A new secret; the current one keeps verifying for ROTATION_GRACE.

    Rotating twice within the grace period drops the oldest secret at once:
    only the two newest ever verify.
    """
    secret = secret_generate()
    now = timezone.now()
    trigger.previous_secret_encrypted = trigger.secret_encrypted
    trigger.previous_expires_at = now + ROTATION_GRACE
    trigger.secret_encrypted = secret_encrypt(secret)
    trigger.rotated_at = now
    trigger.save(
        update_fields=[
            "previous_secret_encrypted",
            "previous_expires_at",
            "secret_encrypted",
            "rotated_at",
        ]
    )
    audit_record(
        workspace=trigger.workspace_id,
        actor=user,
        action="trigger.rotate",
        target=trigger,
        after={"previous_secret_expires_at": trigger.previous_expires_at.isoformat()},
    )
    return TriggerWithSecret(trigger=trigger, secret=secret)


@transaction.atomic
def trigger_delete(*, trigger: Trigger, user: User | None) -> None:
    audit_record(
        workspace=trigger.workspace_id,
        actor=user,
        action="trigger.delete",
        target=trigger,
        before=_audit_view(trigger),
    )
    trigger.delete()


@transaction.atomic
def trigger_set_signing(*, trigger: Trigger, required: bool, user: User | None) -> None:
    """Require signatures, or accept the URL alone (owners only: checked by the caller)."""
    if trigger.signing_required == required:
        return
    trigger.signing_required = required
    trigger.save(update_fields=["signing_required"])
    audit_record(
        workspace=trigger.workspace_id,
        actor=user,
        action="trigger.signing_change",
        target=trigger,
        before={"signing_required": not required},
        after={"signing_required": required},
    )


@transaction.atomic
def trigger_update(
    *, trigger: Trigger, user: User | None, name: str, callback_url: str, rate_limit_per_minute: int
) -> None:
    before = _audit_view(trigger)
    trigger.name = name
    trigger.callback_url = callback_url
    trigger.rate_limit_per_minute = rate_limit_per_minute
    trigger.save(update_fields=["name", "callback_url", "rate_limit_per_minute"])
    after = _audit_view(trigger)
    if before != after:
        audit_record(
            workspace=trigger.workspace_id,
            actor=user,
            action="trigger.edit",
            target=trigger,
            before=before,
            after=after,
        )


def _audit_view(trigger: Trigger) -> dict[str, object]:
    # Never the public id nor the secret: the audit log is readable by admins.
    return {
        "workflow_id": trigger.workflow_id,
        "name": trigger.name,
        "signing_required": trigger.signing_required,
        "callback_url": trigger.callback_url,
        "rate_limit_per_minute": trigger.rate_limit_per_minute,
    }
