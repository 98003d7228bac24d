"""Members and the workspace itself: roles, removal, leaving, renaming, deleting."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils.html import escape

from accounts import services
from accounts.models import AuditEntry, Membership, Role, Workspace
from accounts.services import MembershipRefused
from tests.conftest import Personas
from tests.factories import membership

pytestmark = pytest.mark.django_db


def member(personas: Personas, user) -> Membership:  # type: ignore[no-untyped-def]
    return Membership.objects.get(workspace=personas.workspace, user=user)


def settings_url(personas: Personas, suffix: str = "") -> str:
    return f"/w/{personas.workspace.slug}/{suffix}"


def test_the_settings_page_lists_members_with_role_controls_for_an_owner(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    page = client.get(settings_url(personas, "settings/")).content.decode()
    bob = membership(personas.workspace, personas.bob)
    assert f'action="/w/{personas.workspace.slug}/members/{bob.id}/role/"' in page
    assert f'action="/w/{personas.workspace.slug}/members/{bob.id}/remove/"' in page
    assert "last owner" in page  # alice is the only owner: no controls on her row


def test_an_owner_changes_a_members_role(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    bob = membership(personas.workspace, personas.bob)
    response = client.post(
        settings_url(personas, f"members/{bob.id}/role/"), {"role": "admin"}, follow=True
    )
    assert response.redirect_chain[-1][0] == settings_url(personas, "settings/")
    assert "Bob is now an admin." in response.content.decode()
    bob.refresh_from_db()
    assert bob.role == Role.ADMIN


def test_an_htmx_role_change_answers_with_the_members_card_and_a_toast(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    vera = membership(personas.workspace, personas.vera)
    response = client.post(
        settings_url(personas, f"members/{vera.id}/role/"),
        {"role": "editor"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith(
        '<section class="card" aria-labelledby="members-title" id="members">'
    )
    assert "<html" not in body
    assert "Vera is now an editor." in response["HX-Trigger"]


def test_a_refused_htmx_role_change_answers_422_with_an_error_toast(
    client: Client, personas: Personas
) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    client.force_login(personas.bob)
    vera = membership(personas.workspace, personas.vera)
    response = client.post(
        settings_url(personas, f"members/{vera.id}/role/"),
        {"role": "owner"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert '"level": "error"' in response["HX-Trigger"]
    assert membership(personas.workspace, personas.vera).role == Role.VIEWER


def test_an_admin_cannot_make_owners_nor_touch_them(personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    bob = membership(personas.workspace, personas.bob)
    alice = membership(personas.workspace, personas.alice)
    with pytest.raises(MembershipRefused, match="Only an owner can make someone an owner"):
        services.membership_change_role(
            membership=membership(personas.workspace, personas.vera), role=Role.OWNER, actor=bob
        )
    with pytest.raises(MembershipRefused, match="Only an owner can change or remove an owner"):
        services.membership_change_role(membership=alice, role=Role.VIEWER, actor=bob)
    with pytest.raises(MembershipRefused, match="Only an owner can change or remove an owner"):
        services.membership_remove(membership=alice, actor=bob)


def test_an_editor_cannot_manage_members(client: Client, personas: Personas) -> None:
    client.force_login(personas.bob)
    vera = membership(personas.workspace, personas.vera)
    assert (
        client.post(
            settings_url(personas, f"members/{vera.id}/role/"), {"role": "admin"}
        ).status_code
        == 403
    )
    assert client.post(settings_url(personas, f"members/{vera.id}/remove/")).status_code == 403
    assert membership(personas.workspace, personas.vera).role == Role.VIEWER


def test_the_last_owner_cannot_be_demoted(personas: Personas) -> None:
    alice = membership(personas.workspace, personas.alice)
    with pytest.raises(MembershipRefused, match="last owner"):
        services.membership_change_role(membership=alice, role=Role.ADMIN, actor=alice)
    assert membership(personas.workspace, personas.alice).role == Role.OWNER


def test_an_owner_can_step_down_once_there_is_another_owner(personas: Personas) -> None:
    alice = membership(personas.workspace, personas.alice)
    services.membership_change_role(
        membership=membership(personas.workspace, personas.bob), role=Role.OWNER, actor=alice
    )
    services.membership_change_role(membership=alice, role=Role.EDITOR, actor=alice)
    assert membership(personas.workspace, personas.alice).role == Role.EDITOR


def test_the_last_owner_cannot_leave_and_is_told_why(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    page = client.get(settings_url(personas, "leave/")).content.decode()
    assert "You are the last owner, so you cannot leave" in page
    response = client.post(settings_url(personas, "leave/"))
    assert response.status_code == 422
    assert "is the last owner of" in response.content.decode()
    assert membership(personas.workspace, personas.alice).role == Role.OWNER


def test_a_member_leaves_a_workspace(client: Client, personas: Personas) -> None:
    client.force_login(personas.vera)
    response = client.post(settings_url(personas, "leave/"), follow=True)
    assert f"You left {escape(personas.workspace.name)}." in response.content.decode()
    assert not Membership.objects.filter(user=personas.vera, workspace=personas.workspace).exists()
    assert client.get(settings_url(personas)).status_code == 404


def test_an_admin_removes_a_member(client: Client, personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    client.force_login(personas.bob)
    vera = membership(personas.workspace, personas.vera)
    response = client.post(settings_url(personas, f"members/{vera.id}/remove/"), follow=True)
    assert "Vera was removed from" in response.content.decode()
    assert not Membership.objects.filter(id=vera.id).exists()


def test_a_member_of_another_workspace_cannot_be_reached_by_id(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    foreign = Membership.objects.get(workspace=personas.other_workspace)
    assert (
        client.post(
            settings_url(personas, f"members/{foreign.id}/role/"), {"role": "viewer"}
        ).status_code
        == 404
    )
    assert client.post(settings_url(personas, f"members/{foreign.id}/remove/")).status_code == 404
    assert Membership.objects.get(id=foreign.id).role == Role.OWNER


def test_an_admin_who_demotes_themselves_lands_on_the_workflows_page(
    client: Client, personas: Personas
) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    client.force_login(personas.bob)
    bob = membership(personas.workspace, personas.bob)
    response = client.post(settings_url(personas, f"members/{bob.id}/role/"), {"role": "editor"})
    # Their own row has no role control, but the service allows it: nothing breaks.
    assert response.status_code == 302
    assert response["Location"] == settings_url(personas)


def test_an_owner_renames_the_workspace_and_the_slug_stays(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    slug = personas.workspace.slug
    response = client.post(
        settings_url(personas, "settings/name/"), {"name": "Support team"}, follow=True
    )
    assert "Renamed" in response.content.decode()
    workspace = Workspace.objects.get(id=personas.workspace.id)
    assert (workspace.name, workspace.slug) == ("Support team", slug)


def test_an_admin_cannot_rename_the_workspace(client: Client, personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    client.force_login(personas.bob)
    assert (
        client.post(settings_url(personas, "settings/name/"), {"name": "Mine now"}).status_code
        == 403
    )
    assert "Rename" not in client.get(settings_url(personas, "settings/")).content.decode()


def test_an_empty_name_is_refused_with_a_form_error(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    response = client.post(settings_url(personas, "settings/name/"), {"name": ""})
    assert response.status_code == 422
    assert "This field is required." in response.content.decode()


def test_deleting_a_workspace_needs_its_name_typed(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    response = client.post(settings_url(personas, "settings/delete/"), {"confirm_name": "nope"})
    assert response.status_code == 422
    assert "That is not the workspace&#x27;s name" in response.content.decode()
    assert Workspace.objects.filter(id=personas.workspace.id).exists()


def test_an_owner_deletes_the_workspace_with_everything_in_it(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    workspace_id = personas.workspace.id
    response = client.post(
        settings_url(personas, "settings/delete/"), {"confirm_name": personas.workspace.name}
    )
    assert response.status_code == 302
    assert not Workspace.objects.filter(id=workspace_id).exists()
    assert not Membership.objects.filter(workspace_id=workspace_id).exists()
    assert not AuditEntry.objects.filter(workspace_id=workspace_id).exists()


def test_only_an_owner_deletes_the_workspace(client: Client, personas: Personas) -> None:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    client.force_login(personas.bob)
    response = client.post(
        settings_url(personas, "settings/delete/"), {"confirm_name": personas.workspace.name}
    )
    assert response.status_code == 403
    assert Workspace.objects.filter(id=personas.workspace.id).exists()


def test_anyone_creates_more_workspaces_and_owns_them(client: Client, personas: Personas) -> None:
    client.force_login(personas.vera)
    response = client.post("/workspaces/new/", {"name": "Research"})
    workspace = Workspace.objects.get(name="Research")
    assert response["Location"] == f"/w/{workspace.slug}/"
    assert Membership.objects.get(user=personas.vera, workspace=workspace).role == Role.OWNER


def test_the_workspace_menu_offers_to_leave(client: Client, personas: Personas) -> None:
    client.force_login(personas.vera)
    page = client.get(settings_url(personas)).content.decode()
    assert f'href="/w/{personas.workspace.slug}/leave/"' in page
