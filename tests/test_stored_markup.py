"""Stored text is inert: markup a user wrote is shown as text, never run.

With htmx an attribute in stored markup is code that runs with the viewer's session,
so one unescaped description was enough for an editor to make themselves owner.
"""

from __future__ import annotations

import json

from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Role
from tests.conftest import Personas
from workflows import services

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_it_shows_an_inputs_description_as_text_on_the_test_run_form(personas: Personas) -> None:
    """The attack from issue 11: bob (editor) writes a description that promotes him when alice opens the form."""
    bob_membership = Membership.objects.get(user=personas.bob, workspace=personas.workspace)
    promote = reverse("member_role", args=[personas.workspace.slug, bob_membership.id])
    payload = (f'<span hx-post="{promote}" hx-vals=\'{{"role":"owner"}}\' hx-trigger="load">Ticket</span>')
    workflow = services.workflow_create(workspace=personas.workspace, user=personas.alice, definition={
        "name": "Support", "inputs": [{"name": "ticket", "type": "text"}],
        "steps": [{"key": "t", "type": "template", "template": "{{ ticket }}"}],
    })
    bob = Client()
    bob.force_login(personas.bob)
    saved = bob.post(reverse("workflow_inputs_save", args=[personas.workspace.slug, workflow.id]),
                     {"input_count": "1", "input-0-name": "ticket", "input-0-type": "text",
                      "input-0-default": "", "input-0-description": payload}, **HTMX)
    assert saved.status_code == 200
    workflow.refresh_from_db()
    assert workflow.definition["inputs"][0]["description"] == payload

    alice = Client()
    alice.force_login(personas.alice)
    editor = reverse("workflow_editor", args=[personas.workspace.slug, workflow.id]) + "?panel=run"
    for response in (alice.get(editor), alice.get(editor, **HTMX)):
        assert response.status_code == 200
        html = response.content.decode()
        assert "<span hx-post" not in html
        assert "&lt;span hx-post=&quot;" in html
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.EDITOR
    json.dumps(workflow.definition)  # still plain data


def test_it_still_shows_the_server_built_password_rules_as_a_list(db: None) -> None:
    html = Client().get(reverse("signup")).content.decode()
    assert '_helptext"><ul><li>' in html
    assert "&lt;ul&gt;" not in html
