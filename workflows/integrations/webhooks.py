"""Webhook triggers: `POST /hooks/<trigger id>` starts a run of the latest published version.

Checked in this order, each refusal answered as JSON `{"error", "details"}`:

1. the trigger exists (404) and the sender is under its rate limit (429 with
   Retry-After; every request counts, signed or not, so a flood costs one
   SELECT and one UPDATE each and writes no more than one delivery row per
   minute);
2. the body is at most 1 MB, by Content-Length and by what is read (413);
3. the Standard Webhooks signature, unless an owner switched the trigger to
   unsigned (401): HMAC-SHA256 of "id.timestamp.body" under the trigger's
   secret, or its previous one during a rotation, 5 minutes of clock skew;
4. the body is JSON (415); its top-level keys are the inputs by name, and
   the whole body is `{{ payload }}`; missing or malformed inputs: 422.

`webhook-id` (or `Idempotency-Key`) is the run's idempotency key: the same
delivery again returns the same run, also when copies arrive at once
(the unique constraint on the key decides, see services.run_start).
`?wait=`, `?callback_url=` and the `Callback-URL` header are not signed, so
they count only on the request that creates the run: a replay is answered
202 with the run's id and status, no output, no waiting, no callback added.

The view is async: with `?wait=N` the caller waits up to N seconds for the
result while holding no server thread under ASGI (uvicorn) and no database
connection: the request's is handed back before waiting, and each poll
between `asyncio.sleep`s takes one and hands it back.

Beyond capacity a sender is told to come back (503 with Retry-After) at once
rather than kept waiting: before any of the checks above when the process
already works on `WEBHOOK_MAX_IN_PROGRESS` webhooks (no thread, no database,
no delivery recorded), and when no pooled connection came within
`DB_POOL_WEB_TIMEOUT` (config/asgi.py). Nothing accepted is lost: a 503 comes
before the run's transaction commits, and a 202 only after it, so the run
exists and is sent (or re-sent by the reaper); a retried delivery with the
same `webhook-id` finds its run if an earlier attempt did create it. A caller
waiting for the result who cannot get a connection to look gets the 202.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from config.lib.in_progress import InProgress
from config.lib.json_storable import unstorable_value
from config.lib.outbound import url_refusal
from workflows import services, sql
from workflows.builder.definition import InputError
from workflows.integrations.signing import SignatureInvalid, signature_verify
from workflows.integrations.triggers import verification_secrets
from workflows.models import Run, RunCallback, Trigger, WebhookDelivery
from workflows.schemas import MAX_KEY_LENGTH, MAX_WAIT_SECONDS, run_accepted
from workflows.selectors import run_json

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
# What a 503 tells the sender: the overload is the next seconds' queue, not an outage.
OVERLOADED_RETRY_AFTER_SECONDS = 2
OVERLOADED_MESSAGE = "Stepwise is over capacity right now; retry after {seconds} s."


def overloaded_body() -> bytes:
    """The JSON of a 503 beyond capacity (the view's, and config/asgi.py's in front of it)."""
    message = OVERLOADED_MESSAGE.format(seconds=OVERLOADED_RETRY_AFTER_SECONDS)
    return json.dumps({"error": message, "details": None}).encode()


# Rate limit ----------------------------------------------------------------


def _rate_limit_take(trigger: Trigger) -> tuple[bool, int, bool] | None:
    """Count this request in the trigger's current minute.

    Returns (allowed, seconds until the window ends, first refusal of the
    window), or None if the trigger was deleted meanwhile.
    A fixed window kept in the trigger's row, counted by one UPDATE that opens
    a new minute or adds one to the current one, and returns the count: so
    every web process shares it and two requests never both take the last slot.
    """
    now = timezone.now()
    window = now.replace(second=0, microsecond=0)
    retry_after = max(1, math.ceil((window + timedelta(minutes=1) - now).total_seconds()))
    limit = trigger.rate_limit_per_minute
    count = sql.trigger_rate_window_count(trigger_id=trigger.pk, window=window)
    if count is None:  # deleted since it was looked up
        return None
    return count <= limit, retry_after, count == limit + 1


def _admit(public_id: str) -> tuple[Trigger | None, bool, int]:
    """The live trigger and whether this request is under its rate limit, with
    the seconds until the window ends: (None, False, 0) for no such trigger.
    The first refusal of a window is recorded; later ones only counted."""
    trigger = (
        Trigger.objects.select_related("workflow")
        .filter(public_id=public_id, workflow__archived_at__isnull=True)
        .first()
    )
    if trigger is None:
        return None, False, 0
    taken = _rate_limit_take(trigger)
    if taken is None:
        return None, False, 0
    allowed, retry_after, first_refusal = taken
    if first_refusal:
        WebhookDelivery.objects.create(
            trigger=trigger,
            status_code=429,
            result=(
                f"Rate limited: {_rate_limit_message(trigger)} Later ones this minute are not "
                "listed."
            ),
        )
    return trigger, allowed, retry_after


def _rate_limit_message(trigger: Trigger) -> str:
    return f"More than {trigger.rate_limit_per_minute} requests in a minute."


def deliveries_prune(*, keep: timedelta = timedelta(days=7)) -> int:
    """Forget deliveries older than `keep` (beat, hourly): the page shows recent ones only."""
    deleted, _ = WebhookDelivery.objects.filter(received_at__lt=timezone.now() - keep).delete()
    return deleted


# The view --------------------------------------------------------------------


def _error(
    status: int, error: str, details: object = None, headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse({"error": error, "details": details}, status=status, headers=headers)


def _overloaded() -> HttpResponse:
    return HttpResponse(
        overloaded_body(),
        status=503,
        content_type="application/json",
        headers={"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)},
    )


def _record_sync(
    trigger: Trigger, status: int, result: str, message_id: str = "", run_id: int | None = None
) -> None:
    WebhookDelivery.objects.create(
        trigger=trigger,
        status_code=status,
        result=result[:300],
        message_id=message_id[:200],
        run_id=run_id,
    )


def _parse_wait(request: HttpRequest) -> int | None:
    raw = request.GET.get("wait")
    if raw in (None, ""):
        return 0
    try:
        wait = int(raw)
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_WAIT_SECONDS else None


def _start(
    trigger: Trigger, body: object, key: str | None, callback_url: str, message_id: str
) -> Run:
    """Start (or find) the run, register its callback and record the
    delivery, in one transaction.

    The run is enqueued when this commits, so its callback row exists before
    any worker can finish it. Only the request that creates the run attaches
    a callback: the callback URL is not signed, so a replay (same key) must
    not be able to add one.
    """
    inputs = body if isinstance(body, dict) else {}
    full_key = f"webhook:{trigger.pk}:{key}" if key else None
    with transaction.atomic():
        run = services.run_start(
            workflow=trigger.workflow,
            trigger=Run.Trigger.WEBHOOK,
            inputs=inputs,
            payload=body,
            idempotency_key=full_key,
        )
        if callback_url and not run.found_existing:
            RunCallback.objects.create(run=run, url=callback_url, trigger=trigger)
        _record_sync(
            trigger,
            202,
            "Same delivery again: the existing run." if run.found_existing else "Started a run.",
            message_id,
            run.id,
        )
    return run


async def wait_for_finish(run: Run, seconds: int) -> Run:
    """The run once finished, or as it stands after `seconds`. Holds no thread and no
    database connection while waiting.

    A request keeps its connection until it ends: a caller waiting up to a minute
    would hold one of the process's few pooled connections (or, without a pool, a
    PostgreSQL backend) all along, and a handful of them would stall every other
    request of the process. So the request's connection goes back before waiting,
    and each poll takes one and gives it back (both in the request's own thread,
    the one its connection belongs to)."""
    await sync_to_async(sql.connection_release)(keep_unpooled=False)
    deadline = time.monotonic() + seconds
    pause = 0.1
    while not run.is_finished and time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 1.0)
        try:
            run = await sync_to_async(_run_reload)(run.pk)
        except OperationalError:
            # No connection within DB_POOL_WEB_TIMEOUT for this look: look again
            # at the next poll; at the deadline the caller gets the run as last seen.
            continue
    return run


def _run_reload(pk: int) -> Run:
    """The run as stored now; this thread's connection is handed back right after."""
    try:
        return Run.objects.select_related("version").get(pk=pk)
    finally:
        sql.connection_release(keep_unpooled=False)


async def run_answer(run: Run, wait: int) -> JsonResponse:
    """200 with the run if it finished within `wait` s, else 202 with where to look
    (the API's RunOut and RunAccepted)."""
    if wait:
        run = await wait_for_finish(run, min(wait, settings.RUN_WAIT_MAX_SECONDS))
    if run.is_finished and wait:
        try:
            data = await sync_to_async(run_json)(run)
        except OperationalError:  # accepted and finished, but no connection to read it
            return _accepted(run)
        return JsonResponse(data, status=200)
    return _accepted(run)


def _accepted(run: Run) -> JsonResponse:
    """202 with the run's id, status and where to look: never its output."""
    return JsonResponse(run_accepted(run).model_dump(mode="json"), status=202)


# Webhooks this process works on now (in _receive); config/asgi.py refuses
# more in front of Django while it is full.
IN_PROGRESS = InProgress(lambda: settings.WEBHOOK_MAX_IN_PROGRESS)


@csrf_exempt
async def webhook_receive(request: HttpRequest, public_id: str) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "Send webhooks with POST.", headers={"Allow": "POST"})
    if not IN_PROGRESS.take():
        return _overloaded()
    # Admission, the checks, the run and the delivery record in one hop to a
    # thread: every hop costs the event loop latency and CPU. Only `?wait=`
    # waits here, holding no thread and no database connection.
    try:
        answer = await sync_to_async(_receive)(request, public_id)
    except OperationalError as e:
        # No pooled connection within DB_POOL_WEB_TIMEOUT (or the database is
        # unreachable): nothing was committed, the sender may retry.
        log.warning("Webhook answered 503: %s", e)
        return _overloaded()
    finally:
        IN_PROGRESS.give_back()
    if isinstance(answer, HttpResponse):
        return answer
    run, wait = answer
    if run.found_existing:
        # A replay inside the signature's 5 minutes: ?wait= is not signed, so
        # whoever captured the delivery must not get the output by replaying it.
        return _accepted(run)
    return await run_answer(run, wait)


def _receive(request: HttpRequest, public_id: str) -> HttpResponse | tuple[Run, int]:
    """A refusal (recorded as a delivery unless the trigger is unknown or over its
    limit), or the started (or found) run and the seconds the sender will wait."""
    trigger, allowed, retry_after = _admit(public_id)
    if trigger is None:
        return _error(404, "No such webhook.")
    if not allowed:
        message = _rate_limit_message(trigger)
        return _error(
            429,
            message + f" Retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )

    headers = {name.lower(): value for name, value in request.headers.items()}
    message_id = headers.get("webhook-id", "")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > MAX_BODY_BYTES else request.read(MAX_BODY_BYTES + 1)
    if declared > MAX_BODY_BYTES or len(body) > MAX_BODY_BYTES:
        _record_sync(trigger, 413, "Body larger than 1 MB.", message_id)
        return _error(413, "The body is larger than 1 MB.")

    if trigger.signing_required:
        try:
            signature_verify(secrets=verification_secrets(trigger), headers=headers, body=body)
        except SignatureInvalid as e:
            _record_sync(trigger, 401, f"Signature refused: {e}", message_id)
            return _error(401, str(e))

    content_type = request.content_type or ""
    if not (content_type == "application/json" or content_type.endswith("+json")):
        _record_sync(
            trigger, 415, f"Not JSON (Content-Type {content_type or 'missing'}).", message_id
        )
        return _error(415, "Send the body as JSON with Content-Type: application/json.")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        _record_sync(trigger, 415, "The body is not valid JSON.", message_id)
        return _error(415, "The body is not valid JSON.")
    if why := unstorable_value(data):
        _record_sync(trigger, 422, f"The body {why}.", message_id)
        return _error(422, f"The body {why}.")

    wait = _parse_wait(request)
    if wait is None:
        _record_sync(trigger, 400, "Bad wait parameter.", message_id)
        return _error(400, f"wait must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}.")
    key = message_id or headers.get("idempotency-key", "")
    if len(key) > MAX_KEY_LENGTH:
        _record_sync(trigger, 400, "Idempotency key too long.", message_id)
        return _error(
            400, f"webhook-id / Idempotency-Key may be at most {MAX_KEY_LENGTH} characters."
        )
    callback_url = (
        request.GET.get("callback_url") or headers.get("callback-url") or trigger.callback_url
    )
    refusal = url_refusal(callback_url) if callback_url else None
    if refusal:
        _record_sync(trigger, 400, f"Callback URL refused: {refusal}", message_id)
        return _error(400, f"The callback URL is refused: {refusal}")

    try:
        run = _start(trigger, data, key or None, callback_url, message_id)
    except InputError as e:
        _record_sync(trigger, 422, str(e), message_id)
        return _error(422, str(e), e.details)
    except services.NotPublished as e:
        _record_sync(trigger, 409, str(e), message_id)
        return _error(409, str(e))
    except services.WorkflowInvalid as e:
        _record_sync(trigger, 422, "The published version does not validate.", message_id)
        return _error(
            422,
            "The published version of this workflow does not validate.",
            [issue.to_dict() for issue in e.issues],
        )
    return run, wait
