"""Approval emails count against the limits on mail people can make the
server send (APPROVAL_MAILS_PER_APPROVER, APPROVAL_MAILS_PER_STARTER): a map over a
workflow that asks for approval cannot mail-bomb the editors. A held email
is said on the step and on the run page, where the decision is still made."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client

from accounts.models import MailRequest
from tests.conftest import Personas
from tests.factories import api_token, client_for, published_workflow, steps_of
from tests.test_approval import approval_flow, decide_url, links_in_outbox, page_url, start
from workflows import services
from workflows.models import Run, StepRun


def sent_to(email: str) -> int:
    return sum(1 for message in mail.outbox if message.to == [email])


def test_approval_emails_are_held_past_the_limit_per_approver_and_the_step_says_so(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.APPROVAL_MAILS_PER_APPROVER = 2
    flow = published_workflow(personas.workspace, approval_flow())
    mail.outbox.clear()
    first, second = start(flow), start(flow)
    assert sent_to("alice@example.com") == 2 and sent_to("bob@example.com") == 2
    for run in (first, second):
        assert "emails_held" not in (steps_of(run)["approve"].state or {})

    third = start(flow)
    assert third.status == Run.Status.WAITING
    assert len(mail.outbox) == 4  # nothing more for the third
    step = steps_of(third)["approve"]
    assert step.status == StepRun.Status.WAITING
    assert step.state["emails_held"] == ["alice@example.com", "bob@example.com"]
    assert MailRequest.objects.filter(kind=MailRequest.Kind.APPROVAL).count() == 4

    # The run page says it beside the pending decision, and the decision is made there.
    page = client_for(personas.bob).get(page_url(third))
    html = page.content.decode()
    assert 'id="decision-emails-held"' in html
    assert "Not emailed: alice@example.com, bob@example.com." in html
    assert 'id="decision-form"' in html
    decided = client_for(personas.bob).post(
        decide_url(third), {"decision": "approve", "step_key": "approve"}
    )
    assert decided.status_code == 302
    third.refresh_from_db()
    assert third.status == Run.Status.SUCCEEDED and third.output == "published (bob@example.com)"
    # The decision is kept beside the note.
    state = steps_of(third)["approve"].state
    assert state["decision"]["by"] == "bob@example.com" and state["emails_held"]

    # The API says it too.
    token = api_token(personas.workspace, personas.alice)
    body = Client(headers={"Authorization": f"Bearer {token}"}).get(f"/api/v1/runs/{third.id}")
    decision = body.json()["steps"][0]["decision"]
    assert decision["emails_held"] == ["alice@example.com", "bob@example.com"]
    first_body = Client(headers={"Authorization": f"Bearer {token}"}).get(
        f"/api/v1/runs/{first.id}"
    )
    assert first_body.json()["steps"][0]["decision"]["emails_held"] == []


def test_the_emails_still_sent_keep_their_decision_links_working(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.APPROVAL_MAILS_PER_APPROVER = 1
    start(published_workflow(personas.workspace, approval_flow(approvers=["bob@example.com"])))
    mail.outbox.clear()
    # Bob's quota is spent; a run naming Alice and Bob emails Alice only.
    run = start(
        published_workflow(
            personas.workspace,
            approval_flow(approvers=["alice@example.com", "bob@example.com"]) | {"name": "Both"},
        )
    )
    links = links_in_outbox()
    assert set(links) == {"alice@example.com"}
    assert steps_of(run)["approve"].state["emails_held"] == ["bob@example.com"]
    path = "/" + links["alice@example.com"].split("/", 3)[3]
    alice = client_for(personas.alice)
    assert alice.get(path).status_code == 200
    alice.post(path, {"decision": "reject", "comment": "not now"})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.output == "dropped: not now"


def test_a_map_over_a_workflow_asking_for_approval_cannot_mail_bomb_the_approver(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.APPROVAL_MAILS_PER_APPROVER = 3
    asks = published_workflow(
        personas.workspace, approval_flow(approvers=["bob@example.com"]) | {"name": "Asks"}
    )
    mapper = published_workflow(
        personas.workspace,
        {
            "name": "Many asks",
            "inputs": [{"name": "texts", "type": "json"}],
            "steps": [
                {
                    "key": "each",
                    "type": "map",
                    "over": "{{ texts }}",
                    "concurrency": 10,
                    "workflow": asks.id,
                    "inputs": {"text": "{{ item }}"},
                }
            ],
        },
    )
    mail.outbox.clear()
    run = services.run_start(
        workflow=mapper,
        trigger=Run.Trigger.MANUAL,
        inputs={"texts": json.dumps([f"item {n}" for n in range(10)])},
        user=personas.alice,
    )
    children = Run.objects.filter(parent=run)
    assert children.count() == 10
    assert all(child.status == Run.Status.WAITING for child in children)
    assert sent_to("bob@example.com") == 3 and len(mail.outbox) == 3
    held = [
        child.id
        for child in children
        if (steps_of(child)["approve"].state or {}).get("emails_held") == ["bob@example.com"]
    ]
    assert len(held) == 7


def test_the_limit_per_member_counts_the_approval_emails_of_the_runs_they_start(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.APPROVAL_MAILS_PER_STARTER = 1
    flow = published_workflow(personas.workspace, approval_flow())
    mail.outbox.clear()
    run = services.run_start(
        workflow=flow, trigger=Run.Trigger.MANUAL, inputs={"text": "x"}, user=personas.bob
    )
    # Alice (the first approver) is emailed; the second email is one too many for Bob's runs.
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    assert steps_of(run)["approve"].state["emails_held"] == ["bob@example.com"]


def test_approval_emails_do_not_use_up_the_invitations_allowance(
    engine_in_process: None, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.APPROVAL_MAILS_PER_STARTER = 1
    flow = published_workflow(personas.workspace, approval_flow(approvers=["bob@example.com"]))
    services.run_start(
        workflow=flow, trigger=Run.Trigger.MANUAL, inputs={"text": "x"}, user=personas.alice
    )
    assert MailRequest.objects.filter(kind=MailRequest.Kind.APPROVAL).count() == 1
    client = client_for(personas.alice)
    invited = client.post(
        f"/w/{personas.workspace.slug}/invitations/", {"email": "new@example.com", "role": "viewer"}
    )
    assert invited.status_code == 303


@pytest.mark.parametrize("held", [[], ["bob@example.com"]])
def test_a_step_without_held_emails_says_nothing_about_them(
    engine_in_process: None, personas: Personas, settings, held: list[str]
) -> None:  # type: ignore[no-untyped-def]
    settings.APPROVAL_MAILS_PER_APPROVER = 3 if not held else 0
    run = start(
        published_workflow(personas.workspace, approval_flow(approvers=["bob@example.com"]))
    )
    html = client_for(personas.bob).get(page_url(run)).content.decode()
    assert ('id="decision-emails-held"' in html) == bool(held)
