"""Rules live in the services, which raise domain errors; the API only translates them."""

from __future__ import annotations

import pytest

from tests.conftest import Personas
from tests.factories import GREETING
from workflows import services
from workflows.models import Workflow


def test_creating_a_workflow_with_a_taken_name_raises_workflow_name_taken(
    personas: Personas,
) -> None:
    services.workflow_create(workspace=personas.workspace, definition=GREETING, user=None)

    with pytest.raises(services.WorkflowNameTaken, match="Greeting"):
        services.workflow_create(workspace=personas.workspace, definition=GREETING, user=None)

    assert Workflow.objects.filter(workspace=personas.workspace).count() == 1
    # Another workspace may use the name.
    services.workflow_create(workspace=personas.other_workspace, definition=GREETING, user=None)
