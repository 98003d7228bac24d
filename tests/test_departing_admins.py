"""API tokens and pending invitations do not outlive their creator's power.

A token acts with admin rights and an invitation grants a role: both stop
working when the member who made them is removed, leaves, is demoted below
the role needed to make them, or their account is deleted. The services
revoke them (audit-logged), and the token check and the invitation check
verify the creator's standing again at use, for changes that bypass the
services (the admin site's membership inline, a shell).
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services
from accounts.models import AuditEntry, Invitation, Membership, Role, User
from tests.conftest import Personas
from tests.factories import PASSWORD, membership
from workflows.integrations import api_auth
from workflows.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def dan(personas: Personas) -> Membership:
    """An admin of alice's workspace, with a token and a pending invitation of his own."""
    user = User.objects.create_user(email="dan@example.com", password=PASSWORD, name="Dan")
    return Membership.objects.create(user=user, workspace=personas.workspace, role=Role.ADMIN)


def owner(personas: Personas) -> Membership:
    return Membership.objects.get(workspace=personas.workspace, user=personas.alice)


def api_status(token: str) -> int:
    return Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/workflows").status_code


def make_grants(
    personas: Personas, member: Membership, role: Role = Role.EDITOR
) -> tuple[str, str]:
    token = api_auth.token_create(
        workspace=personas.workspace, name="deploys", user=member.user
    ).value
    _, link_token = services.invitation_create(
        workspace=personas.workspace, email="mallory@example.com", role=role, actor=member
    )
    assert api_status(token) == 200
    return token, link_token


def invitation_usable(link_token: str) -> bool:
    """Whether mallory, with an account, can still join through the link."""
    mallory = User.objects.filter(email="mallory@example.com").first() or User.objects.create_user(
        email="mallory@example.com", password=PASSWORD
    )
    client = Client()
    client.force_login(mallory)
    page = client.get(f"/invitations/{link_token}/")
    accepted = client.post(f"/invitations/{link_token}/")
    joined = Membership.objects.filter(
        user=mallory, workspace__invitations__email="mallory@example.com"
    ).exists()
    assert (page.status_code == 200) == joined and (accepted.status_code == 302) == joined
    return joined


def test_a_removed_admins_token_gets_401_and_their_invitation_cannot_be_accepted(
    personas: Personas, dan: Membership
) -> None:
    token, link = make_grants(personas, dan)
    services.membership_remove(membership=dan, actor=membership(personas.workspace, personas.alice))
    assert api_status(token) == 401
    assert not invitation_usable(link)
    assert ApiToken.objects.get().revoked_at is not None
    assert Invitation.objects.get().revoked_at is not None


def test_a_demoted_admins_token_and_invitation_stop_working(
    personas: Personas, dan: Membership
) -> None:
    token, link = make_grants(personas, dan)
    services.membership_change_role(
        membership=dan, role=Role.EDITOR, actor=membership(personas.workspace, personas.alice)
    )
    assert api_status(token) == 401
    assert not invitation_usable(link)


def test_an_admin_who_leaves_takes_their_token_and_invitations_with_them(
    personas: Personas, dan: Membership
) -> None:
    token, link = make_grants(personas, dan)
    services.workspace_leave(membership=dan)
    assert api_status(token) == 401
    assert not invitation_usable(link)


def test_a_deleted_accounts_token_and_invitation_stop_working(
    personas: Personas, dan: Membership
) -> None:
    token, link = make_grants(personas, dan)
    services.user_delete(user=dan.user, actor=None)
    assert not User.objects.filter(email="dan@example.com").exists()
    assert api_status(token) == 401
    assert not invitation_usable(link)
    assert ApiToken.objects.get().revoked_at is not None


def test_deleting_an_account_in_the_admin_site_revokes_its_grants(
    personas: Personas, dan: Membership
) -> None:
    token, link = make_grants(personas, dan)
    operator = User.objects.create_superuser(email="ops@example.com", password=PASSWORD)
    client = Client()
    client.force_login(operator)
    response = client.post(f"/admin/accounts/user/{dan.user.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(id=dan.user_id).exists()
    assert ApiToken.objects.get().revoked_at is not None
    assert Invitation.objects.get().revoked_at is not None
    assert AuditEntry.objects.filter(action="token.revoke", actor_email="ops@example.com").exists()


def test_revocations_are_in_the_audit_log_with_the_reason(
    personas: Personas, dan: Membership
) -> None:
    make_grants(personas, dan)
    services.membership_remove(membership=dan, actor=membership(personas.workspace, personas.alice))
    token_entry = AuditEntry.objects.get(action="token.revoke")
    invitation_entry = AuditEntry.objects.get(action="invitation.revoke")
    for entry in (token_entry, invitation_entry):
        assert entry.actor == personas.alice
        assert "dan@example.com was removed" in entry.after["reason"]
    assert token_entry.target_label == "deploys (" + ApiToken.objects.get().prefix + "…)"
    assert invitation_entry.target_label == "mallory@example.com"


def test_an_owner_stepping_down_to_admin_loses_only_the_owner_invitations(
    personas: Personas,
) -> None:
    bob = Membership.objects.get(workspace=personas.workspace, user=personas.bob)
    services.membership_change_role(
        membership=bob, role=Role.OWNER, actor=membership(personas.workspace, personas.alice)
    )
    token = api_auth.token_create(workspace=personas.workspace, name="ci", user=personas.bob).value
    owners_invite, owner_link = services.invitation_create(
        workspace=personas.workspace, email="olivia@example.com", role=Role.OWNER, actor=bob
    )
    editors_invite, _ = services.invitation_create(
        workspace=personas.workspace, email="eddie@example.com", role=Role.EDITOR, actor=bob
    )
    services.membership_change_role(
        membership=bob, role=Role.ADMIN, actor=membership(personas.workspace, personas.alice)
    )
    owners_invite.refresh_from_db()
    editors_invite.refresh_from_db()
    assert owners_invite.revoked_at is not None
    assert editors_invite.revoked_at is None and editors_invite.is_pending
    assert api_status(token) == 200  # an admin may hold tokens


def test_a_promotion_or_an_other_members_change_revokes_nothing(
    personas: Personas, dan: Membership
) -> None:
    token, _ = make_grants(personas, dan)
    services.membership_change_role(
        membership=dan, role=Role.OWNER, actor=membership(personas.workspace, personas.alice)
    )
    services.membership_remove(
        membership=Membership.objects.get(workspace=personas.workspace, user=personas.vera),
        actor=dan,
    )
    assert api_status(token) == 200
    assert Invitation.objects.get().is_pending
    assert not AuditEntry.objects.filter(action__in=["token.revoke", "invitation.revoke"]).exists()


def test_a_role_changed_behind_the_services_back_is_caught_at_use(
    personas: Personas, dan: Membership
) -> None:
    """The admin site's membership inline writes the row directly: the checks at use still hold."""
    token, link = make_grants(personas, dan)
    Membership.objects.filter(id=dan.id).update(role=Role.VIEWER)
    assert api_status(token) == 401
    assert not invitation_usable(link)
    assert (
        ApiToken.objects.get().revoked_at is None
    )  # nothing revoked it: the check at use refused it


def test_a_membership_deleted_behind_the_services_back_is_caught_at_use(
    personas: Personas, dan: Membership
) -> None:
    token, link = make_grants(personas, dan)
    Membership.objects.filter(id=dan.id).delete()
    assert api_status(token) == 401
    assert not invitation_usable(link)


def test_a_deactivated_accounts_token_stops_working(personas: Personas, dan: Membership) -> None:
    token, _ = make_grants(personas, dan)
    User.objects.filter(id=dan.user_id).update(is_active=False)
    assert api_status(token) == 401


def test_the_invitee_is_told_to_ask_for_a_new_link(personas: Personas, dan: Membership) -> None:
    _, link = make_grants(personas, dan)
    services.membership_remove(membership=dan, actor=membership(personas.workspace, personas.alice))
    response = Client().get(f"/invitations/{link}/")
    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()
