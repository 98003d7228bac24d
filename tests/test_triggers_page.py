"""The triggers page (webhooks, deliveries, schedules)
and the API tokens page: who may see and do what."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Membership, Role, User
from tests.conftest import Personas
from tests.factories import PASSWORD, client_for, hook_path, published_workflow, signed
from workflows.integrations import api_auth, triggers
from workflows.models import ApiToken, Schedule, Trigger, Workflow


@pytest.fixture
def workflow(personas: Personas) -> Workflow:
    return published_workflow(personas.workspace)


@pytest.fixture
def admin(personas: Personas) -> User:
    user = User.objects.create_user(email="ada@example.com", password=PASSWORD, name="Ada")
    Membership.objects.create(user=user, workspace=personas.workspace, role=Role.ADMIN)
    return user


def page(personas: Personas, workflow: Workflow) -> str:
    return reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id])


def url(name: str, personas: Personas, *args: object) -> str:
    return reverse(name, args=[personas.workspace.slug, *args])


def test_an_owner_adds_a_webhook_and_sees_its_secret_once(
    personas: Personas, workflow: Workflow
) -> None:
    alice = client_for(personas.alice)
    response = alice.post(
        url("trigger_create", personas, workflow.id),
        {"name": "CRM", "rate_limit_per_minute": 60},
        follow=True,
    )
    assert response.status_code == 200
    trigger = Trigger.objects.get()
    secret = triggers.secret_decrypt(trigger.secret_encrypted)
    html = response.content.decode()
    assert secret in html and trigger.public_id in html
    assert "shown only this once" in html
    again = alice.get(page(personas, workflow)).content.decode()
    assert secret not in again
    assert trigger.public_id in again  # admins and owners see the URL
    assert "standardwebhooks" in again and "openssl" in again  # the signing snippets
    assert AuditEntry.objects.filter(action="trigger.create", target_id=str(trigger.id)).exists()


def test_rotating_shows_the_new_secret_and_keeps_the_old_one_for_a_day(
    personas: Personas, workflow: Workflow
) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    response = client_for(personas.alice).post(
        url("trigger_rotate", personas, workflow.id, made.trigger.id), follow=True
    )
    assert response.status_code == 200
    trigger = Trigger.objects.get()
    new = triggers.secret_decrypt(trigger.secret_encrypted)
    assert new != made.secret and new in response.content.decode()
    assert "previous secret keeps working" in response.content.decode()
    assert AuditEntry.objects.filter(action="trigger.rotate").exists()


def test_deleting_a_webhook_is_audited(personas: Personas, workflow: Workflow) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    response = client_for(personas.alice).post(
        url("trigger_delete", personas, workflow.id, made.trigger.id)
    )
    assert response.status_code == 302
    assert not Trigger.objects.exists()
    assert AuditEntry.objects.filter(action="trigger.delete").exists()


def test_only_an_owner_may_accept_unsigned_requests(
    personas: Personas, workflow: Workflow, admin: User
) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    target = url("trigger_signing", personas, workflow.id, made.trigger.id)
    assert client_for(admin).post(target).status_code == 403
    assert Trigger.objects.get().signing_required
    response = client_for(personas.alice).post(target, follow=True)
    assert not Trigger.objects.get().signing_required
    assert "accepts unsigned requests" in response.content.decode()
    assert AuditEntry.objects.filter(action="trigger.signing_change").count() == 1
    client_for(personas.alice).post(target, {"signing_required": "on"})
    assert Trigger.objects.get().signing_required


def test_an_admin_manages_webhooks_but_an_editor_and_a_viewer_cannot(
    personas: Personas, workflow: Workflow, admin: User
) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    response = client_for(admin).post(
        url("trigger_create", personas, workflow.id), {"rate_limit_per_minute": 5}, follow=True
    )
    assert response.status_code == 200
    for user in (personas.bob, personas.vera):
        client = client_for(user)
        response = client.post(
            url("trigger_create", personas, workflow.id), {"rate_limit_per_minute": 5}
        )
        assert response.status_code == 403
        assert (
            client.post(url("trigger_rotate", personas, workflow.id, made.trigger.id)).status_code
            == 403
        )
        assert (
            client.post(url("trigger_delete", personas, workflow.id, made.trigger.id)).status_code
            == 403
        )
        assert (
            client.post(
                url("schedule_create", personas, workflow.id), {"cron": "* * * * *"}
            ).status_code
            == 403
        )
    assert Trigger.objects.count() == 2 and not Schedule.objects.exists()


def test_editors_and_viewers_see_the_page_without_urls_or_controls(
    personas: Personas, workflow: Workflow
) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    for user in (personas.bob, personas.vera):
        response = client_for(user).get(page(personas, workflow))
        assert response.status_code == 200
        html = response.content.decode()
        assert made.trigger.public_id not in html
        assert "Only admins and owners see webhook URLs" in html
        assert "Rotate secret" not in html and "Add a webhook" not in html


def test_outsiders_get_404_everywhere(personas: Personas, workflow: Workflow) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    token = api_auth.token_create(workspace=personas.workspace, name="t", user=personas.alice)
    charlie = client_for(personas.charlie)
    assert charlie.get(page(personas, workflow)).status_code == 404
    assert charlie.get(url("api_tokens", personas)).status_code == 404
    for name, args in [
        ("trigger_create", [workflow.id]),
        ("trigger_rotate", [workflow.id, made.trigger.id]),
        ("trigger_delete", [workflow.id, made.trigger.id]),
        ("trigger_edit", [workflow.id, made.trigger.id]),
        ("trigger_signing", [workflow.id, made.trigger.id]),
        ("schedule_create", [workflow.id]),
        ("api_token_create", []),
        ("api_token_revoke", [token.token.id]),
    ]:
        assert charlie.post(url(name, personas, *args)).status_code == 404, name
    assert Trigger.objects.get().rotated_at is None and ApiToken.objects.get().revoked_at is None


def test_a_workflow_of_another_workspace_is_404(personas: Personas) -> None:
    other = published_workflow(personas.other_workspace)
    response = client_for(personas.alice).get(
        reverse("workflow_triggers", args=[personas.workspace.slug, other.id])
    )
    assert response.status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(personas: Personas, workflow: Workflow) -> None:
    response = Client().get(page(personas, workflow))
    assert response.status_code == 302 and "login" in response["Location"]


def test_a_private_callback_url_is_refused_in_the_form(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.alice).post(
        url("trigger_create", personas, workflow.id),
        {"callback_url": "http://192.168.1.10/hook", "rate_limit_per_minute": 60},
    )
    assert response.status_code == 422
    assert "private" in response.content.decode()
    assert not Trigger.objects.exists()


def test_webhook_settings_can_be_changed(personas: Personas, workflow: Workflow) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    prefix = f"t{made.trigger.id}"
    client_for(personas.alice).post(
        url("trigger_edit", personas, workflow.id, made.trigger.id),
        {
            f"{prefix}-name": "Billing",
            f"{prefix}-rate_limit_per_minute": 10,
            f"{prefix}-callback_url": "https://hooks.example.com/done",
        },
    )
    trigger = Trigger.objects.get()
    assert (trigger.name, trigger.rate_limit_per_minute, trigger.callback_url) == (
        "Billing",
        10,
        "https://hooks.example.com/done",
    )
    assert AuditEntry.objects.filter(action="trigger.edit").exists()


def test_recent_deliveries_are_listed_with_their_result(
    personas: Personas, workflow: Workflow
) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    body = json.dumps({"who": "Ada"})
    path = hook_path(made.trigger.url())
    Client().post(
        path, data=body, content_type="application/json", headers=signed(made.secret, body)
    )
    Client().post(path, data=body, content_type="application/json", headers={})
    html = client_for(personas.vera).get(page(personas, workflow)).content.decode()
    assert "Started a run." in html
    assert "Signature refused" in html


def test_schedules_are_added_with_their_next_run_times_then_edited_and_deleted(
    personas: Personas, workflow: Workflow
) -> None:
    alice = client_for(personas.alice)
    response = alice.post(
        url("schedule_create", personas, workflow.id),
        {
            "cron": "0 9 * * 1-5",
            "time_zone": "Europe/Paris",
            "inputs": '{"who": "Ada"}',
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.time_zone == "Europe/Paris" and schedule.inputs == {"who": "Ada"}
    html = alice.get(page(personas, workflow)).content.decode()
    assert "0 9 * * 1-5" in html and "Europe/Paris" in html
    assert html.count(f"{schedule.next_run_at:%b} ") >= 1

    prefix = f"s{schedule.id}"
    alice.post(
        url("schedule_edit", personas, workflow.id, schedule.id),
        {
            f"{prefix}-cron": "30 8 * * *",
            f"{prefix}-time_zone": "UTC",
            f"{prefix}-inputs": '{"who": "Bo"}',
        },
    )
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.enabled, schedule.inputs) == (
        "30 8 * * *",
        False,
        {"who": "Bo"},
    )

    alice.post(url("schedule_delete", personas, workflow.id, schedule.id))
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "every day", "time_zone": "UTC", "inputs": "{}"}, "five fields"),
        ({"cron": "* * * * *", "time_zone": "Nowhere/Land", "inputs": "{}"}, "Unknown time zone"),
        ({"cron": "* * * * *", "time_zone": "UTC", "inputs": "{oops"}, "not valid JSON"),
        ({"cron": "* * * * *", "time_zone": "UTC", "inputs": "[1]"}, "JSON object"),
        ({"cron": "* * * * *", "time_zone": "UTC", "inputs": "{}"}, "who"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_clear_message(
    personas: Personas, workflow: Workflow, data: dict, message: str
) -> None:
    response = client_for(personas.alice).post(url("schedule_create", personas, workflow.id), data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


# API tokens --------------------------------------------------------------------------


def test_an_admin_creates_a_token_shown_once_and_revokes_it(
    personas: Personas, admin: User
) -> None:
    client = client_for(admin)
    response = client.post(
        url("api_token_create", personas), {"name": "Deploy script"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    html = response.content.decode()
    value = next(
        word
        for word in html.replace("<", " ").replace(">", " ").split()
        if word.startswith("sw_") and len(word) > 30
    )
    assert api_auth.token_hash(value) == token.token_hash
    assert value not in client.get(url("api_tokens", personas)).content.decode()
    assert token.prefix in client.get(url("api_tokens", personas)).content.decode()

    client.post(url("api_token_revoke", personas, token.id))
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert list(
        AuditEntry.objects.filter(action__startswith="token.")
        .values_list("action", flat=True)
        .order_by("id")
    ) == ["token.create", "token.revoke"]


def test_editors_cannot_manage_tokens(personas: Personas) -> None:
    bob = client_for(personas.bob)
    assert bob.get(url("api_tokens", personas)).status_code == 403
    assert bob.post(url("api_token_create", personas), {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_a_token_without_a_name_is_refused(personas: Personas) -> None:
    response = client_for(personas.alice).post(url("api_token_create", personas), {"name": ""})
    assert response.status_code == 422
    assert not ApiToken.objects.exists()
