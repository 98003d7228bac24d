"""When a run fails: the workspace setting (owners and admins), the shown-once signing secret,
and beat's notices: one email to the owners and admins and one signed POST per workspace per
tick, a digest when several failed, at most once per run (two ticks at once too), never about
failures from before the setting was on."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from accounts.models import AuditEntry, Membership, Role, User
from tests.conftest import Personas
from tests.factories import client_for, published_workflow, run_row, run_started, signed_up
from tests.servers import CallbackReceiver
from workflows.integrations import failure_alerts
from workflows.models import FailureAlert, FailureNotice, Run, Workflow
from workflows.runtime import engine

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def receiver(settings) -> Iterator[CallbackReceiver]:  # type: ignore[no-untyped-def]
    """The POST target: a local server, reachable as an operator-allowed internal host."""
    r = CallbackReceiver()
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{r.httpd.server_address[1]}"]
    yield r
    r.stop()


@pytest.fixture
def adam(personas: Personas) -> User:
    """An admin of alice's workspace."""
    user, _ = signed_up("adam@example.com", "Adam")
    Membership.objects.create(user=user, workspace=personas.workspace, role=Role.ADMIN)
    return user


def page(personas: Personas, action: str = "") -> str:
    return f"/w/{personas.workspace.slug}/settings/failures/{action}"


def turn_on(client: Client, personas: Personas, url: str, email: bool = True) -> str:
    """Save the setting through the page; the secret the next page shows, once."""
    fields = {"url": url, **({"email": "on"} if email else {})}
    response = client.post(page(personas, "save/"), fields)
    assert response.status_code == 302, response.content
    shown = client.get(page(personas)).content.decode()
    found = re.search(r'id="new-secret-value">(whsec_[^<]+)<', shown)
    assert found, "the new secret is shown"
    return found.group(1)


def failed_runs(workflow: Workflow, count: int, **fields: object) -> list[Run]:
    return [
        run_row(
            workflow, **{"status": Run.Status.FAILED, "error": f"Step “s1” failed: {i}", **fields}
        )
        for i in range(count)
    ]


def posted(receiver: CallbackReceiver, secret: str) -> list[dict]:
    return [Webhook(secret).verify(body, headers) for headers, body in receiver.received]


def test_a_run_failed_by_the_engine_is_emailed_to_owners_and_admins_and_posted_signed(
    engine_in_process: None, personas: Personas, adam: User, receiver: CallbackReceiver
) -> None:
    secret = turn_on(client_for(personas.alice), personas, receiver.url)
    run = run_started(
        personas.workspace,
        {
            "name": "Triage",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [{"key": "s1", "type": "llm", "prompt": "[[fake:context_length_exceeded]]"}],
        },
        {"topic": "otters"},
    )
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED

    assert failure_alerts.failures_notify() == 1

    assert sorted(m.to[0] for m in mail.outbox) == ["adam@example.com", "alice@example.com"]
    assert all(len(m.to) == 1 for m in mail.outbox)
    assert mail.outbox[0].subject == f"Run failed: Triage (run #{run.id})"
    assert f"/w/{personas.workspace.slug}/runs/{run.id}/" in mail.outbox[0].body
    assert run.error in mail.outbox[0].body
    (payload,) = posted(receiver, secret)  # the reference library verifies the signature
    assert payload["type"] == "runs.failed"
    assert payload["workspace"] == personas.workspace.slug
    (listed,) = payload["runs"]
    assert listed["id"] == run.id
    assert listed["workflow"]["name"] == "Triage"
    assert listed["error"] == run.error
    assert listed["url"].endswith(f"/w/{personas.workspace.slug}/runs/{run.id}/")
    assert listed["finished_at"]
    headers = receiver.received[0][0]
    assert headers["webhook-id"].startswith("failures_")
    assert FailureNotice.objects.get().status == FailureNotice.Status.DELIVERED


def test_ten_failures_in_one_tick_make_one_digest_and_the_next_tick_sends_nothing(
    personas: Personas, adam: User, receiver: CallbackReceiver, settings
) -> None:
    settings.FAILURE_ALERT_LISTED = 4
    secret = turn_on(client_for(personas.alice), personas, receiver.url)
    workflow = published_workflow(personas.workspace)
    runs = failed_runs(workflow, 10)
    run_row(workflow, status=Run.Status.CANCELED)  # not a failure
    run_row(workflow, status=Run.Status.SUCCEEDED)

    assert failure_alerts.failures_notify() == 10
    assert failure_alerts.failures_notify() == 0

    assert len(mail.outbox) == 2  # one digest for each of alice and adam
    digest = mail.outbox[0]
    assert digest.subject == f"10 runs failed in {personas.workspace.name}"
    assert "…and 6 more" in digest.body
    assert digest.body.count("/runs/") == 4
    (payload,) = posted(receiver, secret)
    assert sorted(r["id"] for r in payload["runs"]) == sorted(r.id for r in runs)
    assert FailureNotice.objects.count() == 1


def test_two_ticks_at_once_notify_each_run_once(
    transactional_db: None, personas: Personas, receiver: CallbackReceiver
) -> None:
    secret = turn_on(client_for(personas.alice), personas, receiver.url, email=False)
    workflow = published_workflow(personas.workspace)
    runs = failed_runs(workflow, 30)
    start = threading.Barrier(2)
    counts: list[int] = []

    def tick() -> None:
        start.wait()
        try:
            counts.append(failure_alerts.failures_notify())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(counts) == 30
    ids = [r["id"] for payload in posted(receiver, secret) for r in payload["runs"]]
    assert sorted(ids) == sorted(r.id for r in runs)  # each run in exactly one POST


def test_turning_it_on_does_not_notify_about_earlier_failures(
    personas: Personas, receiver: CallbackReceiver
) -> None:
    workflow = published_workflow(personas.workspace)
    failed_runs(workflow, 3, finished_at=timezone.now() - timedelta(minutes=5))
    assert failure_alerts.failures_notify() == 0  # off: nothing taken

    secret = turn_on(client_for(personas.alice), personas, receiver.url)
    assert failure_alerts.failures_notify() == 0
    assert mail.outbox == [] and receiver.received == []

    (new,) = failed_runs(workflow, 1)
    assert failure_alerts.failures_notify() == 1
    (payload,) = posted(receiver, secret)
    assert [r["id"] for r in payload["runs"]] == [new.id]


def test_failures_older_than_an_hour_are_never_notified(personas: Personas, settings) -> None:
    FailureAlert.objects.create(
        workspace=personas.workspace, email=True, since=timezone.now() - timedelta(days=2)
    )
    workflow = published_workflow(personas.workspace)
    failed_runs(workflow, 1, finished_at=timezone.now() - timedelta(hours=1, minutes=1))
    assert failure_alerts.failures_notify() == 0
    assert mail.outbox == []


def test_runs_failed_by_the_reaper_are_notified(personas: Personas) -> None:
    failure_alerts.failure_alert_set(
        workspace=personas.workspace, email=True, url="", user=personas.alice
    )
    workflow = published_workflow(personas.workspace)
    past = timezone.now() - timedelta(seconds=1)
    overdue = run_row(
        workflow,
        status=Run.Status.RUNNING,
        finished_at=None,
        lease_owner="gone",
        lease_expires_at=past,
        deadline_at=past,
        enqueued_at=past,
    )
    engine.reap()
    assert Run.objects.get(id=overdue.id).status == Run.Status.FAILED

    assert failure_alerts.failures_notify() == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]


def test_a_failed_post_is_retried_with_the_same_body_and_never_joins_a_later_notice(
    personas: Personas, settings
) -> None:
    settings.CALLBACK_RETRY_BASE_SECONDS = 0
    receiver = CallbackReceiver(codes=[503])
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{receiver.httpd.server_address[1]}"]
    try:
        secret = turn_on(client_for(personas.alice), personas, receiver.url, email=False)
        workflow = published_workflow(personas.workspace)
        (first,) = failed_runs(workflow, 1)
        failure_alerts.failures_notify()  # answered 503
        (second,) = failed_runs(workflow, 1)
        failure_alerts.failures_notify()  # the retry, and a new notice for the new run
    finally:
        receiver.stop()
    bodies = [body for _, body in receiver.received]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] or bodies[0] == bodies[2]  # the retry sends the same body
    ids = sorted(tuple(r["id"] for r in payload["runs"]) for payload in posted(receiver, secret))
    assert ids == sorted([(first.id,), (first.id,), (second.id,)])
    first_id = receiver.received[0][0]["webhook-id"]
    assert first_id in {headers["webhook-id"] for headers, _ in receiver.received[1:]}
    assert set(FailureNotice.objects.values_list("status", flat=True)) == {"delivered"}


def test_only_owners_and_admins_change_it_and_another_workspace_is_not_found(
    personas: Personas, adam: User
) -> None:
    for user in (personas.bob, personas.vera):
        client = client_for(user)
        assert client.get(page(personas)).status_code == 403
        assert client.post(page(personas, "save/"), {"email": "on"}).status_code == 403
        assert client.post(page(personas, "rotate/")).status_code == 403
    outsider = client_for(personas.charlie)
    assert outsider.get(page(personas)).status_code == 404
    assert outsider.post(page(personas, "save/"), {"email": "on"}).status_code == 404
    assert (
        client_for(personas.alice)
        .get(f"/w/{personas.other_workspace.slug}/settings/failures/")
        .status_code
        == 404
    )
    assert not FailureAlert.objects.exists()

    response = client_for(adam).post(page(personas, "save/"), {"email": "on"})
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="failure_alert.change")
    assert entry.actor == adam
    assert entry.after == {"email": True, "url": ""}


def test_a_url_inside_our_network_is_refused(personas: Personas) -> None:
    response = client_for(personas.alice).post(
        page(personas, "save/"), {"url": "http://169.254.169.254/latest/meta-data/"}
    )
    assert response.status_code == 422
    assert not FailureAlert.objects.filter(url__contains="169.254").exists()


def test_hostile_names_and_errors_stay_text_in_the_email_and_the_page(
    personas: Personas, adam: User
) -> None:
    personas.workspace.name = HOSTILE
    personas.workspace.save(update_fields=["name"])
    client = client_for(personas.alice)
    assert client.post(page(personas, "save/"), {"email": "on"}).status_code == 302
    workflow = published_workflow(personas.workspace)
    Workflow.objects.filter(id=workflow.id).update(name=HOSTILE)
    for count in (1, 2):
        mail.outbox.clear()
        failed_runs(workflow, count, error=HOSTILE)
        failure_alerts.failures_notify()
        html, kind = mail.outbox[0].alternatives[0]
        assert kind == "text/html"
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
    for address in (page(personas), f"/w/{personas.workspace.slug}/settings/"):
        shown = client.get(address).content.decode()
        assert "<img src=x" not in shown
        assert "&lt;img src=x onerror=alert(1)&gt;" in shown


def test_the_secret_is_shown_once_rotatable_and_never_logged_stored_or_shown_again(
    personas: Personas, receiver: CallbackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(personas.alice)
    secret = turn_on(client, personas, receiver.url)
    assert secret not in client.get(page(personas)).content.decode()  # once only
    workflow = published_workflow(personas.workspace)
    failed_runs(workflow, 1)
    failure_alerts.failures_notify()
    posted(receiver, secret)

    assert client.post(page(personas, "rotate/")).status_code == 302
    rotated = re.search(
        r'id="new-secret-value">(whsec_[^<]+)<', client.get(page(personas)).content.decode()
    )
    assert rotated and rotated.group(1) != secret
    failed_runs(workflow, 1)
    failure_alerts.failures_notify()
    assert Webhook(rotated.group(1)).verify(receiver.received[1][1], receiver.received[1][0])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(receiver.received[1][1], receiver.received[1][0])

    for value in (secret, rotated.group(1)):
        assert value not in caplog.text
        assert value not in client.get(page(personas)).content.decode()
        assert value not in client.get(f"/w/{personas.workspace.slug}/settings/").content.decode()
        stored = json.dumps(
            list(AuditEntry.objects.values("before", "after", "target_label"))
            + list(FailureAlert.objects.values("secret_encrypted", "url"))
            + list(FailureNotice.objects.values("body", "last_error")),
            default=str,
        )
        assert value not in stored
        assert value.removeprefix("whsec_") not in stored
    assert AuditEntry.objects.filter(action="failure_alert.rotate").count() == 1


def test_emails_stop_at_the_hourly_limit_while_the_posts_go_on(
    personas: Personas, receiver: CallbackReceiver, settings
) -> None:
    settings.FAILURE_EMAILS_PER_HOUR = 1
    secret = turn_on(client_for(personas.alice), personas, receiver.url)
    workflow = published_workflow(personas.workspace)
    for _ in range(3):
        failed_runs(workflow, 1)
        assert failure_alerts.failures_notify() == 1

    assert len(mail.outbox) == 1
    assert len(posted(receiver, secret)) == 3


def test_finished_notices_are_pruned_after_a_week(personas: Personas) -> None:
    old = timezone.now() - timedelta(days=8)
    made = {
        status: FailureNotice.objects.create(
            workspace=personas.workspace, body="{}", run_count=1, status=status, next_attempt_at=old
        )
        for status in FailureNotice.Status
    }
    failure_alerts.failures_notify()
    left = set(FailureNotice.objects.values_list("id", flat=True))
    assert left == {made[FailureNotice.Status.PENDING].id}  # kept until delivered or given up


def test_a_new_url_gets_a_new_secret_and_pending_notices_never_go_to_the_old_one(
    personas: Personas, receiver: CallbackReceiver, settings
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(personas.alice)
    first = turn_on(client, personas, receiver.url, email=False)
    receiver.codes = [503]  # the old receiver is down: its notice waits for a retry
    workflow = published_workflow(personas.workspace)
    failed_runs(workflow, 1, finished_at=timezone.now())
    failure_alerts.failures_notify()
    notice = FailureNotice.objects.get()
    assert notice.status == FailureNotice.Status.PENDING and len(receiver.received) == 1

    other = CallbackReceiver()
    try:
        port = other.httpd.server_address[1]
        settings.OUTBOUND_ALLOWED_HOSTS = [
            f"127.0.0.1:{receiver.httpd.server_address[1]}",
            f"127.0.0.1:{port}",
        ]
        second = turn_on(client, personas, other.url, email=False)
        assert second != first  # the old receiver's secret signs nothing for the new one
        FailureNotice.objects.filter(id=notice.id).update(next_attempt_at=timezone.now())
        failure_alerts.notices_deliver_due()
        notice.refresh_from_db()
        assert notice.status == FailureNotice.Status.FAILED
        assert len(receiver.received) == 1 and other.received == []
    finally:
        other.stop()
