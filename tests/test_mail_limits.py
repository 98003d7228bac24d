"""Mail people can make the server send is rate-limited,
and a missing mail configuration is said."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.checks import run_checks
from django.test import Client

from accounts.models import User
from tests.conftest import Personas
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def invite(client: Client, personas: Personas, email: str, **extra):  # type: ignore[no-untyped-def]
    return client.post(
        f"/w/{personas.workspace.slug}/invitations/", {"email": email, "role": "viewer"}, **extra
    )


def test_invitations_are_limited_per_member(client: Client, personas: Personas, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_LIMIT_PER_USER = 2
    client.force_login(personas.alice)
    assert (
        invite(client, personas, "one@example.com").status_code == 303
    )  # POST-redirect-GET: the link is shown once
    assert (
        invite(client, personas, "two@example.com").status_code == 303
    )  # POST-redirect-GET: the link is shown once
    refused = invite(client, personas, "three@example.com")
    assert refused.status_code == 429
    assert "Too many emails were requested by you in the last hour" in refused.content.decode()
    assert int(refused["Retry-After"]) > 3000
    assert not personas.workspace.invitations.filter(email="three@example.com").exists()


def test_a_limited_htmx_invitation_answers_with_the_card_and_an_error_toast(
    client: Client, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_LIMIT_PER_USER = 1
    client.force_login(personas.alice)
    invite(client, personas, "one@example.com", HTTP_HX_REQUEST="true")
    refused = invite(client, personas, "two@example.com", HTTP_HX_REQUEST="true")
    assert refused.status_code == 422
    assert "Too many emails were requested by you" in refused.content.decode()
    assert "Too many emails were requested by you" in refused["HX-Trigger"]


def test_invitations_are_limited_per_client_address(
    client: Client, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    from accounts.models import Membership, Role

    settings.MAIL_LIMIT_PER_IP = 2
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    alice, bob = Client(), Client()
    alice.force_login(personas.alice)
    bob.force_login(personas.bob)
    assert (
        invite(alice, personas, "one@example.com").status_code == 303
    )  # POST-redirect-GET: the link is shown once
    assert (
        invite(bob, personas, "two@example.com").status_code == 303
    )  # POST-redirect-GET: the link is shown once
    assert invite(bob, personas, "three@example.com").status_code == 429
    assert (
        invite(bob, personas, "three@example.com", REMOTE_ADDR="198.51.100.3").status_code == 303
    )  # POST-redirect-GET: the link is shown once


def test_password_reset_mails_are_limited_per_recipient_with_the_same_answer_for_unknown_addresses(
    client: Client, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_LIMIT_PER_RECIPIENT = 2
    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    for email in ("lee@example.com", "nobody@example.com"):
        for n in range(2):
            response = client.post(
                "/accounts/password_reset/", {"email": email}, REMOTE_ADDR=f"198.51.100.{n}"
            )
            assert response.status_code == 302
        refused = client.post(
            "/accounts/password_reset/", {"email": email}, REMOTE_ADDR="198.51.100.99"
        )
        assert refused.status_code == 429
        assert (
            "Too many emails were requested to this address in the last hour"
            in refused.content.decode()
        )
    assert len(mail.outbox) == 2
    assert {tuple(m.to) for m in mail.outbox} == {("lee@example.com",)}


def test_password_reset_requests_are_limited_per_client_address(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_LIMIT_PER_IP = 3
    for n in range(3):
        assert (
            client.post("/accounts/password_reset/", {"email": f"u{n}@example.com"}).status_code
            == 302
        )
    refused = client.post("/accounts/password_reset/", {"email": "u9@example.com"})
    assert refused.status_code == 429
    assert "Too many emails were requested from your network" in refused.content.decode()


def test_the_pages_that_send_mail_say_when_mail_is_not_configured(
    client: Client, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    notice = "Mail is not configured on this server (EMAIL_URL)"
    settings.MAIL_CONFIGURED = False
    client.force_login(personas.alice)
    settings_page = client.get(f"/w/{personas.workspace.slug}/settings/").content.decode()
    assert notice in settings_page
    response = invite(client, personas, "dana@example.com", HTTP_HX_REQUEST="true")
    assert notice in response.content.decode() and "share the link" in response["HX-Trigger"]
    client.logout()
    for path in (
        "/accounts/signup/",
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
    ):
        assert notice in client.get(path).content.decode(), path
    settings.MAIL_CONFIGURED = True
    client.force_login(personas.alice)
    assert notice not in client.get(f"/w/{personas.workspace.slug}/settings/").content.decode()
    client.logout()
    for path in (
        "/accounts/signup/",
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
    ):
        assert notice not in client.get(path).content.decode(), path


def test_a_missing_mail_configuration_is_a_warning_at_start(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_CONFIGURED = False
    [warning] = [m for m in run_checks() if m.id == "accounts.W001"]
    assert "Mail is not configured on this server (EMAIL_URL)" in warning.msg
    settings.MAIL_CONFIGURED = True
    assert not [m for m in run_checks() if m.id == "accounts.W001"]
