"""Rules live in the services, which raise domain errors; the API only translates them."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from tests.conftest import Personas
from tests.factories import GREETING, run_row
from workflows import services
from workflows.models import Run, Workflow


def test_creating_a_workflow_with_a_taken_name_raises_workflow_name_taken(
    personas: Personas,
) -> None:
    services.workflow_create(workspace=personas.workspace, definition=GREETING, user=None)

    with pytest.raises(services.WorkflowNameTaken, match="Greeting"):
        services.workflow_create(workspace=personas.workspace, definition=GREETING, user=None)

    assert Workflow.objects.filter(workspace=personas.workspace).count() == 1
    # Another workspace may use the name.
    services.workflow_create(workspace=personas.other_workspace, definition=GREETING, user=None)


def test_a_draft_edit_to_a_taken_name_raises_workflow_name_taken_and_writes_nothing(
    personas: Personas,
) -> None:
    services.workflow_create(workspace=personas.workspace, definition=GREETING, user=None)
    other = services.workflow_create(
        workspace=personas.workspace, definition={**GREETING, "name": "Other"}, user=None
    )

    with pytest.raises(services.WorkflowNameTaken, match="Greeting"):
        services.workflow_name_check(workflow=other, name="Greeting")
    with pytest.raises(services.WorkflowNameTaken, match="Greeting"):
        services.workflow_save_draft(workflow=other, definition=GREETING, user=None)

    other.refresh_from_db()
    assert other.name == "Other" and other.definition["name"] == "Other"
    # Its own name is not taken by itself.
    services.workflow_name_check(workflow=other, name="Other")


def test_a_run_that_did_not_fail_raises_run_not_resumable(personas: Personas) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=GREETING, user=None
    )
    succeeded = run_row(workflow)

    with pytest.raises(services.RunNotResumable, match="Only a failed or canceled run"):
        services.run_resume(run=succeeded, user=None)

    failed = run_row(workflow, status=Run.Status.FAILED)
    assert services.run_resume(run=failed, user=None).resumed_from_id == failed.id


def test_a_viewer_canceling_someone_elses_run_raises_not_allowed_to_cancel(
    personas: Personas,
) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=GREETING, user=None
    )
    theirs = run_row(workflow, status=Run.Status.RUNNING, finished_at=None, created_by=personas.bob)
    mine = run_row(workflow, status=Run.Status.RUNNING, finished_at=None, created_by=personas.vera)
    vera = Membership.objects.get(workspace=personas.workspace, user=personas.vera)
    bob = Membership.objects.get(workspace=personas.workspace, user=personas.bob)

    with pytest.raises(services.NotAllowedToCancel, match="needs the editor role"):
        services.run_cancel(run=theirs, membership=vera)

    assert services.run_cancel(run=mine, membership=vera)
    assert services.run_cancel(run=theirs, membership=bob)
