"""The workflows page: list, new from a starter, duplicate, archive, delete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from tests.conftest import Personas
from tests.factories import client_for
from workflows import services
from workflows.builder import starters
from workflows.models import Run, Workflow


def make(personas: Personas, slug: str = "summarize", workspace=None) -> Workflow:  # type: ignore[no-untyped-def]
    definition = starters.starter_for(slug).fresh_definition()
    return services.workflow_create(
        workspace=workspace or personas.workspace, definition=definition, user=personas.alice
    )


def add_run(
    workflow: Workflow, *, cost: int, status: str = Run.Status.SUCCEEDED, days_ago: int = 0
) -> Run:
    return Run.objects.create(
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        definition=workflow.definition,
        trigger=Run.Trigger.API,
        status=status,
        cost_nanousd=cost,
        created_at=timezone.now() - timedelta(days=days_ago),
    )


def home(personas: Personas, *args: str) -> str:
    return reverse("workspace_home", args=[personas.workspace.slug, *args])


def test_it_lists_each_workflow_with_its_last_run_and_this_months_runs_and_spend(
    personas: Personas,
) -> None:
    summarize = make(personas)
    make(personas, "translate")
    add_run(summarize, cost=1_500_000, days_ago=40)  # last month: not counted
    add_run(summarize, cost=2_000_000)
    add_run(summarize, cost=500_000, status=Run.Status.FAILED)
    response = client_for(personas.vera).get(home(personas))
    assert response.status_code == 200
    rows = {row.name: row for row in response.context["workflows"]}
    assert rows["Summarize text"].runs_this_month == 2
    assert rows["Summarize text"].spend_text == "$0.002500"
    assert rows["Summarize text"].last_run_status == "failed"
    assert rows["Translate"].runs_this_month == 0 and rows["Translate"].last_run_id is None
    assert b"never run" in response.content


def test_the_list_takes_the_same_number_of_queries_for_many_workflows(
    personas: Personas, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(personas.alice)
    for index in range(30):
        workflow = services.workflow_create(
            workspace=personas.workspace,
            definition={
                **starters.starter_for("summarize").fresh_definition(),
                "name": f"W{index}",
            },
            user=None,
        )
        add_run(workflow, cost=index)
        services.workflow_publish(workflow=workflow, user=None)
    with django_assert_max_num_queries(8):
        response = client.get(home(personas))
    assert len(response.context["workflows"]) == 30


def test_an_empty_workspace_teaches_editors_with_the_starters_and_tells_viewers_whom_to_ask(
    personas: Personas,
) -> None:
    response = client_for(personas.bob).get(home(personas))
    assert b"Build your first workflow" in response.content
    for starter in starters.STARTERS:
        assert starter.name.encode() in response.content
    response = client_for(personas.vera).get(home(personas))
    assert b"No workflows yet" in response.content
    assert b"New workflow" not in response.content
    assert b"Build your first workflow" not in response.content


def test_viewers_see_no_editing_actions(personas: Personas) -> None:
    workflow = make(personas)
    response = client_for(personas.vera).get(home(personas))
    assert workflow.name.encode() in response.content
    for name in ("workflow_duplicate", "workflow_archive", "workflow_delete"):
        assert (
            reverse(name, args=[personas.workspace.slug, workflow.id]).encode()
            not in response.content
        )


def test_an_outsider_gets_a_404(personas: Personas) -> None:
    assert client_for(personas.charlie).get(home(personas)).status_code == 404


def test_new_workflow_page_offers_blank_and_every_starter(personas: Personas) -> None:
    response = client_for(personas.bob).get(reverse("workflow_new", args=[personas.workspace.slug]))
    assert response.status_code == 200
    assert b"Blank workflow" in response.content
    assert len(response.context["starters"]) >= 5


@pytest.mark.parametrize("slug", ["blank", *(starter.slug for starter in starters.STARTERS)])
def test_a_workflow_is_created_from_a_starter_and_opens_in_the_editor(
    personas: Personas, slug: str
) -> None:
    response = client_for(personas.bob).post(
        reverse("workflow_new", args=[personas.workspace.slug]), {"starter": slug}
    )
    workflow = Workflow.objects.get(workspace=personas.workspace)
    assert response.status_code == 302
    assert response["Location"].startswith(
        reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])
    )
    assert services.definition_check(workflow.definition)[1] == []


def test_creating_the_same_starter_twice_gives_a_second_name(personas: Personas) -> None:
    client = client_for(personas.bob)
    for _ in range(3):
        client.post(
            reverse("workflow_new", args=[personas.workspace.slug]), {"starter": "translate"}
        )
    names = sorted(Workflow.objects.values_list("name", flat=True))
    assert names == ["Translate", "Translate (2)", "Translate (3)"]


def test_an_unknown_starter_is_refused_with_a_message(personas: Personas) -> None:
    response = client_for(personas.bob).post(
        reverse("workflow_new", args=[personas.workspace.slug]), {"starter": "nope"}, follow=True
    )
    assert b"Choose how to start" in response.content
    assert not Workflow.objects.exists()


def test_viewers_cannot_create_workflows(personas: Personas) -> None:
    client = client_for(personas.vera)
    url = reverse("workflow_new", args=[personas.workspace.slug])
    assert client.get(url).status_code == 403
    assert client.post(url, {"starter": "blank"}).status_code == 403
    assert not Workflow.objects.exists()


def test_duplicating_copies_the_draft_even_when_it_is_invalid(personas: Personas) -> None:
    workflow = make(personas)
    broken = {**workflow.definition, "steps": [{"key": "s", "type": "llm", "prompt": "{{ nope }}"}]}
    services.workflow_save_draft(workflow=workflow, definition=broken, user=None)
    response = client_for(personas.bob).post(
        reverse("workflow_duplicate", args=[personas.workspace.slug, workflow.id])
    )
    copy = Workflow.objects.exclude(id=workflow.id).get()
    assert response.status_code == 302
    assert copy.name == "Summarize text (copy)"
    assert copy.definition["steps"] == broken["steps"]
    assert AuditEntry.objects.filter(action="workflow.duplicate", target_id=str(copy.id)).exists()


def test_archiving_hides_a_workflow_until_the_archived_filter_shows_it_and_unarchive_brings_it_back(
    personas: Personas,
) -> None:
    workflow = make(personas)
    client = client_for(personas.bob)
    client.post(reverse("workflow_archive", args=[personas.workspace.slug, workflow.id]))
    workflow.refresh_from_db()
    assert workflow.archived_at is not None
    assert client.get(home(personas)).context["workflows"] == []
    archived = client.get(home(personas) + "?archived=1")
    assert [row.id for row in archived.context["workflows"]] == [workflow.id]
    client.post(reverse("workflow_unarchive", args=[personas.workspace.slug, workflow.id]))
    assert [row.id for row in client.get(home(personas)).context["workflows"]] == [workflow.id]
    actions = list(
        AuditEntry.objects.filter(target_id=str(workflow.id)).values_list("action", flat=True)
    )
    assert "workflow.archive" in actions and "workflow.unarchive" in actions


def test_delete_asks_for_the_name_then_deletes(personas: Personas) -> None:
    workflow = make(personas)
    add_run(workflow, cost=1)
    client = client_for(personas.bob)
    url = reverse("workflow_delete", args=[personas.workspace.slug, workflow.id])
    page = client.get(url)
    assert b"1 run" in page.content and b"Type" in page.content
    wrong = client.post(url, {"confirm_name": "nope"})
    assert wrong.status_code == 422 and Workflow.objects.filter(id=workflow.id).exists()
    response = client.post(url, {"confirm_name": workflow.name})
    assert response.status_code == 302
    assert not Workflow.objects.filter(id=workflow.id).exists()


@pytest.mark.parametrize(
    "name", ["workflow_duplicate", "workflow_archive", "workflow_unarchive", "workflow_delete"]
)
def test_list_actions_refuse_viewers_and_outsiders(personas: Personas, name: str) -> None:
    workflow = make(personas)
    url = reverse(name, args=[personas.workspace.slug, workflow.id])
    assert client_for(personas.vera).post(url, {"confirm_name": workflow.name}).status_code == 403
    assert (
        client_for(personas.charlie).post(url, {"confirm_name": workflow.name}).status_code == 404
    )
    assert Workflow.objects.filter(id=workflow.id, archived_at__isnull=True).count() == 1


def test_another_workspaces_workflow_is_a_404_even_for_its_own_members(personas: Personas) -> None:
    theirs = make(personas, workspace=personas.other_workspace)
    url = reverse("workflow_duplicate", args=[personas.workspace.slug, theirs.id])
    assert client_for(personas.alice).post(url).status_code == 404
