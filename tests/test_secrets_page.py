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
HOSTS = "api.example.com"


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
    response = adam.post(
        page(personas, "new/"), {"name": "CRM_KEY", "value": VALUE, "allowed_hosts": HOSTS}
    )
    assert response.status_code == 302
    secret = WorkspaceSecret.objects.get(workspace=personas.workspace, name="CRM_KEY")
    assert VALUE not in secret.value_encrypted
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == VALUE
    shown = adam.get(page(personas)).content.decode()
    assert "CRM_KEY" in shown and VALUE not in shown
    assert "no-store" in adam.get(page(personas))["Cache-Control"]
    entry = AuditEntry.objects.get(action="secret.create")
    assert entry.after == {"name": "CRM_KEY", "hosts": "api.example.com"}
    assert VALUE not in str(entry.before) + str(entry.after) + entry.target_label


def test_it_refuses_a_second_secret_of_the_same_name(personas: Personas, adam: Client) -> None:
    adam.post(page(personas, "new/"), {"name": "KEY", "value": "one", "allowed_hosts": HOSTS})
    response = adam.post(
        page(personas, "new/"), {"name": "KEY", "value": "two", "allowed_hosts": HOSTS}
    )
    assert response.status_code == 422
    assert "already a secret named KEY" in response.content.decode()
    secret = WorkspaceSecret.objects.get(name="KEY")
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == "one"


def test_an_admin_replaces_a_value_and_deletes_a_secret(personas: Personas, adam: Client) -> None:
    adam.post(page(personas, "new/"), {"name": "KEY", "value": "old-value", "allowed_hosts": HOSTS})
    secret = WorkspaceSecret.objects.get(name="KEY")
    assert (
        adam.post(
            page(personas, f"{secret.id}/rotate/"), {"value": "new-value", "allowed_hosts": HOSTS}
        ).status_code
        == 302
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
            client.post(
                page(personas, f"{secret.id}/rotate/"),
                {"value": "v", "allowed_hosts": "evil.example"},
            ).status_code
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
    adam.post(page(personas, "new/"), {"name": "MARKUP", "value": XSS, "allowed_hosts": HOSTS})
    secret = WorkspaceSecret.objects.get(name="MARKUP")
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == XSS
    html = adam.get(page(personas)).content.decode()
    assert "onerror" not in html and "/evil" not in html


def test_secrets_stay_readable_across_a_secret_key_rotation(
    personas: Personas, adam: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    adam.post(page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": HOSTS})
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


# --- The hosts a secret may be sent to -------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "error"),
    [
        ("", "This field is required."),
        ("https://api.example.com", "write the host only"),
        ("api.example.com/v1", "write the host only"),
        ("api.example.com:443", "no port"),
        ("user@api.example.com", "write the host only"),
        ("*", "a wildcard is allowed only as *.example.com"),
        ("api.*.example.com", "a wildcard is allowed only as *.example.com"),
        ("*.com", "too broad"),
        ("*.10.0.0.1", "not an address"),
        ("api.example.com, bad_host!", "is not a host name"),
        ("-leading.example.com", "is not a host name"),
    ],
)
def test_a_new_secret_needs_well_formed_hosts(
    personas: Personas, adam: Client, hosts: str, error: str
) -> None:
    response = adam.post(
        page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": hosts}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="id_allowed_hosts_error"' in html
    assert error.replace("'", "&#x27;") in html
    assert not WorkspaceSecret.objects.exists()


def test_hosts_are_saved_normalised_and_shown(personas: Personas, adam: Client) -> None:
    hosts = "API.Example.COM, *.Example.org\nBücher.example\napi.example.com."
    assert (
        adam.post(
            page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": hosts}
        ).status_code
        == 302
    )
    secret = WorkspaceSecret.objects.get(name="KEY")
    assert secret.allowed_hosts == ["api.example.com", "*.example.org", "xn--bcher-kva.example"]
    assert not secret.any_host
    html = adam.get(page(personas)).content.decode()
    assert "<code>*.example.org</code>" in html and "xn--bcher-kva.example" in html
    assert "may be sent to any host" not in html


def test_an_admin_changes_the_hosts_keeping_the_value_and_it_is_audited(
    personas: Personas, adam: Client
) -> None:
    adam.post(page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": HOSTS})
    secret = WorkspaceSecret.objects.get(name="KEY")
    response = adam.post(
        page(personas, f"{secret.id}/rotate/"), {"value": "", "allowed_hosts": "api.stripe.com"}
    )
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.allowed_hosts == ["api.stripe.com"]
    assert unseal("stepwise.workspace-secret", secret.value_encrypted) == VALUE
    assert secret.rotated_at is None
    entry = AuditEntry.objects.get(action="secret.hosts")
    assert entry.before == {"name": "KEY", "hosts": "api.example.com"}
    assert entry.after == {"name": "KEY", "hosts": "api.stripe.com"}
    assert not AuditEntry.objects.filter(action="secret.rotate").exists()
    assert (
        "Changed the hosts a secret may be sent to"
        in adam.get(f"/w/{personas.workspace.slug}/audit/").content.decode()
    )
    # The same hosts again: nothing changes, nothing is logged.
    adam.post(
        page(personas, f"{secret.id}/rotate/"), {"value": "", "allowed_hosts": "api.stripe.com"}
    )
    assert AuditEntry.objects.filter(action="secret.hosts").count() == 1


def test_an_editor_cannot_change_a_secrets_hosts(personas: Personas, adam: Client) -> None:
    adam.post(page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": HOSTS})
    secret = WorkspaceSecret.objects.get(name="KEY")
    bob = client_for(personas.bob)
    response = bob.post(
        page(personas, f"{secret.id}/rotate/"), {"value": "", "allowed_hosts": "evil.example"}
    )
    assert response.status_code == 403
    secret.refresh_from_db()
    assert secret.allowed_hosts == ["api.example.com"]
    assert not AuditEntry.objects.filter(action="secret.hosts").exists()


def test_a_legacy_secret_is_flagged_until_its_hosts_are_named(
    personas: Personas, adam: Client
) -> None:
    secret = WorkspaceSecret.objects.create(
        workspace=personas.workspace, name="OLD_KEY", value_encrypted="x", any_host=True
    )
    html = adam.get(page(personas)).content.decode()
    assert "1 secret may be sent to any host" in html
    assert "Any host (legacy)" in html
    bad = adam.post(page(personas, f"{secret.id}/rotate/"), {"value": "", "allowed_hosts": ""})
    assert bad.status_code == 422
    assert 'id="rotate_allowed_hosts_error"' in bad.content.decode()
    secret.refresh_from_db()
    assert secret.any_host
    adam.post(page(personas, f"{secret.id}/rotate/"), {"value": "", "allowed_hosts": HOSTS})
    secret.refresh_from_db()
    assert not secret.any_host and secret.allowed_hosts == ["api.example.com"]
    assert secret.value_encrypted == "x"
    entry = AuditEntry.objects.get(action="secret.hosts")
    assert entry.before == {"name": "OLD_KEY", "hosts": "any host (legacy)"}
    html = adam.get(page(personas)).content.decode()
    assert "may be sent to any host" not in html and "Any host (legacy)" not in html


def test_markup_in_the_hosts_field_is_refused_and_shown_as_text(
    personas: Personas, adam: Client
) -> None:
    response = adam.post(
        page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": XSS}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "<img src=x" not in html and 'hx-post="/evil' not in html
    assert "&lt;img" in html
    adam.post(page(personas, "new/"), {"name": "KEY", "value": VALUE, "allowed_hosts": HOSTS})
    secret = WorkspaceSecret.objects.get(name="KEY")
    response = adam.post(
        page(personas, f"{secret.id}/rotate/"), {"value": "", "allowed_hosts": XSS}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "<img src=x" not in html and 'hx-post="/evil' not in html
    # Stored hosts are rendered as text too (a row written behind the form's back).
    WorkspaceSecret.objects.filter(id=secret.id).update(allowed_hosts=[XSS])
    html = adam.get(page(personas)).content.decode()
    assert "<img src=x" not in html and 'hx-post="/evil' not in html
