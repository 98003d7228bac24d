"""Realistic data for screenshots and demos, made through the services and a real worker.

`seed_workspace()` signs up a team, creates three workflows (one of them
triage with a condition), publishes them, and runs them on whatever worker
listens (the test's `worker` fixture, or `make demo`'s). The fake OpenAI
server is scripted by `[[fake:...]]` directives in the *system* messages, so
the answers read like real ones and the steps take realistic time; once the
runs are done, the directives are taken out of the workflows (a new version),
so the editor shows clean prompts.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field

from accounts.models import Membership, Role, User, Workspace
from accounts.services import user_signup
from accounts.verification import email_verify, verification_token
from workflows import services
from workflows.models import Run, Workflow

PASSWORD = "correct horse battery staple"
DIRECTIVE = re.compile(r"\s*\[\[fake:[^\]]*\]\]")

TRIAGE = {
    "name": "Support triage",
    "description": "Classify an incoming ticket, then draft the right kind of reply.",
    "inputs": [
        {"name": "ticket", "type": "text", "description": "The customer's message"},
        {"name": "tone", "type": "text", "required": False, "default": "friendly"},
    ],
    "steps": [
        {
            "key": "triage",
            "title": "Classify the ticket",
            "type": "llm",
            "system": (
                "You triage support tickets for Acme Cloud. Answer in JSON. "
                "[[fake:choose=billing]] [[fake:latency=1100]]"
            ),
            "prompt": "Classify this ticket:\n\n{{ ticket }}",
            "temperature": 0,
            "max_tokens": 200,
            "response_format": {
                "type": "json_schema",
                "name": "triage",
                "schema": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
                        "urgent": {"type": "boolean"},
                    },
                    "required": ["category", "urgent"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "key": "route",
            "title": "Billing question?",
            "type": "condition",
            "cases": [
                {
                    "left": "{{ triage.category }}",
                    "op": "equals",
                    "right": "billing",
                    "goto": "billing_reply",
                }
            ],
            "else": "reply",
        },
        {
            "key": "billing_reply",
            "title": "Draft a billing reply",
            "type": "llm",
            "system": (
                "You answer billing questions for Acme Cloud in a {{ tone }} voice. "
                "[[fake:reply=Hi Sam, thanks for flagging this. You were charged twice "
                "because the plan change "
                "on March 3 created a second invoice. I have refunded the duplicate charge "
                "of $49.00; it will be "
                "back on your card within 5 business days. Sorry for the trouble! Priya, "
                "Acme Support]] "
                "[[fake:latency=2300]]"
            ),
            "prompt": "Write a reply to this customer:\n\n{{ ticket }}",
            "next": "polish",
        },
        {
            "key": "reply",
            "title": "Draft a general reply",
            "type": "llm",
            "system": "You answer support tickets for Acme Cloud in a {{ tone }} voice.",
            "prompt": "Write a reply to this customer:\n\n{{ ticket }}",
        },
        {
            "key": "polish",
            "title": "Sign and format",
            "type": "template",
            "template": (
                "{{ billing_reply }}{{ reply }}\n\n--\nAcme Cloud Support · support@acme.example"
            ),
        },
    ],
    "output": "{{ polish }}",
}

BLOG = {
    "name": "Blog post: outline then draft",
    "description": "Outline a post from a topic, then write the draft from the outline.",
    "inputs": [
        {"name": "topic", "type": "text"},
        {"name": "audience", "type": "text", "required": False, "default": "support team leads"},
    ],
    "steps": [
        {
            "key": "outline",
            "title": "Outline",
            "type": "llm",
            "system": (
                "You outline blog posts. [[fake:reply=1. Why the first week decides "
                "retention\n2. A buddy for "
                "every new agent\n3. Shadow, then reverse-shadow\n4. A ticket ladder from "
                "easy to hard\n5. "
                "Measure confidence, not only speed]] [[fake:latency=1600]]"
            ),
            "prompt": "Outline a blog post about {{ topic }} for {{ audience }}, in five points.",
        },
        {
            "key": "draft",
            "title": "Draft",
            "type": "llm",
            "system": (
                "You write warm, concrete blog posts. [[fake:reply=Onboarding a support "
                "agent is a bet on the "
                "next two years of your team. In the first week, pair every new agent with a "
                "buddy who "
                "answers the questions nobody wants to ask in a channel...]] [[fake:latency=3400]]"
            ),
            "prompt": "Write the post from this outline:\n\n{{ outline }}",
            "max_tokens": 1500,
        },
    ],
}

TRANSLATE = {
    "name": "Translate release notes",
    "description": (
        "Translate English release notes into French, keeping product names as they are."
    ),
    "inputs": [{"name": "notes", "type": "text"}],
    "steps": [
        {
            "key": "translate",
            "title": "Translate to French",
            "type": "llm",
            "system": (
                "You translate software release notes into French. Keep product names in "
                "English. [[fake:500]]"
            ),
            "prompt": "{{ notes }}",
        },
    ],
}

TICKETS = [
    "Hi, I was charged twice for my March invoice (two charges of $49). Can you refund one? "
    "Thanks, Sam",
    "The export to CSV button does nothing since yesterday's update. Chrome 131 on macOS.",
    "Do you offer a discount for nonprofits? We're a small food bank.",
]


@dataclass
class Seeded:
    workspace: Workspace
    owner: User
    viewer: User
    workflows: dict[str, Workflow] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)


def wait_for(run: Run, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise AssertionError(f"Run {run.id} did not finish within {timeout} s ({run.status})")


def seed_workspace(email: str = "priya@acme.example", password: str = PASSWORD) -> Seeded:
    owner, workspace = user_signup(email=email, password=password, name="Priya Raman")
    # Confirmed with the token their link would carry, so they can log in through the form.
    owner = email_verify(token=verification_token(owner))
    workspace.name = "Acme Support"
    workspace.save(update_fields=["name"])
    viewer, _ = user_signup(email=f"viewer.{email}", password=password, name="Victor Lee")
    viewer = email_verify(token=verification_token(viewer))
    Membership.objects.create(user=viewer, workspace=workspace, role=Role.VIEWER)
    seeded = Seeded(workspace=workspace, owner=owner, viewer=viewer)

    for definition in (TRIAGE, BLOG, TRANSLATE):
        workflow = services.workflow_create(workspace=workspace, definition=definition, user=owner)
        services.workflow_publish(workflow=workflow, user=owner, summary="First version")
        seeded.workflows[definition["name"]] = workflow
    triage = seeded.workflows["Support triage"]
    services.workflow_publish(
        workflow=triage, user=owner, summary="Sign replies with the support address"
    )

    started = [
        services.run_start(
            workflow=triage, trigger=Run.Trigger.MANUAL, inputs={"ticket": t}, user=owner
        )
        for t in TICKETS
    ]
    started.append(
        services.run_start(
            workflow=seeded.workflows["Blog post: outline then draft"],
            trigger=Run.Trigger.MANUAL,
            inputs={"topic": "onboarding new support agents"},
            user=owner,
        )
    )
    # Version 1 of the translation fails (the model keeps answering 500); version 2 works.
    translate = seeded.workflows["Translate release notes"]
    failing = services.run_start(
        workflow=translate,
        trigger=Run.Trigger.WEBHOOK,
        payload={"release": "4.2"},
        inputs={"notes": "New: single sign-on for every plan. Fixed: slow CSV exports."},
    )
    wait_for(failing)
    without_directives(translate, "Retry-safe system prompt")
    started.append(
        services.run_start(
            workflow=translate,
            trigger=Run.Trigger.API,
            inputs={"notes": "Exports are now 3x faster. Fixed: the CSV button on Safari."},
            user=None,
        )
    )
    started.append(failing)
    seeded.runs = [wait_for(run) for run in started]
    for name in ("Support triage", "Blog post: outline then draft"):
        without_directives(seeded.workflows[name], "Shorter system prompt")
    return seeded


def without_directives(workflow: Workflow, summary: str) -> None:
    """Publish the workflow again without the fake server's directives."""
    definition = copy.deepcopy(workflow.definition)
    for step in definition["steps"]:
        for field_name in ("system", "prompt"):
            if field_name in step:
                step[field_name] = DIRECTIVE.sub("", step[field_name])
    services.workflow_save_draft(workflow=workflow, definition=definition, user=None)
    services.workflow_publish(workflow=workflow, user=None, summary=summary)
