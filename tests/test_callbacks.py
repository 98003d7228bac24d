"""Completion callbacks: the run's result POSTed, signed with Standard Webhooks, retried with
backoff, only through the guarded client; and end to end with a real worker and a real ASGI
server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.test import Client, override_settings
from django.utils import timezone
from standardwebhooks import Webhook

from config.celery import app as celery_app
from tests.conftest import Personas
from tests.factories import hook_path, published_workflow, signed
from tests.polling import wait_for_run
from tests.servers import (
    AsgiServer,
    CallbackReceiver,
    WorkerProcess,
    stop_together,
    worker_and_server,
)
from workflows.integrations import callbacks, triggers
from workflows.models import Run, RunCallback
from workflows.runtime import engine
from workflows.selectors import run_json

BODY = json.dumps({"who": "Ada", "source": "crm"})


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    r = CallbackReceiver()
    yield r
    r.stop()


def hook(personas: Personas) -> triggers.TriggerWithSecret:
    return triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )


def start_with_callback(made: triggers.TriggerWithSecret, callback_url: str) -> Run:
    """A webhook delivery naming a callback, then the
    run executed by the real engine, in-process."""
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        response = Client().post(
            hook_path(made.trigger.url()) + f"?callback_url={callback_url}",
            data=BODY,
            content_type="application/json",
            headers=signed(made.secret, BODY),
        )
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    engine.run_execute(run_id)
    return Run.objects.get(id=run_id)


def test_the_result_is_posted_signed_with_the_triggers_secret(
    hook, receiver: CallbackReceiver
) -> None:
    run = start_with_callback(hook, receiver.url)
    assert run.status == Run.Status.SUCCEEDED
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        assert callbacks.callback_deliver(run.callback.id) == RunCallback.Status.DELIVERED
    headers, body = receiver.received[0]
    payload = Webhook(hook.secret).verify(body, headers)  # the reference library accepts it
    assert payload == json.loads(json.dumps(run_json(run)))
    assert payload["output"] == "Hello Ada x1 from crm"
    assert headers["webhook-id"] == f"run_{run.id}"
    assert headers["content-type"] == "application/json"
    callback = RunCallback.objects.get(run=run)
    assert (callback.status, callback.attempts, callback.last_status_code) == ("delivered", 1, 200)


def test_a_failed_attempt_is_retried_with_backoff_under_the_same_id(
    hook, receiver: CallbackReceiver, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CALLBACK_RETRY_BASE_SECONDS = 30
    receiver.codes = [500, 503]
    run = start_with_callback(hook, receiver.url)
    callback = run.callback
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        assert callbacks.callback_deliver(callback.id) == RunCallback.Status.PENDING
        callback.refresh_from_db()
        assert callback.attempts == 1 and callback.last_status_code == 500
        assert (
            timedelta(seconds=25)
            < callback.next_attempt_at - timezone.now()
            <= timedelta(seconds=30)
        )
        # Not due yet: a duplicate or early task does nothing.
        assert callbacks.callback_deliver(callback.id) is None
        RunCallback.objects.filter(id=callback.id).update(next_attempt_at=timezone.now())
        assert callbacks.callback_deliver(callback.id) == RunCallback.Status.PENDING
        callback.refresh_from_db()
        # The delay doubles.
        assert (
            timedelta(seconds=55)
            < callback.next_attempt_at - timezone.now()
            <= timedelta(seconds=60)
        )
        RunCallback.objects.filter(id=callback.id).update(next_attempt_at=timezone.now())
        assert callbacks.callback_deliver(callback.id) == RunCallback.Status.DELIVERED
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert ids == {f"run_{run.id}"} and len(receiver.received) == 3


def test_it_gives_up_after_the_last_attempt(hook, receiver: CallbackReceiver, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CALLBACK_MAX_ATTEMPTS = 2
    receiver.codes = [500, 500, 500]
    run = start_with_callback(hook, receiver.url)
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        callbacks.callback_deliver(run.callback.id)
        RunCallback.objects.filter(id=run.callback.id).update(next_attempt_at=timezone.now())
        assert callbacks.callback_deliver(run.callback.id) == RunCallback.Status.FAILED
    callback = RunCallback.objects.get(run=run)
    assert "Gave up after 2 attempts" in callback.last_error


def test_a_private_callback_address_is_refused_for_good(hook, receiver: CallbackReceiver) -> None:
    run = start_with_callback(hook, receiver.url)
    # Without the test-only setting, the guarded client refuses 127.0.0.1: no retry helps.
    assert callbacks.callback_deliver(run.callback.id) == RunCallback.Status.FAILED
    assert receiver.received == []
    assert "loopback" in RunCallback.objects.get(run=run).last_error


def test_a_callback_waits_for_the_run_to_finish(hook, receiver: CallbackReceiver) -> None:
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        response = Client().post(
            hook_path(hook.trigger.url()) + f"?callback_url={receiver.url}",
            data=BODY,
            content_type="application/json",
            headers=signed(hook.secret, BODY),
        )
        callback = RunCallback.objects.get(run_id=response.json()["run_id"])
        assert callbacks.callback_deliver(callback.id) is None
        assert callbacks.callbacks_sweep() == 0
    assert receiver.received == []


def test_the_sweep_picks_up_callbacks_of_runs_finished_elsewhere(
    hook, receiver: CallbackReceiver
) -> None:
    from workflows import services

    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        response = Client().post(
            hook_path(hook.trigger.url()) + f"?callback_url={receiver.url}",
            data=BODY,
            content_type="application/json",
            headers=signed(hook.secret, BODY),
        )
    run = Run.objects.get(id=response.json()["run_id"])
    assert services.run_cancel(run=run)  # finished without the engine's _finish
    assert callbacks.callbacks_sweep() == 1


def test_a_triggers_own_callback_url_is_used_when_the_request_names_none(
    hook, receiver: CallbackReceiver
) -> None:
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        triggers.trigger_update(
            trigger=hook.trigger,
            user=None,
            name="",
            callback_url=receiver.url,
            rate_limit_per_minute=60,
        )
        response = Client().post(
            hook_path(hook.trigger.url()),
            data=BODY,
            content_type="application/json",
            headers=signed(hook.secret, BODY),
        )
    assert RunCallback.objects.get(run_id=response.json()["run_id"]).url == receiver.url


def test_a_replayed_delivery_registers_no_second_callback(hook, receiver: CallbackReceiver) -> None:
    headers = signed(hook.secret, BODY)
    path = hook_path(hook.trigger.url())
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        first = Client().post(
            path + f"?callback_url={receiver.url}",
            data=BODY,
            content_type="application/json",
            headers=headers,
        )
        again = Client().post(
            path + "?callback_url=http://127.0.0.1:9/other",
            data=BODY,
            content_type="application/json",
            headers=headers,
        )
    assert first.json()["run_id"] == again.json()["run_id"]
    assert list(RunCallback.objects.values_list("url", flat=True)) == [receiver.url]


@pytest.mark.parametrize("how", ["query", "header"])
def test_a_replay_cannot_attach_a_callback_to_a_run_that_had_none(
    hook, receiver: CallbackReceiver, how: str
) -> None:
    # callback_url and Callback-URL are not signed: a
    # captured delivery replayed inside the 5 minutes
    # must not be a way to have the run's result sent elsewhere.
    headers = signed(hook.secret, BODY)
    path = hook_path(hook.trigger.url())
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        first = Client().post(path, data=BODY, content_type="application/json", headers=headers)
        query, extra = (
            (f"?callback_url={receiver.url}", {})
            if how == "query"
            else ("", {"Callback-URL": receiver.url})
        )
        again = Client().post(
            path + query, data=BODY, content_type="application/json", headers=headers | extra
        )
    assert again.status_code == 202
    assert first.json()["run_id"] == again.json()["run_id"]
    assert not RunCallback.objects.exists()
    engine.run_execute(first.json()["run_id"])
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        assert callbacks.callbacks_sweep() == 0
    assert receiver.received == []


# End to end: an external program, a real ASGI server, a real worker ----------------------------


@pytest.fixture
def callback_stack(worker_env: dict[str, str], transactional_db: None) -> Iterator[AsgiServer]:
    """A worker and a web server on their own queue,
    both allowed to reach 127.0.0.1 (tests only)."""
    queue = f"stepwise-callbacks-{uuid.uuid4().hex[:8]}"
    env = {
        **worker_env,
        "CELERY_QUEUE": queue,
        "OUTBOUND_ALLOW_PRIVATE_FOR_TESTS": "true",
        "CALLBACK_RETRY_BASE_SECONDS": "0.5",
    }
    worker = WorkerProcess(env, queue)
    server = worker_and_server(worker, env)
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        yield server
    finally:
        celery_app.conf.task_default_queue = previous
        stop_together(server, worker)


@pytest.mark.integration
def test_an_external_program_gets_the_result_by_signed_callback(
    callback_stack: AsgiServer, personas: Personas, receiver: CallbackReceiver
) -> None:
    receiver.codes = [503]  # the first attempt fails: the retry delivers it
    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    url = callback_stack.url + hook_path(made.trigger.url())
    response = httpx.post(
        url,
        params={"callback_url": receiver.url},
        content=BODY,
        headers={"content-type": "application/json", **signed(made.secret, BODY)},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    run = wait_for_run(response.json()["run_id"])
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert receiver.arrived.wait(30), f"no callback arrived: {receiver.received}"
    headers, body = receiver.received[-1]
    result = Webhook(made.secret).verify(body, headers)
    assert result["id"] == run.id and result["output"] == "Hello Ada x1 from crm"
    assert len(receiver.received) == 2
    # The worker records the delivery once our answer reaches it.
    deadline = time.monotonic() + 10
    while (
        RunCallback.objects.get(run=run).status != RunCallback.Status.DELIVERED
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert RunCallback.objects.get(run=run).status == RunCallback.Status.DELIVERED


# Rotating SECRET_KEY ---------------------------------------------------------------------------


@pytest.fixture
def rotated_stack(
    worker_env: dict[str, str], transactional_db: None, tmp_path
) -> Iterator[AsgiServer]:  # type: ignore[no-untyped-def]
    """A worker and a web server started after SECRET_KEY was rotated: a new key, the old one
    (this test process's, under which the triggers' secrets were encrypted) moved to
    SECRET_KEY_FALLBACKS, read from a file as a Docker secret would be."""
    from django.conf import settings

    fallbacks = tmp_path / "fallbacks"
    fallbacks.write_text(
        f"an-even-older-key-that-no-longer-matters-0123456789,{settings.SECRET_KEY}\n"
    )
    queue = f"stepwise-rotated-{uuid.uuid4().hex[:8]}"
    env = {
        **worker_env,
        "CELERY_QUEUE": queue,
        "OUTBOUND_ALLOW_PRIVATE_FOR_TESTS": "true",
        "SECRET_KEY": "the-new-key-after-rotation-" + uuid.uuid4().hex,
        "SECRET_KEY_FALLBACKS_FILE": str(fallbacks),
    }
    worker = WorkerProcess(env, queue)
    server = worker_and_server(worker, env)
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        yield server
    finally:
        celery_app.conf.task_default_queue = previous
        stop_together(server, worker)


@pytest.mark.integration
def test_after_rotating_secret_key_webhooks_still_verify_and_callbacks_still_sign(
    rotated_stack: AsgiServer, personas: Personas, receiver: CallbackReceiver
) -> None:
    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    url = rotated_stack.url + hook_path(made.trigger.url())
    response = httpx.post(
        url,
        params={"callback_url": receiver.url},
        content=BODY,
        headers={"content-type": "application/json", **signed(made.secret, BODY)},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    run = wait_for_run(response.json()["run_id"])
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert receiver.arrived.wait(30), f"no callback arrived: {receiver.received}"
    headers, body = receiver.received[-1]
    assert Webhook(made.secret).verify(body, headers)["id"] == run.id
