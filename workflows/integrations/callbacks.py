"""Completion callbacks: a finished run's result POSTed to a URL, signed, retried.

- The body is `selectors.run_json(run)`, signed with Standard Webhooks under
  the trigger's current secret; `webhook-id` is `run_<id>` on every attempt,
  so a receiver can drop duplicates.
- Only through the guarded client (config/lib/outbound.py).
- Any 2xx answer delivers it. Anything else is retried with exponential
  backoff (CALLBACK_RETRY_BASE_SECONDS doubling, at most
  CALLBACK_RETRY_MAX_SECONDS apart) up to CALLBACK_MAX_ATTEMPTS; a refused
  address is final at once.
- The database drives it: an attempt claims the row with a conditional
  UPDATE of `next_attempt_at` (a lease), so a duplicate task does nothing;
  the engine enqueues the first attempt when a run finishes, and the beat
  tick (`callbacks_sweep`) picks up whatever is due and was not sent (a lost
  message, a run canceled or failed by the reaper).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config.lib.outbound import GuardedClient, OutboundError, OutboundRefused
from workflows import broker, sql
from workflows.integrations.signing import signature_headers
from workflows.integrations.triggers import secret_decrypt
from workflows.models import Run, RunCallback
from workflows.selectors import run_json

log = logging.getLogger(__name__)

ATTEMPT_LEASE = timedelta(seconds=60)


def _backoff(attempts: int) -> float:
    delay: float = min(
        settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1),
        settings.CALLBACK_RETRY_MAX_SECONDS,
    )
    return delay


def callback_deliver(callback_id: int) -> str | None:
    """One attempt at delivering callback `callback_id`;
    returns its status, or None if not claimed."""
    now = timezone.now()
    claimed = RunCallback.objects.filter(
        id=callback_id,
        status=RunCallback.Status.PENDING,
        next_attempt_at__lte=now,
        run__status__in=Run.FINISHED,
    ).update(next_attempt_at=now + ATTEMPT_LEASE, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    callback = RunCallback.objects.select_related("run__version", "trigger").get(id=callback_id)
    secret = secret_decrypt(callback.trigger.secret_encrypted) if callback.trigger else None
    if not secret:
        return _fail(
            callback, "The trigger was deleted or its secret cannot be read: nothing to sign with."
        )

    body = json.dumps(run_json(callback.run), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Stepwise-Callback/1",
        **signature_headers(secret=secret, msg_id=f"run_{callback.run_id}", body=body),
    }
    client = GuardedClient(timeout=settings.CALLBACK_TIMEOUT_SECONDS, max_bytes=64_000)
    sql.connection_release()  # while the receiver, at an address users choose, takes its time
    try:
        response = client.post(callback.url, content=body, headers=headers)
    except OutboundRefused as e:
        return _fail(callback, f"Refused: {e}")
    except OutboundError as e:
        return _retry_or_fail(callback, str(e), None)
    if 200 <= response.status_code < 300:
        RunCallback.objects.filter(id=callback.id).update(
            status=RunCallback.Status.DELIVERED,
            delivered_at=timezone.now(),
            last_status_code=response.status_code,
            last_error="",
        )
        return RunCallback.Status.DELIVERED
    return _retry_or_fail(callback, f"Answered HTTP {response.status_code}.", response.status_code)


def _fail(callback: RunCallback, error: str, status_code: int | None = None) -> str:
    log.info("Callback %s of run %s failed: %s", callback.id, callback.run_id, error)
    RunCallback.objects.filter(id=callback.id).update(
        status=RunCallback.Status.FAILED, last_error=error[:500], last_status_code=status_code
    )
    return RunCallback.Status.FAILED


def _retry_or_fail(callback: RunCallback, error: str, status_code: int | None) -> str:
    if callback.attempts >= settings.CALLBACK_MAX_ATTEMPTS:
        return _fail(callback, f"Gave up after {callback.attempts} attempts. {error}", status_code)
    delay = _backoff(callback.attempts)
    RunCallback.objects.filter(id=callback.id).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        last_error=error[:500],
        last_status_code=status_code,
    )
    broker.callback_send(callback.id, countdown=delay)
    return RunCallback.Status.PENDING


def callbacks_sweep(limit: int = 200) -> int:
    """Enqueue callbacks that are due and whose run has finished (beat, with the schedules tick)."""
    due = list(
        RunCallback.objects.filter(
            status=RunCallback.Status.PENDING,
            next_attempt_at__lte=timezone.now(),
            run__status__in=Run.FINISHED,
        ).values_list("id", flat=True)[:limit]
    )
    for callback_id in due:
        broker.callback_send(callback_id)
    return len(due)
