"""Webhook triggers: Standard Webhooks signatures (made by the reference library), every refusal,
idempotency under concurrency, rate limits, wait mode, and the trigger id kept out of logs."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client, override_settings
from django.utils import timezone

from config.lib.log_scrub import ScrubHookIds, scrub
from tests.conftest import IDLE_QUEUE, Personas
from tests.factories import api_token, hook_path, published_workflow, signed
from tests.polling import wait_for_output, wait_for_run, wait_until
from workflows import services
from workflows.integrations import triggers
from workflows.integrations.signing import SignatureInvalid, signature_verify
from workflows.integrations.webhooks import webhook_receive
from workflows.models import Run, Trigger, WebhookDelivery
from workflows.runtime import engine

BODY = json.dumps({"who": "Ada", "source": "crm", "extra": [1, 2]})


def hook(personas: Personas) -> triggers.TriggerWithSecret:
    return triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )


def deliver(
    client: Client,
    made: triggers.TriggerWithSecret,
    body: str = BODY,
    headers: dict | None = None,
    query: str = "",
    **extra: object,
):
    headers = signed(made.secret, body) if headers is None else headers
    return client.post(
        hook_path(made.trigger.url()) + query,
        data=body,
        content_type=extra.pop("content_type", "application/json"),
        headers=headers,
        **extra,
    )


def test_a_delivery_signed_by_the_reference_library_starts_a_run(client: Client, hook) -> None:
    response = deliver(client, hook)
    assert response.status_code == 202, response.content
    data = response.json()
    assert set(data) == {"run_id", "status", "status_url"}
    assert data["status"] == "queued"
    assert data["status_url"].endswith(f"/api/v1/runs/{data['run_id']}")
    run = Run.objects.get(id=data["run_id"])
    assert run.trigger == Run.Trigger.WEBHOOK
    assert run.inputs == {"who": "Ada", "times": 1}
    assert run.payload == {"who": "Ada", "source": "crm", "extra": [1, 2]}
    assert run.version.number == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status_code, delivery.run_id) == (202, run.id)


def test_it_runs_the_latest_published_version(client: Client, hook) -> None:
    workflow = hook.trigger.workflow
    services.workflow_publish(workflow=workflow, user=None, summary="again")
    run = Run.objects.get(id=deliver(client, hook).json()["run_id"])
    assert run.version.number == 2


def test_a_bad_signature_is_refused(client: Client, hook) -> None:
    other = triggers.secret_generate()
    response = deliver(client, hook, headers=signed(other, BODY))
    assert response.status_code == 401
    assert "signature" in response.json()["error"]
    assert not Run.objects.exists()
    assert WebhookDelivery.objects.get().status_code == 401


def test_a_body_changed_by_one_byte_is_refused(client: Client, hook) -> None:
    headers = signed(hook.secret, BODY)
    response = deliver(client, hook, body=BODY.replace("Ada", "Adb"), headers=headers)
    assert response.status_code == 401
    assert not Run.objects.exists()


def test_missing_signature_headers_are_refused(client: Client, hook) -> None:
    assert deliver(client, hook, headers={}).status_code == 401
    headers = signed(hook.secret, BODY)
    del headers["webhook-timestamp"]
    assert deliver(client, hook, headers=headers).status_code == 401
    assert not Run.objects.exists()


# 10 s clear of the 300 s tolerance, so a loaded machine's delay between signing and checking
# cannot move a case across it; the exact boundary is the next test's, on a fixed clock.
@pytest.mark.parametrize(("offset", "status"), [(-310, 401), (310, 401), (-290, 202), (290, 202)])
def test_the_timestamp_must_be_within_five_minutes(
    client: Client, hook, offset: int, status: int
) -> None:
    at = datetime.now(tz=UTC) + timedelta(seconds=offset)
    assert deliver(client, hook, headers=signed(hook.secret, BODY, at=at)).status_code == status


def test_the_tolerance_is_exactly_300_seconds() -> None:
    secret = triggers.secret_generate()
    now = time.time()
    for offset, ok in [(300, True), (-300, True), (301, False), (-301, False)]:
        at = datetime.fromtimestamp(int(now) + offset, tz=UTC)
        headers = signed(secret, BODY, at=at)
        if ok:
            signature_verify(secrets=[secret], headers=headers, body=BODY.encode(), now=int(now))
        else:
            with pytest.raises(SignatureInvalid):
                signature_verify(
                    secrets=[secret], headers=headers, body=BODY.encode(), now=int(now)
                )


def test_one_matching_signature_among_several_is_enough(client: Client, hook) -> None:
    headers = signed(hook.secret, BODY)
    good = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1,AAAA{good[7:]} v2,{good[3:]} {good}"
    assert deliver(client, hook, headers=headers).status_code == 202
    headers = signed(hook.secret, BODY)
    headers["webhook-signature"] = "v2," + headers["webhook-signature"][3:]
    assert deliver(client, hook, headers=headers).status_code == 401


def test_after_a_rotation_the_old_secret_works_for_24_hours(
    client: Client, hook, personas: Personas
) -> None:
    old = hook.secret
    rotated = triggers.trigger_rotate(trigger=hook.trigger, user=personas.alice)
    assert rotated.secret != old
    assert deliver(client, rotated, headers=signed(old, BODY)).status_code == 202
    assert deliver(client, rotated, headers=signed(rotated.secret, BODY)).status_code == 202
    expiry = rotated.trigger.previous_expires_at
    assert timedelta(hours=23, minutes=59) < expiry - timezone.now() <= timedelta(hours=24)
    Trigger.objects.filter(id=hook.trigger.id).update(
        previous_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert deliver(client, rotated, headers=signed(old, BODY)).status_code == 401
    assert deliver(client, rotated, headers=signed(rotated.secret, BODY)).status_code == 202


def test_secrets_are_stored_encrypted(hook) -> None:
    row = Trigger.objects.get(id=hook.trigger.id)
    assert hook.secret.startswith("whsec_")
    assert hook.secret not in row.secret_encrypted
    assert hook.secret.removeprefix("whsec_") not in row.secret_encrypted
    assert triggers.secret_decrypt(row.secret_encrypted) == hook.secret


def test_a_replayed_delivery_returns_the_same_run(client: Client, hook) -> None:
    headers = signed(hook.secret, BODY)
    first = deliver(client, hook, headers=headers)
    second = deliver(client, hook, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["run_id"] == second.json()["run_id"]
    assert Run.objects.count() == 1
    assert WebhookDelivery.objects.filter(result__startswith="Same delivery").count() == 1


def test_a_replay_within_the_window_never_returns_the_output(client: Client, hook) -> None:
    # ?wait= is not signed: whoever captured a delivery
    # could replay it, adding ?wait=, to read the output.
    headers = signed(hook.secret, BODY)
    first = deliver(client, hook, headers=headers)
    engine.run_execute(first.json()["run_id"])
    assert Run.objects.get(id=first.json()["run_id"]).output == "Hello Ada x1 from crm"
    replay = deliver(client, hook, headers=headers, query="?wait=5")
    assert replay.status_code == 202, replay.content
    assert replay.json() == {
        "run_id": first.json()["run_id"],
        "status": "succeeded",
        "status_url": first.json()["status_url"],
    }
    assert b"Hello Ada" not in replay.content


def test_a_replay_does_not_wait(client: Client, hook, personas: Personas) -> None:
    triggers.trigger_set_signing(trigger=hook.trigger, required=False, user=personas.alice)
    first = deliver(client, hook, headers={"Idempotency-Key": "order-18"})
    started = time.monotonic()
    replay = deliver(client, hook, headers={"Idempotency-Key": "order-18"}, query="?wait=3")
    assert time.monotonic() - started < 1.5
    assert replay.status_code == 202
    assert replay.json()["run_id"] == first.json()["run_id"]


def test_an_idempotency_key_header_works_for_unsigned_triggers(
    client: Client, hook, personas: Personas
) -> None:
    triggers.trigger_set_signing(trigger=hook.trigger, required=False, user=personas.alice)
    first = deliver(client, hook, headers={"Idempotency-Key": "order-17"})
    second = deliver(client, hook, headers={"Idempotency-Key": "order-17"})
    third = deliver(client, hook, headers={})
    assert first.status_code == second.status_code == third.status_code == 202
    assert first.json()["run_id"] == second.json()["run_id"] != third.json()["run_id"]
    assert Run.objects.count() == 2


@override_settings(WEBHOOK_MAX_IN_PROGRESS=0)  # all fifty at once, not 503s beyond the cap
def test_fifty_concurrent_identical_deliveries_start_exactly_one_run(
    transactional_db: None, personas: Personas
) -> None:
    hook = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    headers = signed(hook.secret, BODY)
    barrier = threading.Barrier(50)
    answers: list[tuple[int, int | None]] = []

    def send() -> None:
        try:
            barrier.wait(10)
            response = deliver(Client(), hook, headers=headers)
            answers.append((response.status_code, response.json().get("run_id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 50
    assert {status for status, _ in answers} == {202}
    assert len({run_id for _, run_id in answers}) == 1
    assert Run.objects.count() == 1


def test_a_body_that_is_not_json_is_refused_with_415(client: Client, hook) -> None:
    text = "who=Ada"
    response = deliver(
        client, hook, body=text, headers=signed(hook.secret, text), content_type="text/plain"
    )
    assert response.status_code == 415
    broken = '{"who": "Ada"'
    response = deliver(client, hook, body=broken, headers=signed(hook.secret, broken))
    assert response.status_code == 415
    assert not Run.objects.exists()


def test_a_body_over_one_megabyte_is_refused_with_413(client: Client, hook) -> None:
    big = json.dumps({"who": "Ada", "padding": "x" * 1_000_000})
    response = deliver(client, hook, body=big, headers=signed(hook.secret, big))
    assert response.status_code == 413
    # A declared length over the limit is refused before the body is read.
    response = deliver(client, hook, CONTENT_LENGTH="5000000")
    assert response.status_code == 413
    assert not Run.objects.exists()


def test_missing_required_inputs_are_refused_with_422_naming_them(client: Client, hook) -> None:
    body = json.dumps({"times": "three"})
    response = deliver(client, hook, body=body, headers=signed(hook.secret, body))
    assert response.status_code == 422
    data = response.json()
    assert "who" in data["error"]
    assert set(data["details"]) == {"who", "times"}
    assert not Run.objects.exists()


def test_a_body_that_is_not_an_object_reaches_the_payload_only(
    client: Client, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Any",
            "steps": [{"key": "echo", "type": "template", "template": "{{ payload }}"}],
        },
    )
    made = triggers.trigger_create(workflow=workflow, user=None)
    body = json.dumps([1, 2, 3])
    response = deliver(client, made, body=body, headers=signed(made.secret, body))
    assert response.status_code == 202
    assert Run.objects.get().payload == [1, 2, 3]


def test_over_the_rate_limit_it_answers_429_with_retry_after(
    client: Client, hook, personas: Personas
) -> None:
    triggers.trigger_update(
        trigger=hook.trigger, user=None, name="", callback_url="", rate_limit_per_minute=3
    )
    codes = [deliver(client, hook).status_code for _ in range(6)]
    # A minute boundary may fall between the requests: then the count starts again.
    if codes[:3] == [202] * 3:
        assert codes[3] == 429
    limited = [r for r in [deliver(client, hook) for _ in range(4)] if r.status_code == 429]
    assert limited
    assert 1 <= int(limited[0]["Retry-After"]) <= 60
    assert "Retry after" in limited[0].json()["error"]
    # Refusals in one minute are listed once, not once each.
    assert WebhookDelivery.objects.filter(status_code=429).count() <= 2


def test_an_unknown_trigger_is_404_and_other_methods_are_405(client: Client, hook) -> None:
    response = client.post(
        "/hooks/not-a-real-trigger-id", data=BODY, content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json()["error"] == "No such webhook."
    response = client.get(hook_path(hook.trigger.url()))
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_webhooks_need_no_csrf_token(hook) -> None:
    assert deliver(Client(enforce_csrf_checks=True), hook).status_code == 202


def test_an_unpublished_workflow_answers_409(client: Client, personas: Personas) -> None:
    from tests.factories import GREETING

    workflow = services.workflow_create(
        workspace=personas.workspace, definition=GREETING, user=None
    )
    made = triggers.trigger_create(workflow=workflow, user=None)
    response = deliver(client, made)
    assert response.status_code == 409
    assert "Publish" in response.json()["error"]


def test_an_unsigned_trigger_accepts_the_url_alone_but_a_signed_one_does_not(
    client: Client, hook, personas: Personas
) -> None:
    assert deliver(client, hook, headers={}).status_code == 401
    triggers.trigger_set_signing(trigger=hook.trigger, required=False, user=personas.alice)
    assert deliver(client, hook, headers={}).status_code == 202


def test_wait_gives_up_after_n_seconds_with_the_202(client: Client, hook) -> None:
    started = time.monotonic()
    response = deliver(client, hook, query="?wait=1")
    assert response.status_code == 202
    assert 0.9 < time.monotonic() - started < 5


@pytest.mark.parametrize("wait", ["61", "-1", "soon"])
def test_a_bad_wait_is_refused(client: Client, hook, wait: str) -> None:
    response = deliver(client, hook, query=f"?wait={wait}")
    assert response.status_code == 400
    assert "wait" in response.json()["error"]


def test_a_private_callback_url_is_refused(client: Client, hook) -> None:
    response = deliver(client, hook, query="?callback_url=http://169.254.169.254/latest")
    assert response.status_code == 400
    assert "callback" in response.json()["error"].lower()
    assert not Run.objects.exists()


def test_the_view_is_async_so_waiting_callers_hold_no_thread() -> None:
    assert asyncio.iscoroutinefunction(webhook_receive)


def test_trigger_ids_are_long_and_random(hook) -> None:
    public_ids = {
        triggers.trigger_create(workflow=hook.trigger.workflow, user=None).trigger.public_id
        for _ in range(20)
    }
    assert len(public_ids) == 20
    assert all(len(pid) >= 32 for pid in public_ids)  # 24 random bytes, URL-safe base64


def test_trigger_ids_are_scrubbed_from_logs(hook) -> None:
    public_id = hook.trigger.public_id
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Unauthorized: %s",
        (f"/hooks/{public_id}",),
        None,
    )
    ScrubHookIds().filter(record)
    assert public_id not in record.getMessage()
    assert "/hooks/[scrubbed]" in record.getMessage()
    access = f'127.0.0.1:5000 - "POST /hooks/{public_id}?wait=3 HTTP/1.1" 202'
    assert scrub(access) == '127.0.0.1:5000 - "POST /hooks/[scrubbed]?wait=3 HTTP/1.1" 202'
    console = settings.LOGGING["handlers"]["console"]
    assert "scrub_hook_ids" in console["filters"]
    assert settings.LOGGING["loggers"]["uvicorn.access"]["handlers"] == ["console"]


def test_a_refused_delivery_logs_no_trigger_id(
    client: Client, hook, capfd: pytest.CaptureFixture[str]
) -> None:
    deliver(client, hook, headers={})
    deliver(client, hook, headers={}, query="?wait=x")
    logging.getLogger("django.request").warning("Unauthorized: %s", hook_path(hook.trigger.url()))
    out, err = capfd.readouterr()
    assert hook.trigger.public_id not in out + err


def test_the_shell_snippet_signs_like_the_reference_library(hook) -> None:
    """The openssl pipeline shown on the triggers page makes a valid signature."""
    script = (
        "KEY=\"$(printf '%s' \"${SECRET#whsec_}\" | base64 -d | od -An -v -tx1 | tr -d ' \\n')\"\n"
        'printf \'%s.%s.%s\' "$ID" "$TS" "$BODY" | openssl dgst -sha256 -mac HMAC -macopt '
        '"hexkey:$KEY" -binary '
        "| base64\n"
    )
    ts = str(int(time.time()))
    out = subprocess.run(
        ["sh", "-c", script],
        env={"SECRET": hook.secret, "ID": "msg_1", "TS": ts, "BODY": BODY, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": f"v1,{out}"}
    signature_verify(secrets=[hook.secret], headers=headers, body=BODY.encode())


# End to end: an external program, a real ASGI server (uvicorn), a real worker ---------------------


@pytest.fixture(scope="module")
def shared_asgi_server(worker_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """One server for the module: it keeps no state between requests but what the
    database holds, and sends runs to the session's worker queue."""
    from tests.servers import AsgiServer

    server = AsgiServer(worker_env)
    yield server
    server.stop()


@pytest.fixture
def asgi_server(worker, shared_asgi_server):  # type: ignore[no-untyped-def]
    return shared_asgi_server


@pytest.mark.integration
def test_an_external_program_gets_the_output_in_the_same_request(
    asgi_server, personas: Personas
) -> None:
    import httpx

    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    url = asgi_server.url + hook_path(made.trigger.url())
    response = httpx.post(
        url,
        params={"wait": 30},
        content=BODY,
        timeout=40,
        headers={"Content-Type": "application/json", **signed(made.secret, BODY)},
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "succeeded"
    assert data["output"] == "Hello Ada x1 from crm"
    assert data["trigger"] == "webhook" and data["steps"][0]["key"] == "greet"
    # The same delivery again (a replay inside the 5
    # minutes) gets the run's id and status, not its output.
    replay = httpx.post(
        url, params={"wait": 30}, content=BODY, timeout=40, headers=response.request.headers
    )
    assert replay.status_code == 202
    assert replay.json() == {
        "run_id": data["id"],
        "status": "succeeded",
        "status_url": replay.json()["status_url"],
    }


@pytest.mark.integration
def test_many_callers_wait_at_once_without_exhausting_the_server(
    asgi_server, personas: Personas
) -> None:
    """Twenty callers wait for one-second LLM runs
    together; each gets its output in its own request."""
    import httpx

    slow = {
        "name": "Slow",
        "inputs": [{"name": "who", "type": "text"}],
        "steps": [
            {
                "key": "answer",
                "type": "llm",
                "prompt": "[[fake:latency=1000]] Greet {{ who }}",
                "max_tokens": 20,
            }
        ],
    }
    made = triggers.trigger_create(workflow=published_workflow(personas.workspace, slow), user=None)
    url = asgi_server.url + hook_path(made.trigger.url())

    async def call(i: int) -> httpx.Response:
        body = json.dumps({"who": f"caller {i}"})
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(
                url,
                params={"wait": 40},
                content=body,
                headers={"Content-Type": "application/json", **signed(made.secret, body)},
            )

    async def all_calls() -> list[httpx.Response]:
        return await asyncio.gather(*(call(i) for i in range(20)))

    started = time.monotonic()
    responses = asyncio.run(all_calls())
    assert [r.status_code for r in responses] == [200] * 20, [
        r.text for r in responses if r.status_code != 200
    ]
    assert all(r.json()["status"] == "succeeded" and r.json()["output"] for r in responses)
    assert time.monotonic() - started < 40


@pytest.mark.integration
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="Connections are pooled on PostgreSQL only (CI runs the suite on PostgreSQL).",
)
def test_callers_waiting_for_results_leave_the_connection_pool_to_other_requests(
    worker, worker_env: dict[str, str], personas: Personas
) -> None:
    """More callers wait on eight-second runs than the server's pool has
    connections: a plain webhook meanwhile gets its 202 at once, not after a
    waiting caller's run finishes."""
    import httpx

    from tests.servers import AsgiServer

    slow = {
        "name": "Slow",
        "inputs": [{"name": "who", "type": "text"}],
        "steps": [
            {
                "key": "answer",
                "type": "llm",
                "prompt": "[[fake:latency=8000]] Greet {{ who }}",
                "max_tokens": 20,
            }
        ],
    }
    slow_hook = triggers.trigger_create(
        workflow=published_workflow(personas.workspace, slow), user=None
    )
    plain_hook = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    # A wait for a pooled connection longer than the test's bound (3 s): a waiting caller
    # holding one shows as a slow 202, not as a 503 or a poll given up under CI load.
    server = AsgiServer({**worker_env, "DB_POOL_MAX_SIZE": "2", "DB_POOL_WEB_TIMEOUT": "10"})

    def post(made: triggers.TriggerWithSecret, body: str, **params: int) -> httpx.Response:
        return httpx.post(
            server.url + hook_path(made.trigger.url()),
            params=params,
            content=body,
            timeout=60,
            headers={"Content-Type": "application/json", **signed(made.secret, body)},
        )

    try:
        with ThreadPoolExecutor(3) as callers:
            waiting = [
                callers.submit(post, slow_hook, json.dumps({"who": f"caller {i}"}), wait=30)
                for i in range(3)
            ]
            wait_until(
                lambda: Run.objects.filter(workflow=slow_hook.trigger.workflow).count() >= 2,
                10,
                "the waiting callers' runs did not start",
            )
            started = time.monotonic()
            plain = post(plain_hook, BODY)
            took = time.monotonic() - started
            answers = [caller.result() for caller in waiting]
    finally:
        server.stop()
    assert plain.status_code == 202, plain.text
    assert took < 3, f"a plain webhook waited {took:.1f} s for a pooled connection"
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]


def _post_hook(server_url: str, made: triggers.TriggerWithSecret, body: str = BODY):  # type: ignore[no-untyped-def]
    """POST a signed delivery; the answer and the seconds it took."""
    import httpx

    started = time.monotonic()
    answer = httpx.post(
        server_url + hook_path(made.trigger.url()),
        content=body,
        timeout=60,
        headers={"Content-Type": "application/json", **signed(made.secret, body)},
    )
    return answer, time.monotonic() - started


@pytest.mark.integration
def test_beyond_the_webhooks_in_progress_a_webhook_is_answered_503_at_once(
    worker, worker_env: dict[str, str], personas: Personas
) -> None:
    """With one webhook allowed in progress and that one stuck on a lock, a
    second is told to come back (503, Retry-After) without waiting; the first
    is accepted once the lock goes, and its run runs."""
    from tests.servers import AsgiServer

    made = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    server = AsgiServer({**worker_env, "WEBHOOK_MAX_IN_PROGRESS": "1"})
    try:
        with ThreadPoolExecutor(2) as senders:
            # The trigger's row locked (SQLite: the write lock): a delivery stays in
            # progress at its rate-limit UPDATE until the transaction ends.
            with transaction.atomic():
                Trigger.objects.select_for_update().get(pk=made.trigger.pk)
                calls = [senders.submit(_post_hook, server.url, made) for _ in range(2)]
                refused, took = next(as_completed(calls)).result()
            answers = [call.result() for call in calls]
    finally:
        server.stop()
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2"
    assert "over capacity" in refused.json()["error"]
    assert took < 2, f"the 503 took {took:.2f} s"
    assert sorted(answer.status_code for answer, _ in answers) == [202, 503]
    accepted = next(answer for answer, _ in answers if answer.status_code == 202)
    run = wait_for_run(accepted.json()["run_id"])
    assert run.status == Run.Status.SUCCEEDED
    assert Run.objects.count() == 1  # the 503 started nothing


@pytest.mark.integration
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="Connections are pooled on PostgreSQL only (CI runs the suite on PostgreSQL).",
)
def test_a_request_that_gets_no_pooled_connection_in_time_is_answered_503(
    worker, worker_env: dict[str, str], personas: Personas
) -> None:
    """A web process with a pool of one connection, held by a delivery stuck on a
    lock: another delivery and an API run start wait DB_POOL_WEB_TIMEOUT (not the
    workers' 30 s) and get 503 with Retry-After; the held delivery is then
    accepted and its run runs."""
    import httpx

    from tests.servers import AsgiServer

    made = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    token = api_token(personas.workspace, personas.alice)
    server = AsgiServer({**worker_env, "DB_POOL_MAX_SIZE": "1", "DB_POOL_WEB_TIMEOUT": "0.3"})

    def locks_waited_on() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0]

    try:
        with ThreadPoolExecutor(1) as senders:
            with transaction.atomic():
                Trigger.objects.select_for_update().get(pk=made.trigger.pk)
                held = senders.submit(_post_hook, server.url, made)
                wait_until(
                    lambda: locks_waited_on() == 1, 30, "the first delivery did not reach the lock"
                )
                refused, took = _post_hook(server.url, made, json.dumps({"who": "Grace"}))
                started = time.monotonic()
                api_refused = httpx.post(
                    f"{server.url}/api/v1/workflows/{made.trigger.workflow_id}/runs",
                    json={"inputs": {"who": "Ada"}},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
                api_took = time.monotonic() - started
            accepted, _ = held.result()
    finally:
        server.stop()
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2"
    assert took < 3, f"the 503 took {took:.2f} s"
    assert api_refused.status_code == 503, api_refused.text
    assert api_refused.headers["Retry-After"] == "2"
    assert set(api_refused.json()) == {"error", "details"}
    assert api_took < 3, f"the API's 503 took {api_took:.2f} s"
    assert accepted.status_code == 202, accepted.text
    assert wait_for_run(accepted.json()["run_id"]).status == Run.Status.SUCCEEDED
    assert Run.objects.count() == 1


@pytest.mark.integration
def test_a_chunked_body_over_one_megabyte_is_refused_by_what_is_read(
    asgi_server, personas: Personas
) -> None:
    import httpx

    made = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    url = asgi_server.url + hook_path(made.trigger.url())

    def chunks():  # no Content-Length: sent chunked
        yield b'{"who": "Ada", "padding": "'
        for _ in range(11):
            yield b"x" * 100_000
        yield b'"}'

    response = httpx.post(
        url, content=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 413
    assert not Run.objects.exists()


@pytest.mark.integration
def test_the_servers_logs_never_show_a_trigger_id(
    worker_env: dict[str, str],
    transactional_db: None,
    personas: Personas,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import httpx

    from tests.servers import AsgiServer

    made = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    server = AsgiServer(
        {**worker_env, "CELERY_QUEUE": IDLE_QUEUE}, log_level="info"
    )  # access lines on, like docker-compose
    try:
        url = server.url + hook_path(made.trigger.url())
        assert (
            httpx.post(url, content=BODY, headers={"Content-Type": "application/json"}).status_code
            == 401
        )
        assert (
            httpx.post(
                url + "x", content=BODY, headers={"Content-Type": "application/json"}
            ).status_code
            == 404
        )
        logged = wait_for_output(capfd, '"POST /hooks/', count=2)
    finally:
        server.stop()
    out, err = capfd.readouterr()
    logged += out + err
    assert "POST /hooks/[scrubbed] HTTP/1.1" in logged
    assert made.trigger.public_id not in logged


def test_deliveries_older_than_a_week_are_pruned(client: Client, hook) -> None:
    from workflows.integrations.webhooks import deliveries_prune

    deliver(client, hook)
    deliver(client, hook, headers={})
    WebhookDelivery.objects.filter(status_code=401).update(
        received_at=timezone.now() - timedelta(days=8)
    )
    assert deliveries_prune() == 1
    assert list(WebhookDelivery.objects.values_list("status_code", flat=True)) == [202]
    assert "workflows.deliveries_prune" in {
        e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()
    }


def test_after_a_key_rotation_secrets_can_be_reencrypted_so_the_old_key_may_go(
    client: Client, hook, settings
) -> None:  # type: ignore[no-untyped-def]
    import io

    from django.core.management import call_command

    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "the-new-key-" + "n" * 40, [old_key]
    assert deliver(client, hook).status_code == 202  # read through the fallback
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert out.getvalue().startswith("1 webhook secrets re-encrypted")
    settings.SECRET_KEY_FALLBACKS = []
    assert (
        triggers.secret_decrypt(Trigger.objects.get(id=hook.trigger.id).secret_encrypted)
        == hook.secret
    )
    assert deliver(client, hook).status_code == 202
