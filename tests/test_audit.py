"""The audit log: an entry for every team change, and a filterable page for admins."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.audit import audit_record
from accounts.audit_display import entry_diff
from accounts.models import AuditEntry, Membership, Role
from tests.conftest import Personas
from tests.factories import membership
from workflows import services as workflow_services

pytestmark = pytest.mark.django_db

DEFINITION = {
    "name": "Greeter",
    "inputs": [{"name": "who", "type": "text"}],
    "steps": [{"key": "greet", "type": "template", "template": "Hello {{ who }}"}],
}


def member(personas: Personas, user) -> Membership:  # type: ignore[no-untyped-def]
    return Membership.objects.get(workspace=personas.workspace, user=user)


def last(personas: Personas) -> AuditEntry:
    return AuditEntry.objects.filter(workspace=personas.workspace).order_by("-id").first()  # type: ignore[return-value]


def test_each_team_change_leaves_an_entry_with_who_what_and_the_change(personas: Personas) -> None:
    alice = membership(personas.workspace, personas.alice)

    invitation, _ = services.invitation_create(
        workspace=personas.workspace, email="dana@example.com", role=Role.VIEWER, actor=alice
    )
    entry = last(personas)
    assert (entry.action, entry.actor, entry.target_label) == (
        "invitation.create",
        personas.alice,
        "dana@example.com",
    )
    assert entry.after["role"] == "viewer"

    services.invitation_revoke(invitation=invitation, actor=alice)
    assert (last(personas).action, last(personas).before["email"]) == (
        "invitation.revoke",
        "dana@example.com",
    )

    invitation, _ = services.invitation_create(
        workspace=personas.workspace, email="charlie@example.com", role=Role.EDITOR, actor=alice
    )
    services.invitation_accept(invitation=invitation, user=personas.charlie)
    entry = last(personas)
    assert (entry.action, entry.actor, entry.after["role"]) == (
        "invitation.accept",
        personas.charlie,
        "editor",
    )

    services.membership_change_role(
        membership=membership(personas.workspace, personas.bob), role=Role.ADMIN, actor=alice
    )
    entry = last(personas)
    assert (entry.action, entry.before, entry.after) == (
        "member.role_change",
        {"role": "editor"},
        {"role": "admin"},
    )
    assert entry.target_label == "bob@example.com"

    services.membership_remove(
        membership=membership(personas.workspace, personas.charlie), actor=alice
    )
    assert (last(personas).action, last(personas).target_label) == (
        "member.remove",
        "charlie@example.com",
    )

    services.workspace_leave(membership=membership(personas.workspace, personas.vera))
    assert (last(personas).action, last(personas).actor) == ("member.leave", personas.vera)

    services.budget_set(workspace=personas.workspace, budget_nanousd=25_000_000_000, actor=alice)
    entry = last(personas)
    assert (entry.action, entry.before, entry.after) == (
        "budget.change",
        {"monthly_budget": "no limit"},
        {"monthly_budget": "$25.00"},
    )

    old_name = personas.workspace.name
    services.workspace_rename(workspace=personas.workspace, name="Support", actor=alice)
    entry = last(personas)
    assert (entry.action, entry.before, entry.after) == (
        "workspace.rename",
        {"name": old_name},
        {"name": "Support"},
    )


def test_a_new_workspace_starts_its_log_with_its_creation(personas: Personas) -> None:
    entry = AuditEntry.objects.filter(workspace=personas.workspace).order_by("id").first()
    assert (entry.action, entry.actor) == ("workspace.create", personas.alice)  # type: ignore[union-attr]


def test_changes_that_change_nothing_are_not_logged(personas: Personas) -> None:
    alice = membership(personas.workspace, personas.alice)
    before = AuditEntry.objects.count()
    services.membership_change_role(
        membership=membership(personas.workspace, personas.bob), role=Role.EDITOR, actor=alice
    )
    services.workspace_rename(
        workspace=personas.workspace, name=personas.workspace.name, actor=alice
    )
    services.budget_set(workspace=personas.workspace, budget_nanousd=None, actor=alice)
    assert AuditEntry.objects.count() == before


def test_a_refused_change_leaves_no_entry(personas: Personas) -> None:
    alice = membership(personas.workspace, personas.alice)
    before = AuditEntry.objects.count()
    with pytest.raises(services.MembershipRefused):
        services.workspace_leave(membership=alice)
    assert AuditEntry.objects.count() == before


def test_admins_see_the_log_and_others_do_not(client: Client, personas: Personas) -> None:
    url = f"/w/{personas.workspace.slug}/audit/"
    client.force_login(personas.vera)
    assert client.get(url).status_code == 403
    client.force_login(personas.bob)
    assert client.get(url).status_code == 403
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    assert client.get(url).status_code == 200
    client.force_login(personas.charlie)
    assert client.get(url).status_code == 404


def test_the_page_shows_workflow_changes_as_a_readable_diff(
    client: Client, personas: Personas
) -> None:
    workflow = workflow_services.workflow_create(
        workspace=personas.workspace, definition=DEFINITION, user=personas.bob
    )
    edited = {
        **DEFINITION,
        "steps": [{"key": "greet", "type": "template", "template": "Good morning {{ who }}"}],
    }
    workflow_services.workflow_save_draft(workflow=workflow, definition=edited, user=personas.bob)
    workflow_services.workflow_publish(workflow=workflow, user=personas.bob, summary="Warmer")

    client.force_login(personas.alice)
    page = client.get(f"/w/{personas.workspace.slug}/audit/").content.decode()
    assert "Published a workflow: <strong><bdi>Greeter</bdi></strong>" in page
    assert "Edited a workflow" in page and "Created a workflow" in page
    assert (
        '<span class="diff-del">-      &quot;template&quot;: &quot;Hello {{ who }}&quot;,</span>'
        in page
    )
    assert (
        '<span class="diff-add">+      &quot;template&quot;: &quot;Good morning {{ who '
        "}}&quot;,</span>"
    ) in page
    assert "Bob" in page


def test_the_page_shows_a_role_change_as_before_and_after(
    client: Client, personas: Personas
) -> None:
    services.membership_change_role(
        membership=membership(personas.workspace, personas.vera),
        role=Role.EDITOR,
        actor=membership(personas.workspace, personas.alice),
    )
    client.force_login(personas.alice)
    page = client.get(f"/w/{personas.workspace.slug}/audit/").content.decode()
    assert '<del class="audit-old">viewer</del>' in page
    assert '<ins class="audit-new">editor</ins>' in page


def test_it_filters_by_action_actor_and_dates(client: Client, personas: Personas) -> None:
    alice = membership(personas.workspace, personas.alice)
    services.membership_change_role(
        membership=membership(personas.workspace, personas.vera), role=Role.EDITOR, actor=alice
    )
    services.workspace_leave(membership=membership(personas.workspace, personas.bob))
    old = audit_record(
        workspace=personas.workspace,
        actor=personas.alice,
        action="budget.change",
        target=personas.workspace,
        after={"monthly_budget": "$1.00"},
    )
    AuditEntry.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=40))

    client.force_login(personas.alice)
    url = f"/w/{personas.workspace.slug}/audit/"

    def actions(**filters: str) -> list[str]:
        page = client.get(url, filters).content.decode()
        return re.findall(r'<code class="text-xs muted">([a-z_.]+)</code>', page)

    assert actions(action="member.leave") == ["member.leave"]
    assert actions(actor="bob@example.com") == ["member.leave"]
    today = timezone.now().date()
    assert actions(until=str(today - timedelta(days=30))) == ["budget.change"]
    assert "budget.change" not in actions(since=str(today - timedelta(days=1)))
    assert actions(actor="alice@example.com", action="member.role_change") == ["member.role_change"]


def test_contradicting_dates_are_a_form_error_not_a_crash(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    response = client.get(
        f"/w/{personas.workspace.slug}/audit/", {"since": "2026-05-02", "until": "2026-05-01"}
    )
    assert response.status_code == 200
    assert "The end date is before the start date." in response.content.decode()
    response = client.get(
        f"/w/{personas.workspace.slug}/audit/", {"since": "yesterday", "page": "x"}
    )
    assert response.status_code == 200


def test_it_is_paginated_and_keeps_the_filters_across_pages(
    client: Client, personas: Personas
) -> None:
    AuditEntry.objects.bulk_create(
        AuditEntry(
            workspace=personas.workspace,
            actor=personas.alice,
            actor_email="alice@example.com",
            action="workspace.rename",
            target_label=f"Name {n}",
        )
        for n in range(120)
    )
    client.force_login(personas.alice)
    url = f"/w/{personas.workspace.slug}/audit/"
    page = client.get(url, {"action": "workspace.rename"}).content.decode()
    assert "Page 1 of 3" in page
    assert "?action=workspace.rename&amp;page=2" in page
    assert (
        "Page 3 of 3" in client.get(url, {"action": "workspace.rename", "page": 3}).content.decode()
    )


def test_the_log_page_makes_a_fixed_number_of_queries(
    client: Client, personas: Personas, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for n in range(30):
        audit_record(
            workspace=personas.workspace,
            actor=personas.bob,
            action="workflow.edit",
            label=f"W{n}",
            before={"a": n},
            after={"a": n + 1},
        )
    client.force_login(personas.alice)
    with django_assert_max_num_queries(12):
        assert client.get(f"/w/{personas.workspace.slug}/audit/").status_code == 200


def test_a_nested_change_becomes_a_unified_diff_and_a_flat_one_field_changes() -> None:
    flat = entry_diff({"role": "viewer", "email": "a@b.c"}, {"role": "admin", "email": "a@b.c"})
    assert [(c.name, c.before, c.after) for c in flat.fields] == [("role", "viewer", "admin")]
    nested = entry_diff({"steps": [{"prompt": "a"}]}, {"steps": [{"prompt": "b"}]})
    assert ("del", '-      "prompt": "a"') in nested.lines and (
        "add",
        '+      "prompt": "b"',
    ) in nested.lines
    created = entry_diff(None, {"steps": [1, 2]})
    assert created.snapshot_label == "After" and '"steps"' in created.snapshot
    assert entry_diff(None, None).is_empty


def test_autosaves_of_one_editing_session_make_one_edit_entry(personas) -> None:  # type: ignore[no-untyped-def]
    from accounts.models import AuditEntry
    from tests.test_engine import TRIAGE
    from workflows import services

    workflow = services.workflow_create(
        workspace=personas.workspace, definition=TRIAGE, user=personas.bob
    )
    for tone in ("warm", "formal", "brief"):
        draft = {**workflow.definition, "description": f"Replies in a {tone} tone"}
        services.workflow_save_draft(workflow=workflow, definition=draft, user=personas.bob)
    edits = AuditEntry.objects.filter(action="workflow.edit", target_id=str(workflow.pk))
    assert edits.count() == 1
    services.workflow_save_draft(
        workflow=workflow,
        definition={**workflow.definition, "description": "x"},
        user=personas.alice,
    )
    assert edits.count() == 2  # another person's edit is its own entry
