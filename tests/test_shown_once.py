"""Secrets shown once: POST-redirect-GET, shown on
one GET only, never cached, never kept in clear."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import client_for, published_workflow
from workflows.integrations import api_auth, triggers
from workflows.models import ApiToken, Trigger, Workflow


@pytest.fixture
def workflow(personas: Personas) -> Workflow:
    return published_workflow(personas.workspace)


def assert_not_stored(response) -> None:  # type: ignore[no-untyped-def]
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control, cache_control


def session_text(client: Client) -> str:
    from django.contrib.sessions.models import Session

    return " ".join(str(s.get_decoded()) for s in Session.objects.all()) + str(dict(client.session))


def test_it_redirects_after_creating_a_token_and_shows_it_on_the_next_get_only(
    personas: Personas,
) -> None:
    client = client_for(personas.alice)
    page = reverse("api_tokens", args=[personas.workspace.slug])
    response = client.post(
        reverse("api_token_create", args=[personas.workspace.slug]), {"name": "Deploy"}
    )
    assert response.status_code == 303 and response["Location"] == page
    token = ApiToken.objects.get()
    shown = client.get(page)
    assert shown.status_code == 200
    assert_not_stored(shown)
    html = shown.content.decode()
    value = html.split('id="new-token-value">', 1)[1].split("<", 1)[0]
    assert api_auth.token_hash(value) == token.token_hash
    assert "data-shown-once" in html and 'hx-history="false"' in html

    again = client.get(page)
    assert_not_stored(again)
    assert value not in again.content.decode() and "new-token-value" not in again.content.decode()
    assert value not in session_text(client)


def test_it_keeps_the_new_token_in_the_session_only_encrypted(personas: Personas) -> None:
    client = client_for(personas.alice)
    client.post(reverse("api_token_create", args=[personas.workspace.slug]), {"name": "Deploy"})
    held = session_text(client)
    assert "shown_once" in held
    assert "sw_" not in held
    value = (
        client.get(reverse("api_tokens", args=[personas.workspace.slug]))
        .content.decode()
        .split('id="new-token-value">', 1)[1]
        .split("<", 1)[0]
    )
    assert value.startswith("sw_")


def test_the_token_is_not_shown_on_another_workspace_page_nor_to_anyone_else(
    personas: Personas,
) -> None:
    alice = client_for(personas.alice)
    alice.post(reverse("api_token_create", args=[personas.workspace.slug]), {"name": "Deploy"})
    alice.get(reverse("workspace_settings", args=[personas.workspace.slug]))
    other = client_for(personas.alice)  # another browser of the same person
    assert (
        "new-token-value"
        not in other.get(reverse("api_tokens", args=[personas.workspace.slug])).content.decode()
    )
    # The one GET of the page it was made for still shows it.
    assert (
        "new-token-value"
        in alice.get(reverse("api_tokens", args=[personas.workspace.slug])).content.decode()
    )


def test_a_token_revoked_before_the_redirect_is_not_shown(personas: Personas) -> None:
    client = client_for(personas.alice)
    client.post(reverse("api_token_create", args=[personas.workspace.slug]), {"name": "Deploy"})
    api_auth.token_revoke(token=ApiToken.objects.get(), user=personas.alice)
    assert (
        "new-token-value"
        not in client.get(reverse("api_tokens", args=[personas.workspace.slug])).content.decode()
    )


def test_a_refused_token_form_is_not_cached_either(personas: Personas) -> None:
    response = client_for(personas.alice).post(
        reverse("api_token_create", args=[personas.workspace.slug]), {"name": ""}
    )
    assert response.status_code == 422
    assert_not_stored(response)


def test_it_redirects_after_adding_a_webhook_and_shows_its_secret_on_the_next_get_only(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.alice)
    page = reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id])
    response = client.post(
        reverse("trigger_create", args=[personas.workspace.slug, workflow.id]),
        {"name": "CRM", "rate_limit_per_minute": 60},
    )
    assert response.status_code == 303 and response["Location"] == page + "#new-secret"
    secret = triggers.secret_decrypt(Trigger.objects.get().secret_encrypted)
    assert secret is not None and secret not in session_text(client)
    shown = client.get(page)
    assert_not_stored(shown)
    assert secret in shown.content.decode() and "data-shown-once" in shown.content.decode()
    again = client.get(page)
    assert_not_stored(again)
    assert secret not in again.content.decode()


def test_it_redirects_after_rotating_and_shows_the_new_secret_once(
    personas: Personas, workflow: Workflow
) -> None:
    made = triggers.trigger_create(workflow=workflow, user=personas.alice)
    client = client_for(personas.alice)
    page = reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id])
    response = client.post(
        reverse("trigger_rotate", args=[personas.workspace.slug, workflow.id, made.trigger.id])
    )
    assert response.status_code == 303
    new = triggers.secret_decrypt(Trigger.objects.get().secret_encrypted)
    assert new != made.secret
    shown = client.get(page).content.decode()
    assert new in shown and "previous secret keeps working" in shown
    assert new not in client.get(page).content.decode()


def test_the_webhook_secret_is_not_shown_on_another_workflows_page(
    personas: Personas, workflow: Workflow
) -> None:
    from tests.factories import GREETING

    other = published_workflow(personas.workspace, {**GREETING, "name": "Other"})
    client = client_for(personas.alice)
    client.post(
        reverse("trigger_create", args=[personas.workspace.slug, workflow.id]),
        {"rate_limit_per_minute": 5},
    )
    secret = triggers.secret_decrypt(Trigger.objects.get().secret_encrypted)
    assert (
        secret
        not in client.get(
            reverse("workflow_triggers", args=[personas.workspace.slug, other.id])
        ).content.decode()
    )
    assert (
        secret
        in client.get(
            reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id])
        ).content.decode()
    )


def test_a_new_invitation_link_is_shown_once_after_a_redirect_and_never_cached(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(personas.alice)
    page = reverse("workspace_settings", args=[personas.workspace.slug])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("invitation_create", args=[personas.workspace.slug]),
            {"email": "dana@example.com", "role": "editor"},
        )
    assert response.status_code == 303 and response["Location"] == page
    shown = client.get(page)
    assert_not_stored(shown)
    html = shown.content.decode()
    link = html.split('id="new-invitation-link" value="', 1)[1].split('"', 1)[0]
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert "/invitations/" in link and token not in session_text(client)
    assert "data-shown-once" in html
    assert token not in client.get(page).content.decode()


def test_the_invitation_card_answered_to_htmx_is_not_cached(personas: Personas) -> None:
    response = client_for(personas.alice).post(
        reverse("invitation_create", args=[personas.workspace.slug]),
        {"email": "dana@example.com", "role": "viewer"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert_not_stored(response)
    assert 'id="new-invitation-link"' in response.content.decode()
