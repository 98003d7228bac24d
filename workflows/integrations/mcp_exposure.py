"""Which workflows are MCP tools: an admin exposes a workflow at /mcp (off by default).

A workflow gets its tool name (`mcp_tools.tool_name_for`) the first time it is
exposed and keeps it: through renames, and when it is hidden and exposed again,
since agents' configurations and prompts name the tool.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.audit import audit_record
from accounts.models import User
from workflows import selectors
from workflows.integrations.mcp_tools import tool_name_for
from workflows.models import Workflow

# Two workflows whose names make the same tool name, exposed at the same moment: the
# unique constraint refuses one, which then picks again.
NAME_ATTEMPTS = 3


@transaction.atomic
def workflow_mcp_expose(*, workflow: Workflow, exposed: bool, user: User | None) -> Workflow:
    """Expose the workflow as a tool of its workspace's tokens at /mcp, or hide it."""
    name_before = workflow.mcp_name
    before = {"mcp_exposed": workflow.mcp_exposed, "mcp_name": name_before}
    for attempt in range(NAME_ATTEMPTS):
        if exposed and not workflow.mcp_name:
            taken = selectors.mcp_names_taken(workflow.workspace_id)
            workflow.mcp_name = tool_name_for(workflow.name, taken)
        workflow.mcp_exposed = exposed
        try:
            with transaction.atomic():
                workflow.save(update_fields=["mcp_exposed", "mcp_name"])
            break
        except IntegrityError:
            if attempt == NAME_ATTEMPTS - 1:
                raise
            workflow.mcp_name = name_before
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="workflow.mcp_expose",
        target=workflow,
        before=before,
        after={"mcp_exposed": workflow.mcp_exposed, "mcp_name": workflow.mcp_name},
    )
    return workflow
