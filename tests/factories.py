"""Objects for the tests, made the way the product makes them: through its services.

One copy of each, imported by the test modules (they used to keep their own).
Fixtures that hand these out per test (`personas`, `hook`) live in conftest.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.test import Client
from django.utils import timezone
from standardwebhooks import Webhook

from accounts.models import Membership, User, Workspace
from accounts.services import user_signup
from accounts.verification import email_verify, verification_token
from workflows import services
from workflows.integrations import api_auth, triggers
from workflows.models import Run, StepRun, Workflow, WorkflowVersion

PASSWORD = "correct horse battery staple"

# Extra headers of a request made by htmx.
HTMX = {"HTTP_HX_REQUEST": "true"}

# A workflow that calls no model: its runs need no fake server.
GREETING = {
    "name": "Greeting",
    "description": "Greets someone, without calling a model",
    "inputs": [
        {"name": "who", "type": "text"},
        {"name": "times", "type": "number", "required": False, "default": 1},
    ],
    "steps": [
        {
            "key": "greet",
            "type": "template",
            "template": "Hello {{ who }} x{{ times }} from {{ payload.source }}",
        },
    ],
}


# --- People -----------------------------------------------------------------------------


def signed_up(email: str, name: str = "", password: str = PASSWORD) -> tuple[User, Workspace]:
    """A person who signed up and confirmed their address with the link's token."""
    user, workspace = user_signup(email=email, password=password, name=name)
    return email_verify(token=verification_token(user)), workspace


def membership(workspace: Workspace, user: User) -> Membership:
    return Membership.objects.get(workspace=workspace, user=user)


def client_for(user: User) -> Client:
    """A test client logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client


def api_token(workspace: Workspace, user: User, name: str = "tests") -> str:
    """The value of a new API token of the workspace, created by `user`."""
    return api_auth.token_create(workspace=workspace, name=name, user=user).value


# --- Workflows and runs -----------------------------------------------------------------


def chain(name: str, prompts: list[str]) -> dict:
    """A definition of LLM steps s1, s2, ... in a row, one per prompt, on a `topic` input."""
    steps = [
        {"key": f"s{i}", "type": "llm", "prompt": prompt, "max_tokens": 50}
        for i, prompt in enumerate(prompts, start=1)
    ]
    return {"name": name, "inputs": [{"name": "topic", "type": "text"}], "steps": steps}


def published_workflow(workspace: Workspace, definition: dict | None = None) -> Workflow:
    workflow = services.workflow_create(
        workspace=workspace, definition=definition or GREETING, user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    return workflow


def workflow_with_versions(
    workspace: Workspace, definition: dict, versions: int = 1
) -> tuple[Workflow, WorkflowVersion]:
    """A workflow published `versions` times, and its last version."""
    workflow = services.workflow_create(workspace=workspace, definition=definition, user=None)
    for _ in range(versions):
        version = services.workflow_publish(workflow=workflow, user=None)
    return workflow, version


def run_started(workspace: Workspace, definition: dict, inputs: dict) -> Run:
    """A run of a freshly published workflow, started by hand (enqueued on commit)."""
    workflow = published_workflow(workspace, definition)
    return services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs)


def run_row(workflow: Workflow, version: WorkflowVersion | None = None, **fields: object) -> Run:
    """A run row as the engine leaves it, for tests that read runs (no engine involved)."""
    now = timezone.now()
    values: dict[str, object] = {
        "workspace_id": workflow.workspace_id,
        "workflow": workflow,
        "version": version,
        "definition": (version.definition if version else workflow.definition),
        "trigger": Run.Trigger.MANUAL,
        "status": Run.Status.SUCCEEDED,
        "inputs": {"topic": "otters"},
        "started_at": now - timedelta(seconds=3),
        "finished_at": now,
    }
    values.update(fields)
    return Run.objects.create(**values)


def steps_of(run: Run) -> dict[str, StepRun]:
    return {s.key: s for s in run.steps.all()}


# --- Webhooks ---------------------------------------------------------------------------


def webhook_trigger(workspace: Workspace, user: User | None) -> triggers.TriggerWithSecret:
    """A webhook trigger of a published GREETING workflow, with its secret."""
    return triggers.trigger_create(workflow=published_workflow(workspace), user=user)


def signed(
    secret: str, body: str, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers made by the reference library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def hook_path(url: str) -> str:
    return url[url.index("/hooks/") :]
