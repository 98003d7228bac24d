"""Two people editing one workflow: field-level writes, revisions, conflicts, presence, no stale
forms.

Alice (owner) and Bob (editor) open the same draft at revision r. Each write
names the fields it changes and the revision each field was based on; a
write based on an older revision is applied unless it touches a field that
someone else changed since, in which case it is refused (409) and the
editor names who changed what.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import HTMX, client_for
from tests.test_editor import CHAIN, draft, keys, url
from workflows import services
from workflows.models import Workflow

PAYLOAD = '<img src=x onerror=alert(1)><span hx-get="/" hx-trigger="load">x</span>'


@pytest.fixture
def workflow(personas: Personas) -> Workflow:
    return services.workflow_create(
        workspace=personas.workspace, definition=json.loads(json.dumps(CHAIN)), user=personas.alice
    )


def save_step(
    client: Client,
    personas: Personas,
    workflow: Workflow,
    index: int,
    known_key: str,
    base: int,
    **fields: str,
) -> object:
    data = {"step_key": known_key, **fields, **{f"rev-{name}": str(base) for name in fields}}
    return client.post(url(personas, "workflow_step_save", workflow, index), data, **HTMX)


def revision(workflow: Workflow) -> int:
    workflow.refresh_from_db()
    return workflow.draft_revision


# --- Field-level writes and revisions ----------------------------------------------------------


def test_a_stale_write_to_another_field_is_applied_and_keeps_the_other_persons_change(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    assert (
        save_step(alice, personas, workflow, 0, "triage", base, title="Alice's title").status_code
        == 200
    )
    # Bob's form still shows the old title; he changes only the system message.
    response = save_step(bob, personas, workflow, 0, "triage", base, system="Be brief.")
    assert response.status_code == 200
    step = draft(workflow)["steps"][0]
    assert (step["title"], step["system"]) == ("Alice's title", "Be brief.")
    assert revision(workflow) == base + 2


def test_a_stale_write_to_the_same_field_is_refused_naming_who_changed_it(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    save_step(alice, personas, workflow, 0, "triage", base, title="Alice's title")
    response = save_step(bob, personas, workflow, 0, "triage", base, title="Bob's title")
    assert response.status_code == 409
    html = response.content.decode()
    assert "Alice changed Title" in html
    assert "Use theirs" in html and "Keep mine" in html
    assert draft(workflow)["steps"][0]["title"] == "Alice's title"
    assert revision(workflow) == base + 1, "a refused write does not count as a revision"
    # "Keep mine" sends Bob's value again, based on the revision he has now seen.
    keep = save_step(bob, personas, workflow, 0, "triage", revision(workflow), title="Bob's title")
    assert keep.status_code == 200
    assert draft(workflow)["steps"][0]["title"] == "Bob's title"


def test_the_same_person_is_never_in_conflict_with_their_own_earlier_write(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    bob = client_for(personas.bob)
    save_step(bob, personas, workflow, 0, "triage", base, title="One")
    assert save_step(bob, personas, workflow, 0, "triage", base, title="Two").status_code == 200
    assert draft(workflow)["steps"][0]["title"] == "Two"


def test_a_write_that_changes_nothing_does_not_make_a_revision(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    save_step(client_for(personas.bob), personas, workflow, 0, "triage", base, title="Classify")
    assert revision(workflow) == base


def test_the_service_applies_an_edit_to_the_stored_draft_not_to_a_stale_copy(
    personas: Personas, workflow: Workflow
) -> None:
    alices_copy = Workflow.objects.get(pk=workflow.pk)
    bobs_copy = Workflow.objects.get(pk=workflow.pk)
    base = alices_copy.draft_revision

    def set_field(name: str, value: str):
        def edit(definition: dict) -> dict:
            definition["steps"][0][name] = value
            return definition

        return edit

    services.workflow_edit_draft(
        workflow=alices_copy,
        user=personas.alice,
        edit=set_field("title", "A"),
        bases={"steps.triage.title": base},
    )
    services.workflow_edit_draft(
        workflow=bobs_copy,
        user=personas.bob,
        edit=set_field("system", "B"),
        bases={"steps.triage.system": base},
    )
    step = draft(workflow)["steps"][0]
    assert (step["title"], step["system"]) == ("A", "B")
    with pytest.raises(services.DraftConflict) as refused:
        services.workflow_edit_draft(
            workflow=bobs_copy,
            user=personas.bob,
            edit=set_field("title", "B"),
            bases={"steps.triage.title": base},
        )
    assert refused.value.conflicts[0].name == "Alice"


def test_a_step_renamed_by_someone_else_still_receives_a_stale_write_to_another_field(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    save_step(client_for(personas.alice), personas, workflow, 0, "triage", base, key="classify")
    response = save_step(
        client_for(personas.bob), personas, workflow, 0, "triage", base, title="Bob's title"
    )
    assert response.status_code == 200
    step = draft(workflow)["steps"][0]
    assert (step["key"], step["title"]) == ("classify", "Bob's title")


def test_stale_inputs_settings_and_output_writes_are_refused_only_on_the_same_field(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    alice.post(
        url(personas, "workflow_settings_save", workflow),
        {"name": "Renamed", "rev-name": base},
        **HTMX,
    )
    ok = bob.post(
        url(personas, "workflow_settings_save", workflow),
        {"description": "Bob's words", "rev-description": base},
        **HTMX,
    )
    assert ok.status_code == 200
    refused = bob.post(
        url(personas, "workflow_settings_save", workflow),
        {"name": "Bob's", "rev-name": base},
        **HTMX,
    )
    assert refused.status_code == 409 and "Alice changed Name" in refused.content.decode()
    workflow.refresh_from_db()
    assert (workflow.name, workflow.description) == ("Renamed", "Bob's words")

    alice.post(
        url(personas, "workflow_inputs_save", workflow),
        {"input-0-description": "Alice's help", "rev-input-0-description": base},
        **HTMX,
    )
    ok = bob.post(
        url(personas, "workflow_inputs_save", workflow),
        {"input-0-default": "hello", "rev-input-0-default": base},
        **HTMX,
    )
    assert ok.status_code == 200
    refused = bob.post(
        url(personas, "workflow_inputs_save", workflow),
        {"input-0-description": "Bob's help", "rev-input-0-description": base},
        **HTMX,
    )
    assert refused.status_code == 409 and "Alice changed" in refused.content.decode()
    spec = draft(workflow)["inputs"][0]
    assert (spec["name"], spec["description"], spec["default"]) == (
        "ticket",
        "Alice's help",
        "hello",
    )

    alice.post(
        url(personas, "workflow_output_save", workflow),
        {"output": "{{ reply }}", "rev-output": base},
        **HTMX,
    )
    refused = bob.post(
        url(personas, "workflow_output_save", workflow), {"output": "x", "rev-output": base}, **HTMX
    )
    assert refused.status_code == 409
    assert draft(workflow)["output"] == "{{ reply }}"


def test_moving_or_deleting_a_step_from_a_stale_view_of_the_steps_is_refused(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    alice.post(
        url(personas, "workflow_step_add", workflow),
        {"position": "0", "kind": "template", "base": base},
        **HTMX,
    )
    assert keys(workflow)[0] == "step_5"
    # Bob still sees "triage" first: his "delete step 1" would delete Alice's new step.
    response = bob.post(
        url(personas, "workflow_step_delete", workflow, 0),
        {"base": base, "step_key": "triage"},
        **HTMX,
    )
    assert response.status_code == 409
    assert "Alice changed the steps" in response.content.decode()
    assert keys(workflow)[:2] == ["step_5", "triage"]
    moved = bob.post(
        url(personas, "workflow_step_move", workflow, 0),
        {"direction": "down", "base": base},
        **HTMX,
    )
    assert moved.status_code == 409
    added = bob.post(
        url(personas, "workflow_step_add", workflow),
        {"position": "0", "kind": "llm", "base": base},
        **HTMX,
    )
    assert added.status_code == 409
    assert len(keys(workflow)) == 5
    # Based on what he sees now, it works.
    now = revision(workflow)
    assert (
        bob.post(
            url(personas, "workflow_step_move", workflow, 0),
            {"direction": "down", "base": now},
            **HTMX,
        ).status_code
        == 200
    )


def test_a_step_is_added_with_its_kind_even_when_the_form_sends_only_the_kind(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_add", workflow),
        {"kind": "template", "position": "4", "base": revision(workflow)},
        **HTMX,
    )
    assert response.status_code == 200
    assert draft(workflow)["steps"][4]["type"] == "template"


# --- Seeing others: the sync poll and presence ----------------------------------------------------


def test_the_sync_poll_brings_others_changes_and_says_who_else_is_here(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    sync = url(personas, "workflow_editor_sync", workflow)
    quiet = bob.get(sync, {"seen": base, "open": "step:0"}, **HTMX)
    assert quiet.status_code == 200 and "no-store" in quiet["Cache-Control"]
    assert 'id="editor-sync"' in quiet.content.decode() and "Alice" not in quiet.content.decode()
    alice.get(sync, {"seen": base, "open": "step:0"}, **HTMX)  # Alice has the editor open too
    save_step(alice, personas, workflow, 0, "triage", base, title="Alice's title")
    html = bob.get(sync, {"seen": base, "open": "step:0"}, **HTMX).content.decode()
    assert f'"seen": {revision(workflow)}' in html
    assert "Alice" in html, "who else has the workflow open"
    assert 'id="flow"' in html and "Alice&#x27;s title" in html
    assert html.split('id="flow"', 1)[1].split(">", 1)[0].endswith('hx-swap-oob="true"'), (
        "the cards"
    )
    assert 'id="field-title" hx-swap-oob="true"' in html, "the changed field of the open panel"
    assert 'id="field-system" hx-swap-oob="true"' not in html, (
        "fields nobody changed are left alone"
    )


def test_presence_expires_and_a_viewer_is_listed_but_cannot_write(
    personas: Personas, workflow: Workflow
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from workflows.models import EditorPresence

    sync = url(personas, "workflow_editor_sync", workflow)
    client_for(personas.vera).get(sync, {"seen": 0}, **HTMX)
    assert "Vera" in client_for(personas.bob).get(sync, {"seen": 0}, **HTMX).content.decode()
    EditorPresence.objects.filter(user=personas.vera).update(
        seen_at=timezone.now() - timedelta(seconds=20)
    )
    assert "Vera" not in client_for(personas.bob).get(sync, {"seen": 0}, **HTMX).content.decode()
    assert client_for(personas.charlie).get(sync, {"seen": 0}, **HTMX).status_code == 404


# --- No stale forms from the history --------------------------------------------------------------


def test_editor_pages_and_panels_are_never_stored_by_the_browser(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    editor = url(personas, "workflow_editor", workflow)
    for response in (
        client.get(editor),
        client.get(editor + "?panel=step&step=1", **HTMX, HTTP_HX_TARGET="panel"),
        client.get(editor + "?panel=inputs"),
        save_step(client, personas, workflow, 0, "triage", revision(workflow), title="x"),
        client.post(url(personas, "workflow_step_move", workflow, 1), {"direction": "up"}, **HTMX),
    ):
        assert "no-store" in response["Cache-Control"]


def test_the_editor_tells_htmx_to_refetch_pages_on_history_restore(
    personas: Personas, workflow: Workflow
) -> None:
    html = client_for(personas.bob).get(url(personas, "workflow_editor", workflow)).content.decode()
    config = json.loads(html.split('name="htmx-config" content=\'', 1)[1].split("'", 1)[0])
    assert config["historyCacheSize"] == 0 and config["refreshOnHistoryMiss"] is True


# --- Stored text stays text -----------------------------------------------------------------------


def test_a_markup_payload_in_every_edited_field_is_shown_as_text(
    personas: Personas, workflow: Workflow
) -> None:
    bob = client_for(personas.bob)
    base = revision(workflow)
    save_step(
        bob, personas, workflow, 0, "triage", base, title=PAYLOAD, system=PAYLOAD, prompt=PAYLOAD
    )
    bob.post(url(personas, "workflow_settings_save", workflow), {"description": PAYLOAD}, **HTMX)
    bob.post(
        url(personas, "workflow_inputs_save", workflow), {"input-0-description": PAYLOAD}, **HTMX
    )
    # Alice's stale write to the same title: the conflict notice quotes Bob's and her own text.
    conflict = save_step(
        client_for(personas.alice), personas, workflow, 0, "triage", base, title=PAYLOAD + "!"
    )
    assert conflict.status_code == 409
    editor = url(personas, "workflow_editor", workflow)
    pages = (
        [conflict.content.decode()]
        + [
            bob.get(editor + query).content.decode()
            for query in ("?panel=step&step=0", "?panel=settings", "?panel=inputs")
        ]
        + [
            bob.get(
                url(personas, "workflow_editor_sync", workflow),
                {"seen": base, "open": "step:0"},
                **HTMX,
            ).content.decode()
        ]
    )
    for html in pages:
        assert "<img src=x" not in html and '<span hx-get="/"' not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]


def test_an_outsider_cannot_sync_and_a_viewer_cannot_write(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.vera).post(
        url(personas, "workflow_step_save", workflow, 0),
        {"title": "x", "step_key": "triage"},
        **HTMX,
    )
    assert response.status_code == 403
    assert reverse("workflow_editor_sync", args=[personas.workspace.slug, workflow.id]).endswith(
        "/sync/"
    )


# --- Found in review after the merge ----------------------------------------------------------


def test_a_step_key_given_again_after_a_rename_gets_its_own_edits(
    personas: Personas, workflow: Workflow
) -> None:
    alice = client_for(personas.alice)
    assert (
        save_step(
            alice, personas, workflow, 2, "billing_reply", revision(workflow), key="billing_old"
        ).status_code
        == 200
    )
    assert (
        save_step(
            alice, personas, workflow, 3, "reply", revision(workflow), key="billing_reply"
        ).status_code
        == 200
    )
    assert keys(workflow) == ["triage", "route", "billing_old", "billing_reply"]
    # A form drawn now for the step called billing_reply edits that step, not the one renamed away.
    assert (
        save_step(
            alice, personas, workflow, 3, "billing_reply", revision(workflow), title="Reply title"
        ).status_code
        == 200
    )
    steps = draft(workflow)["steps"]
    assert steps[3].get("title") == "Reply title"
    assert steps[2].get("title") != "Reply title"


def test_a_rename_in_place_is_refused_when_someone_else_renamed_since_the_title_was_drawn(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    settings_url = reverse("workflow_settings_save", args=[personas.workspace.slug, workflow.id])
    assert (
        bob.post(settings_url, {"name": "Bob's name", "rev-name": str(base)}, **HTMX).status_code
        == 200
    )
    rename_url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    response = alice.post(rename_url, {"name": "Alice's name", "rev-name": str(base)}, **HTMX)
    assert response.status_code == 422
    assert "Bob renamed this workflow meanwhile" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.name == "Bob's name"


def test_a_rename_in_place_keeps_what_others_saved_in_other_fields(
    personas: Personas, workflow: Workflow
) -> None:
    base = revision(workflow)
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    assert (
        save_step(bob, personas, workflow, 0, "triage", base, system="Bob's system").status_code
        == 200
    )
    rename_url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    assert (
        alice.post(rename_url, {"name": "Renamed", "rev-name": str(base)}, **HTMX).status_code
        == 200
    )
    definition = draft(workflow)
    assert definition["name"] == "Renamed"
    assert definition["steps"][0]["system"] == "Bob's system"


def test_the_sync_poll_leaves_the_title_and_the_flow_alone_after_only_my_own_write(
    personas: Personas, workflow: Workflow
) -> None:
    alice = client_for(personas.alice)
    base = revision(workflow)
    save_step(alice, personas, workflow, 0, "triage", base, title="Mine")
    response = alice.get(
        reverse("workflow_editor_sync", args=[personas.workspace.slug, workflow.id]),
        {"seen": base, "open": "settings"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="editor-title" hx-swap-oob' not in html
    assert 'id="flow"' not in html


def test_the_sync_poll_survives_a_step_key_with_a_dot(
    personas: Personas, workflow: Workflow
) -> None:
    alice, bob = client_for(personas.alice), client_for(personas.bob)
    assert (
        save_step(
            bob, personas, workflow, 2, "billing_reply", revision(workflow), key="route.cases"
        ).status_code
        == 200
    )
    seen = revision(workflow)
    assert save_step(bob, personas, workflow, 2, "route.cases", seen, title="T").status_code == 200
    response = alice.get(
        reverse("workflow_editor_sync", args=[personas.workspace.slug, workflow.id]),
        {"seen": seen, "open": "step:1"},
        **HTMX,
    )
    assert response.status_code == 200
