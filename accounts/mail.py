"""Outgoing mail: whether it is configured, and the rate limits on mail people can make us send.

Without `EMAIL_URL` mail goes to the console backend: it is written to the
server's log, not sent. A fresh `make run` stays usable that way (the
sign-up link is in the log), and the pages that send mail say so, as does
a system check at start (accounts/checks.py).

Invitations, password resets and sign-up mails are limited per hour, per
member, per client address and per recipient (settings.MAIL_LIMIT_*), so
the server cannot be made to relay mail with attacker-chosen text in bulk.
A request counts whether or not the mail is actually sent (a reset for an
unknown address counts too), so the limits reveal nothing about accounts.

An approval step's emails (workflows/steps/approval/mail.py) are requests
too, of their own kind: per approver (`APPROVAL_MAILS_PER_APPROVER`) and per
member for the runs they started (`APPROVAL_MAILS_PER_STARTER`), so a workflow (a
map over approvals, many approval steps) cannot mail the editors without
end; an email over a limit is held, and the step says so.

Mail the server sends on its own about a workspace (failed runs:
workflows/integrations/failure_alerts.py) goes to its owners and admins only,
and is limited per workspace and hour there (FAILURE_EMAILS_PER_HOUR).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import MailRequest, User

WINDOW = timedelta(hours=1)
KEEP = timedelta(days=1)

NOT_CONFIGURED = "Mail is not configured on this server (EMAIL_URL)"


def mail_configured() -> bool:
    return settings.MAIL_CONFIGURED


def _recipient_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class MailLimited:
    """A refused request: `message` is for people,
    `retry_after` in seconds for the Retry-After header."""

    message: str
    retry_after: int


def _wait_text(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def mail_request_allow(
    *,
    kind: MailRequest.Kind,
    ip: str,
    user: User | None = None,
    recipient: str = "",
    per_user: int | None = None,
    per_recipient: int | None = None,
) -> MailLimited | None:
    """Record one mail-sending request, or refuse it if one of its limits is used up.

    Limits per hour: `MAIL_LIMIT_PER_USER` (or `per_user`) requests of this kind by a
    member, `MAIL_LIMIT_PER_IP` mail requests of any kind from a client address, and
    `MAIL_LIMIT_PER_RECIPIENT` (or `per_recipient`) requests of this kind to one address.
    """
    if per_user is None:
        per_user = settings.MAIL_LIMIT_PER_USER
    if per_recipient is None:
        per_recipient = settings.MAIL_LIMIT_PER_RECIPIENT
    now = timezone.now()
    since = now - WINDOW
    recent = MailRequest.objects.filter(created_at__gte=since)
    checks: list[tuple[Q, int, str]] = []
    if ip:
        checks.append((Q(ip=ip), settings.MAIL_LIMIT_PER_IP, "from your network"))
    if user is not None:
        checks.append((Q(kind=kind, user=user), per_user, "by you"))
    if recipient:
        checks.append(
            (
                Q(kind=kind, recipient_hash=_recipient_hash(recipient)),
                per_recipient,
                "to this address",
            )
        )
    for condition, limit, who in checks:
        times = list(
            recent.filter(condition)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[:limit]
        )
        if len(times) >= limit:
            # A limit of 0 refuses every request: nothing to wait for but the window.
            oldest = times[-1] if times else now
            retry_after = int((oldest + WINDOW - now).total_seconds()) + 1
            return MailLimited(
                message=f"Too many emails were requested {who} in the last hour. "
                f"Try again in {_wait_text(retry_after)}.",
                retry_after=retry_after,
            )
    MailRequest.objects.filter(created_at__lt=now - KEEP).delete()
    MailRequest.objects.create(
        kind=kind,
        ip=ip or None,
        user=user,
        recipient_hash=_recipient_hash(recipient) if recipient else "",
    )
    return None
