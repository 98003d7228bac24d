"""Invitations: by email, a link with a token, for new and existing accounts."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import Invitation, Membership, Role, User
from accounts.services import MembershipRefused
from tests.conftest import Personas
from tests.factories import PASSWORD, membership

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://[^\s]+/invitations/([A-Za-z0-9_-]+)/")


def owner(personas: Personas) -> Membership:
    return Membership.objects.get(workspace=personas.workspace, user=personas.alice)


def invite(
    personas: Personas, email: str = "dana@example.com", role: Role = Role.EDITOR
) -> tuple[Invitation, str]:
    return services.invitation_create(
        workspace=personas.workspace,
        email=email,
        role=role,
        actor=membership(personas.workspace, personas.alice),
    )


def test_an_admin_invites_by_email_and_the_link_is_in_the_email(
    client: Client, personas: Personas, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(personas.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/w/{personas.workspace.slug}/invitations/",
            {"email": "Dana@Example.com", "role": "editor"},
        )
    assert response.status_code == 303  # POST-redirect-GET: a reload does not invite again
    response = client.get(response["Location"])
    assert response.status_code == 200
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["dana@example.com"]
    assert email.subject == f"Alice invited you to {personas.workspace.name} on Stepwise"
    token = LINK.search(email.body).group(1)  # type: ignore[union-attr]
    # The inviter sees the same link once, to share it another way.
    assert f"/invitations/{token}/" in response.content.decode()
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role) == ("dana@example.com", Role.EDITOR)
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.values().get())
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)


def test_the_invite_form_over_htmx_answers_with_the_invitations_card(
    client: Client, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_CONFIGURED = (
        True  # without EMAIL_URL the toast says to share the link (tests/test_mail_limits.py)
    )
    client.force_login(personas.alice)
    response = client.post(
        f"/w/{personas.workspace.slug}/invitations/",
        {"email": "dana@example.com", "role": "viewer"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(
        '<section class="card" aria-labelledby="invitations-title" id="invitations">'
    )
    assert "Invitation sent to dana@example.com" in response["HX-Trigger"]
    assert "dana@example.com" in body


def test_pending_invitations_are_listed_and_revocable(client: Client, personas: Personas) -> None:
    invitation, token = invite(personas)
    client.force_login(personas.alice)
    page = client.get(f"/w/{personas.workspace.slug}/settings/").content.decode()
    assert "Pending invitations" in page and "dana@example.com" in page
    assert token not in page  # shown once, at creation only
    response = client.post(
        f"/w/{personas.workspace.slug}/invitations/{invitation.id}/revoke/", follow=True
    )
    assert "The invitation to dana@example.com was withdrawn." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def test_a_new_user_signs_up_through_the_link_and_joins(client: Client, personas: Personas) -> None:
    _, token = invite(personas)
    page = client.get(f"/invitations/{token}/")
    assert page.status_code == 200
    assert "Create account and join" in page.content.decode()
    response = client.post(
        f"/invitations/{token}/", {"name": "Dana", "password": "a long enough passphrase 42"}
    )
    assert response["Location"] == f"/w/{personas.workspace.slug}/"
    dana = User.objects.get(email="dana@example.com")
    assert (
        Membership.objects.get(user=dana).workspace == personas.workspace
    )  # no personal workspace on top
    assert Membership.objects.get(user=dana).role == Role.EDITOR
    assert client.get(f"/w/{personas.workspace.slug}/").status_code == 200  # logged in


def test_a_weak_password_in_the_signup_through_the_link_is_a_form_error(
    client: Client, personas: Personas
) -> None:
    _, token = invite(personas)
    response = client.post(f"/invitations/{token}/", {"name": "Dana", "password": "123"})
    assert response.status_code == 422
    assert not User.objects.filter(email="dana@example.com").exists()


def test_an_existing_user_is_asked_to_log_in_then_accepts(
    client: Client, personas: Personas
) -> None:
    _, token = invite(personas, email="charlie@example.com", role=Role.VIEWER)
    page = client.get(f"/invitations/{token}/").content.decode()
    assert "Log in as charlie@example.com" in page
    assert f"/accounts/login/?next=%2Finvitations%2F{token}%2F" in page

    client.post("/accounts/login/", {"username": "charlie@example.com", "password": PASSWORD})
    assert "Accept and join" in client.get(f"/invitations/{token}/").content.decode()
    response = client.post(f"/invitations/{token}/")
    assert response["Location"] == f"/w/{personas.workspace.slug}/"
    assert (
        Membership.objects.get(user=personas.charlie, workspace=personas.workspace).role
        == Role.VIEWER
    )


def test_the_wrong_account_is_refused_clearly(client: Client, personas: Personas) -> None:
    _, token = invite(personas, email="dana@example.com")
    client.force_login(personas.charlie)
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 403
    body = response.content.decode()
    assert (
        "This invitation is for dana@example.com, but you are logged in as charlie@example.com."
        in body
    )
    assert "Log out to continue" in body
    assert client.post(f"/invitations/{token}/").status_code == 403
    assert not Membership.objects.filter(
        user=personas.charlie, workspace=personas.workspace
    ).exists()


def test_an_expired_invitation_is_refused(client: Client, personas: Personas) -> None:
    invitation, token = invite(personas)
    Invitation.objects.filter(id=invitation.id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 410
    assert "This invitation has expired" in response.content.decode()
    response = client.post(
        f"/invitations/{token}/", {"name": "Dana", "password": "a long enough passphrase 42"}
    )
    assert response.status_code == 410
    assert not User.objects.filter(email="dana@example.com").exists()


def test_a_revoked_invitation_is_refused(client: Client, personas: Personas) -> None:
    invitation, token = invite(personas)
    services.invitation_revoke(
        invitation=invitation, actor=membership(personas.workspace, personas.alice)
    )
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 410
    assert "This invitation was withdrawn" in response.content.decode()


def test_an_invitation_works_only_once(client: Client, personas: Personas) -> None:
    invitation, token = invite(personas, email="charlie@example.com")
    services.invitation_accept(invitation=invitation, user=personas.charlie)
    # Someone else with the link later: refused.
    client.force_login(User.objects.create_user(email="eve@example.com", password=PASSWORD))
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    with pytest.raises(services.InvitationUnusable) as refused:
        services.invitation_accept(invitation=invitation, user=personas.charlie)
    assert refused.value.reason == "used"


def test_the_invitee_opening_a_used_link_again_lands_in_the_workspace(
    client: Client, personas: Personas
) -> None:
    invitation, token = invite(personas, email="charlie@example.com")
    services.invitation_accept(invitation=invitation, user=personas.charlie)
    client.force_login(personas.charlie)
    assert client.get(f"/invitations/{token}/")["Location"] == f"/w/{personas.workspace.slug}/"


def test_an_unknown_token_is_404(client: Client, personas: Personas) -> None:
    response = client.get("/invitations/not-a-real-token/")
    assert response.status_code == 404
    assert "This invitation link is not valid" in response.content.decode()


def test_inviting_again_replaces_the_open_invitation(personas: Personas) -> None:
    first, first_token = invite(personas)
    second, second_token = invite(personas, role=Role.ADMIN)
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert services.invitation_by_token(first_token) == first
    assert services.invitation_by_token(second_token) == second
    assert Invitation.objects.filter(revoked_at__isnull=True).get() == second


def test_a_member_cannot_be_invited_again(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    response = client.post(
        f"/w/{personas.workspace.slug}/invitations/", {"email": "BOB@example.com", "role": "admin"}
    )
    assert response.status_code == 422
    assert "This person is already a member." in response.content.decode()
    assert not Invitation.objects.exists()


def test_only_owners_invite_owners(personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    admin = Membership.objects.get(user=personas.bob, workspace=personas.workspace)
    with pytest.raises(MembershipRefused, match="Only an owner can make someone an owner"):
        services.invitation_create(
            workspace=personas.workspace, email="x@example.com", role=Role.OWNER, actor=admin
        )


def test_editors_cannot_invite(client: Client, personas: Personas) -> None:
    client.force_login(personas.bob)
    response = client.post(
        f"/w/{personas.workspace.slug}/invitations/", {"email": "x@example.com", "role": "viewer"}
    )
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_an_invitation_of_another_workspace_cannot_be_revoked_here(
    client: Client, personas: Personas
) -> None:
    charlie = Membership.objects.get(user=personas.charlie, workspace=personas.other_workspace)
    foreign, _ = services.invitation_create(
        workspace=personas.other_workspace, email="x@example.com", role=Role.VIEWER, actor=charlie
    )
    client.force_login(personas.alice)
    assert (
        client.post(f"/w/{personas.workspace.slug}/invitations/{foreign.id}/revoke/").status_code
        == 404
    )
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


@pytest.mark.django_db(transaction=True)  # so the email is sent on commit, before the page renders
def test_a_failing_mail_server_does_not_lose_the_invitation(
    client: Client, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 1, "timeout": 1},
        }
    }
    client.force_login(personas.alice)
    response = client.post(
        f"/w/{personas.workspace.slug}/invitations/",
        {"email": "dana@example.com", "role": "editor"},
        follow=True,
    )
    assert response.status_code == 200
    assert "could not be sent" in response.content.decode()
    assert Invitation.objects.filter(email="dana@example.com").exists()
