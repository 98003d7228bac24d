"""The Secrets page: admins save named values that http steps send; nobody sees them again."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import AuditEntry, Membership, Role, WorkspaceSecret
from config.lib.sealing import unseal
from tests.conftest import Personas
from tests.factories import client_for, signed_up

pytestmark = pytest.mark.django_db

VALUE = "sk-live-0123456789abcdef-the-value"
XSS = '<img src=x onerror=alert(1)>" hx-post="/evil'


@pytest.fixture
def adam(personas: Personas) -> Client:
    """An admin of alice's workspace."""
    user, _ = signed_up("adam@example.com", "Adam")
    Membership.objects.create(user=user, workspace=personas.workspace, role=Role.ADMIN)
    return client_for(user)


def page(personas: Personas, suffix: str = "") -> str:
    return f"/w/{personas.workspace.slug}/settings/secrets/{suffix}"


def test_an_admin_saves_a_secret_that_is_stored_encrypted_and_never_shown(
    personas: Personas, adam: Client
) -> None:
    response = adam.post(page(personas, "new/"), {"name": "CRM_KEY", "value": VALUE})
    assert response.status_code == 302
    secret = WorkspaceSecret.objects.get(workspace=personas.workspace, name="CRM_KEY")
    assert VALUE not in secret.value_encrypted
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == VALUE
    shown = adam.get(page(personas)).content.decode()
    assert "CRM_KEY" in shown and VALUE not in shown
    assert "no-store" in adam.get(page(personas))["Cache-Control"]
    entry = AuditEntry.objects.get(action="secret.create")
    assert entry.after == {"name": "CRM_KEY"}
    assert VALUE not in str(entry.before) + str(entry.after) + entry.target_label


def test_it_refuses_a_second_secret_of_the_same_name(personas: Personas, adam: Client) -> None:
    adam.post(page(personas, "new/"), {"name": "KEY", "value": "one"})
    response = adam.post(page(personas, "new/"), {"name": "KEY", "value": "two"})
    assert response.status_code == 422
    assert "already a secret named KEY" in response.content.decode()
    secret = WorkspaceSecret.objects.get(name="KEY")
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == "one"


def test_an_admin_replaces_a_value_and_deletes_a_secret(personas: Personas, adam: Client) -> None:
    adam.post(page(personas, "new/"), {"name": "KEY", "value": "old-value"})
    secret = WorkspaceSecret.objects.get(name="KEY")
    assert (
        adam.post(page(personas, f"{secret.id}/rotate/"), {"value": "new-value"}).status_code == 302
    )
    secret.refresh_from_db()
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == "new-value"
    assert secret.rotated_at is not None
    assert adam.post(page(personas, f"{secret.id}/delete/")).status_code == 302
    assert not WorkspaceSecret.objects.filter(id=secret.id).exists()
    actions = list(
        AuditEntry.objects.filter(action__startswith="secret.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["secret.create", "secret.delete", "secret.rotate"]
    logged = str(list(AuditEntry.objects.values_list("before", "after")))
    assert "old-value" not in logged and "new-value" not in logged


def test_editors_and_viewers_are_refused_and_outsiders_do_not_see_it(personas: Personas) -> None:
    secret = WorkspaceSecret.objects.create(
        workspace=personas.workspace, name="KEY", value_encrypted="x"
    )
    for user, status in ((personas.bob, 403), (personas.vera, 403), (personas.charlie, 404)):
        client = client_for(user)
        assert client.get(page(personas)).status_code == status
        assert (
            client.post(page(personas, "new/"), {"name": "N", "value": "v"}).status_code == status
        )
        assert (
            client.post(page(personas, f"{secret.id}/rotate/"), {"value": "v"}).status_code
            == status
        )
        assert client.post(page(personas, f"{secret.id}/delete/")).status_code == status
    assert list(WorkspaceSecret.objects.values_list("name", flat=True)) == ["KEY"]


def test_another_workspaces_secret_is_not_found(personas: Personas, adam: Client) -> None:
    theirs = WorkspaceSecret.objects.create(
        workspace=personas.other_workspace, name="THEIRS", value_encrypted="x"
    )
    assert adam.post(page(personas, f"{theirs.id}/rotate/"), {"value": "v"}).status_code == 404
    assert adam.post(page(personas, f"{theirs.id}/delete/")).status_code == 404
    assert WorkspaceSecret.objects.filter(id=theirs.id, value_encrypted="x").exists()


def test_markup_in_a_name_is_refused_and_shown_as_text(personas: Personas, adam: Client) -> None:
    response = adam.post(page(personas, "new/"), {"name": XSS, "value": XSS})
    assert response.status_code == 422
    html = response.content.decode()
    assert "<img src=x" not in html and 'hx-post="/evil' not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not WorkspaceSecret.objects.exists()


def test_markup_in_a_value_is_kept_as_is_and_never_rendered(
    personas: Personas, adam: Client
) -> None:
    adam.post(page(personas, "new/"), {"name": "MARKUP", "value": XSS})
    secret = WorkspaceSecret.objects.get(name="MARKUP")
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == XSS
    html = adam.get(page(personas)).content.decode()
    assert "onerror" not in html and "/evil" not in html


def test_secrets_stay_readable_across_a_secret_key_rotation(
    personas: Personas, adam: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    adam.post(page(personas, "new/"), {"name": "KEY", "value": VALUE})
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "the-new-key-" + "n" * 40, [old_key]
    secret = WorkspaceSecret.objects.get(name="KEY")
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == VALUE
    call_command("reencrypt_secrets")
    settings.SECRET_KEY_FALLBACKS = []
    secret.refresh_from_db()
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == VALUE


def test_only_an_owner_narrows_the_internal_hosts(personas: Personas, adam: Client) -> None:
    url = f"/w/{personas.workspace.slug}/settings/internal-hosts/"
    assert adam.post(url, {"narrowed": "on", "allowed_hosts": ""}).status_code == 403
    alice = client_for(personas.alice)
    bad = alice.post(url, {"narrowed": "on", "allowed_hosts": "not a host!"})
    assert bad.status_code == 422
    assert (
        alice.post(
            url, {"narrowed": "on", "allowed_hosts": "10.0.0.0/8\napi.internal:8443"}
        ).status_code
        == 302
    )
    personas.workspace.refresh_from_db()
    assert personas.workspace.outbound_narrowed
    assert personas.workspace.outbound_allowed_hosts == "10.0.0.0/8\napi.internal:8443"
    assert AuditEntry.objects.filter(action="workspace.outbound").count() == 1
