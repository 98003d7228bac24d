from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import GREETING, run_row
from workflows import services

pytestmark = pytest.mark.django_db


def test_an_outsider_gets_404_on_another_workspace(client: Client, personas: Personas) -> None:
    client.force_login(personas.charlie)
    assert client.get(f"/w/{personas.workspace.slug}/").status_code == 404
    assert client.get(f"/w/{personas.workspace.slug}/settings/").status_code == 404


def test_a_viewer_gets_403_where_the_role_is_too_low(client: Client, personas: Personas) -> None:
    client.force_login(personas.vera)
    assert client.get(f"/w/{personas.workspace.slug}/").status_code == 200
    assert client.get(f"/w/{personas.workspace.slug}/settings/").status_code == 403


def test_an_owner_reaches_the_settings(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    response = client.get(f"/w/{personas.workspace.slug}/settings/")
    assert response.status_code == 200
    assert "bob@example.com" in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client: Client, personas: Personas) -> None:
    response = client.get(f"/w/{personas.workspace.slug}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_missing_workspace_is_404_not_500(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    assert client.get("/w/no-such-workspace/").status_code == 404


def test_the_header_switcher_lists_only_my_workspaces(client: Client, personas: Personas) -> None:
    client.force_login(personas.bob)
    page = client.get(f"/w/{personas.workspace.slug}/").content.decode()
    assert f'href="/w/{personas.workspace.slug}/"' in page
    assert f'href="/w/{personas.other_workspace.slug}/"' not in page


def test_an_archived_workflow_opens_in_the_editor_but_its_triggers_page_is_404(
    client: Client, personas: Personas
) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=GREETING, user=None
    )
    services.workflow_archive(workflow=workflow, user=None)
    client.force_login(personas.alice)
    slug = personas.workspace.slug

    assert client.get(reverse("workflow_editor", args=[slug, workflow.id])).status_code == 200
    assert client.get(reverse("workflow_triggers", args=[slug, workflow.id])).status_code == 404


def test_another_workspaces_workflow_and_run_are_404(client: Client, personas: Personas) -> None:
    theirs = services.workflow_create(
        workspace=personas.other_workspace, definition=GREETING, user=None
    )
    run = run_row(theirs)
    client.force_login(personas.alice)
    slug = personas.workspace.slug

    assert client.get(reverse("workflow_editor", args=[slug, theirs.id])).status_code == 404
    assert client.get(reverse("workflow_triggers", args=[slug, theirs.id])).status_code == 404
    assert client.get(reverse("run_detail", args=[slug, run.id])).status_code == 404
