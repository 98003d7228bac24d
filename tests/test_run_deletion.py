"""Deleting a run, or all runs of a workflow: admins only, finished runs only, and the spend
stays on the usage page and in the budget (workflows/retention.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEntry, Membership, Role
from tests.conftest import Personas
from tests.factories import api_token, client_for
from tests.test_retention import HOSTILE, assert_blanked, assert_kept, paid_run, usage_figures
from tests.test_retention import days_ago as ago
from tests.test_retention import workflow as new_workflow
from workflows.models import Run

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


def test_an_admin_deletes_every_finished_run_of_a_workflow(
    personas: Personas, runs: dict[str, Run]
) -> None:
    before = usage_figures(personas.workspace)
    flow = runs["done"].workflow_id
    client = client_for(personas.bob)
    listed = client.get(f"/w/{personas.workspace.slug}/runs/?workflow={flow}").content.decode()
    assert "Delete all finished runs of" in listed
    assert "<img src=x" not in listed  # the workflow's hostile name is escaped

    response = client.post(
        f"/w/{personas.workspace.slug}/workflows/{flow}/runs/delete/", follow=True
    )

    text = response.content.decode()
    assert "Deleted 2 runs of" in text
    assert "2 runs not finished yet stayed" in text
    assert usage_figures(personas.workspace) == before
    for name in ("done", "failed"):
        assert_blanked(runs[name])
    for name in ("running", "waiting", "other"):
        assert_kept(runs[name])
    entry = AuditEntry.objects.get(action="workflow.runs_delete")
    assert entry.after == {"runs_deleted": 2}


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
