"""Deleting a run, or all runs of a workflow: admins only, finished runs only, and the spend
stays on the usage page and in the budget (workflows/retention.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEntry, Membership, Role
from tests.conftest import Personas
from tests.factories import api_token, client_for
from tests.test_retention import HOSTILE, assert_blanked, assert_kept, paid_run, usage_figures
from tests.test_retention import days_ago as ago
from tests.test_retention import workflow as new_workflow
from workflows import retention
from workflows.models import Run, Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(personas: Personas) -> dict[str, Run]:
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).update(
        role=Role.ADMIN
    )
    # bob is an admin here; vera is made an editor where a test needs one.
    flow = new_workflow(personas.workspace, HOSTILE[:60])
    other = new_workflow(personas.workspace, "Other")
    return {
        "done": paid_run(flow, finished=ago(1), user=personas.alice),
        "failed": paid_run(flow, finished=ago(2), status="failed"),
        "running": paid_run(flow, finished=None, status="running"),
        "waiting": paid_run(flow, finished=None, status="waiting"),
        "other": paid_run(other, finished=ago(1)),
        "theirs": paid_run(new_workflow(personas.other_workspace, "Theirs"), finished=ago(1)),
    }


def url(personas: Personas, run: Run) -> str:
    return f"/w/{personas.workspace.slug}/runs/{run.id}/delete/"


def test_an_admin_deletes_a_finished_run_and_its_spend_stays(
    personas: Personas, runs: dict[str, Run]
) -> None:
    before = usage_figures(personas.workspace)
    client = client_for(personas.bob)
    page = client.get(f"/w/{personas.workspace.slug}/runs/{runs['done'].id}/")
    assert "Delete run #" in page.content.decode()

    response = client.post(url(personas, runs["done"]))

    assert response.status_code == 302
    assert usage_figures(personas.workspace) == before
    assert_blanked(runs["done"])
    assert Run.objects.get(id=runs["done"].id).deleted_at is not None
    assert client.get(f"/w/{personas.workspace.slug}/runs/{runs['done'].id}/").status_code == 404
    listed = client.get(f"/w/{personas.workspace.slug}/runs/").content.decode()
    assert f"#{runs['done'].id}<" not in listed
    assert f"#{runs['failed'].id}<" in listed
    entry = AuditEntry.objects.get(action="run.delete")
    assert (entry.actor, entry.target_id) == (personas.bob, str(runs["done"].id))


@pytest.mark.parametrize("who", ["viewer", "editor"])
def test_viewers_and_editors_may_not_delete(
    personas: Personas, runs: dict[str, Run], who: str
) -> None:
    if who == "editor":
        Membership.objects.filter(user=personas.vera, workspace=personas.workspace).update(
            role=Role.EDITOR
        )
    client = client_for(personas.vera)
    page = client.get(f"/w/{personas.workspace.slug}/runs/{runs['done'].id}/")
    assert "Delete run #" not in page.content.decode()
    assert client.post(url(personas, runs["done"])).status_code == 403
    flow = runs["done"].workflow_id
    assert (
        client.post(f"/w/{personas.workspace.slug}/workflows/{flow}/runs/delete/").status_code
        == 403
    )
    assert_kept(runs["done"])
    assert not AuditEntry.objects.filter(action__in=["run.delete", "workflow.runs_delete"])


def test_another_workspaces_run_is_not_found(personas: Personas, runs: dict[str, Run]) -> None:
    assert client_for(personas.alice).post(url(personas, runs["theirs"])).status_code == 404
    outsider = client_for(personas.charlie).post(url(personas, runs["done"]))
    assert outsider.status_code == 404
    assert_kept(runs["theirs"])
    assert_kept(runs["done"])


def test_it_needs_the_csrf_token(personas: Personas, runs: dict[str, Run]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    assert client.post(url(personas, runs["done"])).status_code == 403
    assert_kept(runs["done"])


def test_an_unfinished_run_is_refused(personas: Personas, runs: dict[str, Run]) -> None:
    client = client_for(personas.alice)
    for name in ("running", "waiting"):
        response = client.post(url(personas, runs[name]), follow=True)
        assert "cancel it first" in response.content.decode()
        assert_kept(runs[name])
        assert Run.objects.get(id=runs[name].id).deleted_at is None


@pytest.fixture
def eager() -> Iterator[None]:
    """Celery's eager mode: a task sent runs in this process, as a worker would run it."""
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def test_an_admin_deletes_every_finished_run_of_a_workflow_in_the_background(
    personas: Personas, runs: dict[str, Run], eager: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    before = usage_figures(personas.workspace)
    flow = runs["done"].workflow_id
    client = client_for(personas.bob)
    listed = client.get(f"/w/{personas.workspace.slug}/runs/?workflow={flow}").content.decode()
    assert "Delete all finished runs of" in listed
    assert "<img src=x" not in listed  # the workflow's hostile name is escaped

    with django_capture_on_commit_callbacks(execute=True) as sent:
        response = client.post(
            f"/w/{personas.workspace.slug}/workflows/{flow}/runs/delete/", follow=True
        )

    assert len(sent) == 1  # the task, sent on commit by the workflow's id
    text = response.content.decode()
    assert "Deleting the finished runs of" in text and "in the background" in text
    assert usage_figures(personas.workspace) == before
    for name in ("done", "failed"):
        assert_blanked(runs[name])
        assert Run.objects.get(id=runs[name].id).deleted_at is not None
    for name in ("running", "waiting", "other"):
        assert_kept(runs[name])
    asked = AuditEntry.objects.get(action="workflow.runs_delete")
    assert asked.actor == personas.bob and asked.target_id == str(flow)
    done = AuditEntry.objects.get(action="workflow.runs_deleted")
    assert done.actor == personas.bob and done.after == {"runs_deleted": 2}
    assert Workflow.objects.get(id=flow).runs_deleting_since is None
    # Done: the list offers the button again, for the runs that finish later.
    listed = client.get(f"/w/{personas.workspace.slug}/runs/?workflow={flow}").content.decode()
    assert "Delete all finished runs of" in listed


def test_the_list_says_the_deletion_is_under_way_and_a_second_request_sends_nothing(
    personas: Personas, runs: dict[str, Run], django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    flow = runs["done"].workflow_id
    client = client_for(personas.bob)
    address = f"/w/{personas.workspace.slug}/workflows/{flow}/runs/delete/"
    with django_capture_on_commit_callbacks() as sent:  # sent, not run: the worker is busy
        client.post(address)
    assert len(sent) == 1
    listed = client.get(f"/w/{personas.workspace.slug}/runs/?workflow={flow}").content.decode()
    assert "are being deleted in the background" in listed
    assert "Delete all finished runs of" not in listed
    assert_kept(runs["done"])  # nothing deleted in the request

    with django_capture_on_commit_callbacks() as sent_again:
        response = client.post(address, follow=True)
    assert not sent_again
    assert "being deleted already" in response.content.decode()
    assert AuditEntry.objects.filter(action="workflow.runs_delete").count() == 1

    # A request whose task never came (the broker lost it) is taken for lost after a while.
    Workflow.objects.filter(id=flow).update(
        runs_deleting_since=timezone.now() - retention.DELETE_STALE_AFTER
    )
    listed = client.get(f"/w/{personas.workspace.slug}/runs/?workflow={flow}").content.decode()
    assert "Delete all finished runs of" in listed
    with django_capture_on_commit_callbacks() as sent_again:
        client.post(address)
    assert len(sent_again) == 1


def test_the_deletion_task_is_harmless_to_repeat_and_to_a_deleted_workflow(
    personas: Personas, runs: dict[str, Run]
) -> None:
    flow = runs["done"].workflow_id
    before = usage_figures(personas.workspace)
    assert retention.workflow_runs_delete(workflow_id=flow, requested_by_id=None) == 2
    assert retention.workflow_runs_delete(workflow_id=flow, requested_by_id=None) == 0
    assert usage_figures(personas.workspace) == before
    assert retention.workflow_runs_delete(workflow_id=10**9, requested_by_id=None) == 0


def test_a_viewer_or_editor_cannot_ask_for_the_deletion(
    personas: Personas, runs: dict[str, Run], django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    flow = runs["done"].workflow_id
    with django_capture_on_commit_callbacks() as sent:
        response = client_for(personas.vera).post(
            f"/w/{personas.workspace.slug}/workflows/{flow}/runs/delete/"
        )
    assert response.status_code == 403
    assert not sent
    assert Workflow.objects.get(id=flow).runs_deleting_since is None


# The API ---------------------------------------------------------------------------------


def test_the_api_deletes_a_finished_run(personas: Personas, runs: dict[str, Run]) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    client = Client()
    before = usage_figures(personas.workspace)
    assert client.delete(f"/api/v1/runs/{runs['done'].id}", **auth).status_code == 204
    assert client.get(f"/api/v1/runs/{runs['done'].id}", **auth).status_code == 404
    assert client.delete(f"/api/v1/runs/{runs['done'].id}", **auth).status_code == 404
    listed = client.get("/api/v1/runs", **auth).json()["items"]
    assert runs["done"].id not in [run["id"] for run in listed]
    assert usage_figures(personas.workspace) == before
    running = client.delete(f"/api/v1/runs/{runs['running'].id}", **auth)
    assert running.status_code == 409
    assert "cancel it first" in running.json()["error"]
    assert client.delete(f"/api/v1/runs/{runs['theirs'].id}", **auth).status_code == 404
    assert_kept(runs["theirs"])
