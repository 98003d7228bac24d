"""When a run fails: the workspace's setting, and beat's notices (email, a signed POST).

- The setting (`FailureAlert`): email the owners and admins, and/or POST to a
  URL (refused like callback URLs; reached only through the guarded client,
  with the workspace's allowance of internal hosts) signed with Standard
  Webhooks under a secret made when the URL is set, shown once, rotatable.
  Every change is audit-logged; the secret never is.
- Beat's tick (`failures_notify`, every ~30 s) claims the failed runs not yet
  notified with one conditional UPDATE ... RETURNING (`sql.runs_failed_claim`),
  so two ticks at once never take a run twice, and a run is in at most one
  notice. Only runs that finished within `FAILURE_ALERT_RECENT_SECONDS` and
  after the setting was turned on: turning it on does not mail history.
  Child runs are left out: their parent fails too, or handled their failure.
- Each workspace gets ONE notice per tick: the run's details when one failed,
  a digest ("12 runs failed in the last minute", the first
  `FAILURE_ALERT_LISTED` listed) when several did. The claim and the notice's
  row are one transaction; the email is sent after it commits (at most once),
  the POST from the row: retried with backoff by later ticks
  (`CALLBACK_MAX_ATTEMPTS`, `CALLBACK_RETRY_*`) with the same body and
  `webhook-id`, never merged into a later notice.
- Emails are limited to `FAILURE_EMAILS_PER_HOUR` per workspace: failures are
  something outsiders can cause (a webhook), and their text (workflow names,
  errors) is partly theirs. Beyond the limit the notice is still POSTed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Membership, Role, User, Workspace
from config.lib.outbound import Allowance, GuardedClient, OutboundError, OutboundRefused
from config.lib.sealing import reseal, seal, unseal
from config.lib.site import site_url
from workflows import sql
from workflows.integrations.signing import signature_headers
from workflows.integrations.triggers import secret_generate
from workflows.models import FailureAlert, FailureNotice, Run

log = logging.getLogger(__name__)

SEAL_PURPOSE = "stepwise.failure-alert-secret"
ATTEMPT_LEASE = timedelta(seconds=60)
NOTICES_KEPT = timedelta(days=7)
DELIVERY_BUDGET = timedelta(seconds=20)
RECIPIENT_ROLES = (Role.OWNER, Role.ADMIN)


# The setting ----------------------------------------------------------------


def failure_alert_of(workspace: Workspace) -> FailureAlert:
    """The workspace's setting, off when never set (not saved)."""
    found = FailureAlert.objects.filter(workspace=workspace).first()
    return found or FailureAlert(workspace=workspace)


def allowance_of(workspace: Workspace) -> Allowance:
    """The internal hosts the workspace's POSTs may reach (as its http steps)."""
    return Allowance.for_workspace(
        narrowed=workspace.outbound_narrowed, hosts=workspace.outbound_allowed_hosts
    )


def _audit_view(alert: FailureAlert) -> dict[str, object]:
    # Never the secret; the URL is the admins' own and they read the log.
    return {"email": alert.email, "url": alert.url}


@transaction.atomic
def failure_alert_set(*, workspace: Workspace, email: bool, url: str, user: User) -> str | None:
    """Set what happens when a run fails. Returns the new signing secret in clear when the
    URL was set where none was (shown once, never stored so); else None.

    Turning it on (from off) starts from now: runs that failed before are not notified.
    Removing the URL drops its secret; a URL set again gets a new one."""
    alert, _ = FailureAlert.objects.select_for_update().get_or_create(workspace=workspace)
    before = _audit_view(alert)
    before_url = alert.url
    was_on = alert.is_on
    now = timezone.now()
    alert.email = email
    alert.url = url
    secret = None
    moved = url != before_url
    if not url:
        alert.secret_encrypted = ""
    elif not alert.secret_encrypted or moved:
        # A new receiver gets a secret of its own: the one the old URL knew
        # would let it sign notices for the new one.
        secret = secret_generate()
        alert.secret_encrypted = seal(SEAL_PURPOSE, secret)
    if alert.is_on and not was_on:
        alert.since = now
    alert.updated_at = now
    alert.save(update_fields=["email", "url", "secret_encrypted", "since", "updated_at"])
    after = _audit_view(alert)
    if before != after:
        audit_record(
            workspace=workspace,
            actor=user,
            action="failure_alert.change",
            target=alert,
            label="When a run fails",
            before=before,
            after=after,
        )
    return secret


class NoAlertUrl(Exception):
    """There is no URL, so no secret to rotate."""


@transaction.atomic
def failure_alert_rotate(*, workspace: Workspace, user: User) -> str:
    """A new signing secret for the POSTs, in clear (shown once); the old one stops at once."""
    alert = FailureAlert.objects.select_for_update().filter(workspace=workspace).first()
    if alert is None or not alert.url:
        raise NoAlertUrl("Set a URL first: its secret is made then.")
    secret = secret_generate()
    alert.secret_encrypted = seal(SEAL_PURPOSE, secret)
    alert.updated_at = timezone.now()
    alert.save(update_fields=["secret_encrypted", "updated_at"])
    audit_record(
        workspace=workspace,
        actor=user,
        action="failure_alert.rotate",
        target=alert,
        label="When a run fails",
    )
    return secret


def secrets_reencrypt() -> tuple[int, int]:
    """Re-encrypt every failure alert's secret under the current SECRET_KEY.
    Returns (re-encrypted, readable under none of the keys)."""
    done = lost = 0
    for alert_id, token in FailureAlert.objects.exclude(secret_encrypted="").values_list(
        "id", "secret_encrypted"
    ):
        resealed = reseal(SEAL_PURPOSE, token)
        if resealed is None:
            lost += 1
            continue
        FailureAlert.objects.filter(id=alert_id).update(secret_encrypted=resealed)
        done += 1
    return done, lost


# The notices ------------------------------------------------------------------


def run_summary(run: Run) -> dict[str, object]:
    """A failed run as a notice lists it."""
    return {
        "id": run.id,
        "workflow": {"id": run.workflow_id, "name": run.workflow.name},
        "error": run.error,
        "url": site_url() + reverse("run_detail", args=[run.workspace.slug, run.id]),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def failures_notify(now: datetime | None = None) -> int:
    """Beat's tick: claim the recent failures not yet notified, send one notice per workspace,
    and retry the POSTs that are due. Returns the number of runs notified."""
    now = now or timezone.now()
    recent = timedelta(seconds=settings.FAILURE_ALERT_RECENT_SECONDS)
    emails: list[tuple[int, list[int]]] = []
    with transaction.atomic():
        claimed = sql.runs_failed_claim(now=now, finished_since=now - recent)
        by_workspace: dict[int, list[int]] = defaultdict(list)
        for run_id, workspace_id in claimed:
            by_workspace[workspace_id].append(run_id)
        for workspace_id, run_ids in by_workspace.items():
            notice = _notice_create(workspace_id, run_ids, now)
            if notice.emailed:
                emails.append((workspace_id, run_ids))
    for workspace_id, run_ids in emails:
        _email(workspace_id, run_ids)
    notices_deliver_due()
    _notices_prune(now)
    return len(claimed)


def _notices_prune(now: datetime) -> None:
    # Finished notices are kept a week (they hold the runs' errors, and count toward the email
    # limit for an hour); pending ones stay until delivered or given up.
    FailureNotice.objects.filter(
        status__in=[
            FailureNotice.Status.DELIVERED,
            FailureNotice.Status.FAILED,
            FailureNotice.Status.NONE,
        ],
        next_attempt_at__lt=now - NOTICES_KEPT,
    ).delete()


def _failed_runs(run_ids: list[int]) -> list[Run]:
    return list(
        Run.objects.filter(id__in=run_ids)
        .select_related("workflow", "workspace")
        .order_by("finished_at", "id")
    )


def _notice_create(workspace_id: int, run_ids: list[int], now: datetime) -> FailureNotice:
    alert = FailureAlert.objects.select_related("workspace").get(workspace_id=workspace_id)
    emailed = (
        alert.email
        and FailureNotice.objects.filter(
            workspace_id=workspace_id, emailed=True, created_at__gte=now - timedelta(hours=1)
        ).count()
        < settings.FAILURE_EMAILS_PER_HOUR
    )
    if alert.email and not emailed:
        log.warning(
            "Workspace %s: %s failed runs not emailed (FAILURE_EMAILS_PER_HOUR reached)",
            workspace_id,
            len(run_ids),
        )
    body = b""
    if alert.url:
        runs = _failed_runs(run_ids)
        body = json.dumps(
            {
                "type": "runs.failed",
                "workspace": alert.workspace.slug,
                "runs": [run_summary(run) for run in runs],
            },
            separators=(",", ":"),
        ).encode()
    return FailureNotice.objects.create(
        workspace_id=workspace_id,
        emailed=emailed,
        url=alert.url,
        body=body.decode(),
        run_count=len(run_ids),
        status=FailureNotice.Status.PENDING if alert.url else FailureNotice.Status.NONE,
        next_attempt_at=now,
        created_at=now,
    )


def _email(workspace_id: int, run_ids: list[int]) -> None:
    runs = _failed_runs(run_ids)
    if not runs:
        return
    workspace = runs[0].workspace
    recipients = list(
        Membership.objects.filter(
            workspace_id=workspace_id, role__in=RECIPIENT_ROLES, user__is_active=True
        )
        .order_by("user_id")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return
    listed = runs[: settings.FAILURE_ALERT_LISTED]
    context = {
        "workspace": workspace.name,
        "count": len(runs),
        "runs": [run_summary(run) for run in listed],
        "more": len(runs) - len(listed),
        "settings_url": site_url() + reverse("failure_alerts", args=[workspace.slug]),
    }
    if len(runs) == 1:
        subject = f"Run failed: {runs[0].workflow.name} (run #{runs[0].id})"
    else:
        subject = f"{len(runs)} runs failed in {workspace.name}"
    # A name with a line break would be refused as a header (BadHeaderError).
    subject = " ".join(subject.split())[:200]
    for to in recipients:  # one message each: members do not see each other's addresses
        mail = EmailMultiAlternatives(
            subject, render_to_string("emails/runs_failed.txt", context), None, [to]
        )
        mail.attach_alternative(render_to_string("emails/runs_failed.html", context), "text/html")
        try:
            mail.send()
        except Exception:  # SMTP fails in many ways; the runs page still shows the failures
            log.warning(
                "Workspace %s: a failed-runs email could not be sent", workspace_id, exc_info=True
            )


def _backoff(attempts: int) -> float:
    delay: float = min(
        settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1),
        settings.CALLBACK_RETRY_MAX_SECONDS,
    )
    return delay


def notices_deliver_due(limit: int = 100) -> int:
    """POST the notices that are due (new ones, and retries whose time has come), for at most
    `DELIVERY_BUDGET`: slow receivers do not hold beat's task (on the recovery queue, beside
    the reaper) for long; what is left is due at the next tick."""
    started = time.monotonic()
    due = list(
        FailureNotice.objects.filter(
            status=FailureNotice.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    sent = 0
    for notice_id in due:
        if time.monotonic() - started > DELIVERY_BUDGET.total_seconds():
            break
        notice_deliver(notice_id)
        sent += 1
    return sent


def notice_deliver(notice_id: int) -> str | None:
    """One attempt at POSTing notice `notice_id`; its status, or None if another took it."""
    now = timezone.now()
    claimed = FailureNotice.objects.filter(
        id=notice_id, status=FailureNotice.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + ATTEMPT_LEASE, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    notice = FailureNotice.objects.select_related("workspace").get(id=notice_id)
    alert = FailureAlert.objects.filter(workspace_id=notice.workspace_id).first()
    secret = unseal(SEAL_PURPOSE, alert.secret_encrypted) if alert and alert.url else None
    if not secret:
        return _fail(notice, "The URL was removed or its secret cannot be read.")
    if alert is None or alert.url != notice.url:
        # Never to an address the workspace has since replaced.
        return _fail(notice, "The URL was changed since; not sent to the old one.")
    body = notice.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Stepwise-Failures/1",
        **signature_headers(secret=secret, msg_id=f"failures_{notice.id}", body=body),
    }
    client = GuardedClient(
        timeout=settings.CALLBACK_TIMEOUT_SECONDS,
        max_bytes=64_000,
        allowed=allowance_of(notice.workspace),
    )
    sql.connection_release()  # while the receiver, at an address users choose, takes its time
    try:
        response = client.post(notice.url, content=body, headers=headers)
    except OutboundRefused as e:
        return _fail(notice, f"Refused: {e}")
    except OutboundError as e:
        return _retry_or_fail(notice, str(e), None)
    if 200 <= response.status_code < 300:
        FailureNotice.objects.filter(id=notice.id).update(
            status=FailureNotice.Status.DELIVERED,
            delivered_at=timezone.now(),
            last_status_code=response.status_code,
            last_error="",
        )
        return FailureNotice.Status.DELIVERED
    return _retry_or_fail(notice, f"Answered HTTP {response.status_code}.", response.status_code)


def _fail(notice: FailureNotice, error: str, status_code: int | None = None) -> str:
    log.info("Failure notice %s failed: %s", notice.id, error)
    FailureNotice.objects.filter(id=notice.id).update(
        status=FailureNotice.Status.FAILED, last_error=error[:500], last_status_code=status_code
    )
    return FailureNotice.Status.FAILED


def _retry_or_fail(notice: FailureNotice, error: str, status_code: int | None) -> str:
    if notice.attempts >= settings.CALLBACK_MAX_ATTEMPTS:
        return _fail(notice, f"Gave up after {notice.attempts} attempts. {error}", status_code)
    FailureNotice.objects.filter(id=notice.id).update(
        next_attempt_at=timezone.now() + timedelta(seconds=_backoff(notice.attempts)),
        last_error=error[:500],
        last_status_code=status_code,
    )
    return FailureNotice.Status.PENDING
