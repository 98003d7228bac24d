"""The `approval` step: a run parks until a member decides (the run page,
an emailed link, the API) or its timeout, and goes on with the decision as
the step's output. The engine runs in this process (engine_in_process)."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import close_old_connections, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Membership, Role
from config.lib.log_scrub import scrub
from tests.conftest import Personas
from tests.factories import api_token, client_for, membership, published_workflow, steps_of
from workflows import services
from workflows.models import Run, StepRun, Workflow
from workflows.runtime import engine
from workflows.steps.decisions import iso, link_token

HOSTILE = '<img src=x onerror=alert(1)> <div hx-post="/w/x/runs/1/cancel/" hx-trigger="load">'


def approval_flow(**step: object) -> dict:
    return {
        "name": "Publish",
        "inputs": [{"name": "text", "type": "text"}],
        "steps": [
            {"key": "approve", "type": "approval", "message": "Publish this? {{ text }}", **step},
            {
                "key": "route",
                "type": "condition",
                "cases": [
                    {
                        "left": "{{ approve.approved }}",
                        "op": "equals",
                        "right": "true",
                        "goto": "yes",
                    }
                ],
                "else": "no",
            },
            {
                "key": "yes",
                "type": "template",
                "template": "published ({{ approve.by }})",
                "next": "end",
            },
            {"key": "no", "type": "template", "template": "dropped: {{ approve.comment }}"},
        ],
    }


def start(workflow: Workflow, text: str = "the draft") -> Run:
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"text": text})
    run.refresh_from_db()
    return run


@pytest.fixture
def flow(personas: Personas) -> Workflow:
    return published_workflow(personas.workspace, approval_flow())


def page_url(run: Run) -> str:
    return reverse("run_detail", args=[run.workspace.slug, run.id])


def decide_url(run: Run) -> str:
    return reverse("run_decide", args=[run.workspace.slug, run.id])


# --- the step ---------------------------------------------------------------------------


def test_it_parks_the_run_asking_for_a_decision_and_holds_nothing(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    before = timezone.now()
    run = start(flow)
    assert run.status == Run.Status.WAITING and run.waiting_for == Run.WaitingFor.DECISION
    assert run.status_label == "Waiting for approval"
    assert run.lease_owner == "" and run.lease_expires_at is None
    assert run.wake_at is not None
    assert before + timedelta(days=7) <= run.wake_at <= timezone.now() + timedelta(days=7)
    step = steps_of(run)["approve"]
    assert step.status == StepRun.Status.WAITING
    assert step.state is not None
    assert step.state["message"] == "Publish this? the draft"
    assert step.state["approvers"] == [] and step.state["on_timeout"] == "reject"
    assert "route" not in steps_of(run)


def test_an_editor_approves_on_the_run_page_and_a_condition_routes_on_it(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    page = client_for(personas.bob).get(page_url(run)).content.decode()
    assert 'id="decision-banner"' in page and "Waiting for approval" in page
    assert 'id="decision-approve"' in page and "Publish this? the draft" in page

    answer = client_for(personas.bob).post(
        decide_url(run), {"decision": "approve", "comment": "ship it", "step_key": "approve"}
    )
    assert answer.status_code == 302 and answer["Location"] == page_url(run)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == "published (bob@example.com)"
    output = steps_of(run)["approve"].output
    assert output["approved"] is True and output["by"] == "bob@example.com"
    assert output["comment"] == "ship it" and output["at"].endswith("Z")
    assert set(output) == {"approved", "by", "comment", "at"}
    assert steps_of(run)["no"].status == StepRun.Status.SKIPPED
    entry = AuditEntry.objects.get(action="run.decision")
    assert entry.actor == personas.bob and entry.workspace == personas.workspace
    assert entry.target_id == str(run.id)
    assert entry.after == {"step": "approve", "approved": True, "comment": "ship it", "via": "page"}
    # Decided: no banner, no buttons.
    after = client_for(personas.bob).get(page_url(run)).content.decode()
    assert 'id="decision-banner"' not in after


def test_a_rejection_goes_the_other_way_with_its_comment(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    services.run_decide(
        run=run,
        membership=membership(personas.workspace, personas.alice),
        approve=False,
        comment="not yet",
    )
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.output == "dropped: not yet"
    assert steps_of(run)["approve"].output["approved"] is False


def test_a_viewer_sees_the_banner_without_buttons_and_cannot_decide(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    page = client_for(personas.vera).get(page_url(run)).content.decode()
    assert 'id="decision-banner"' in page and "Publish this? the draft" in page
    assert 'id="decision-approve"' not in page and 'id="decision-form"' not in page
    assert "Viewers cannot decide" in page
    answer = client_for(personas.vera).post(decide_url(run), {"decision": "approve"})
    assert answer.status_code == 403
    with pytest.raises(services.NotAllowedToDecide):
        services.run_decide(
            run=run, membership=membership(personas.workspace, personas.vera), approve=True
        )
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING and "decision" not in steps_of(run)["approve"].state
    assert not AuditEntry.objects.filter(action="run.decision").exists()


def test_an_outsider_gets_404(engine_in_process: None, personas: Personas, flow: Workflow) -> None:
    run = start(flow)
    assert client_for(personas.charlie).get(page_url(run)).status_code == 404
    assert (
        client_for(personas.charlie).post(decide_url(run), {"decision": "approve"}).status_code
        == 404
    )
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING


def test_only_named_approvers_who_are_editors_may_decide(
    engine_in_process: None, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        approval_flow(approvers=["BOB@example.com", "vera@example.com", "nobody@example.com"]),
    )
    run = start(workflow)
    state = steps_of(run)["approve"].state
    # Vera is a viewer and nobody@ is not a member: both ignored.
    assert state["approvers"] == [{"id": personas.bob.id, "email": "bob@example.com"}]
    assert state["ignored"] == ["vera@example.com", "nobody@example.com"]
    alice_page = client_for(personas.alice).get(page_url(run)).content.decode()
    assert 'id="decision-approve"' not in alice_page and "Only the approvers named" in alice_page
    assert (
        client_for(personas.alice).post(decide_url(run), {"decision": "approve"}).status_code == 403
    )
    assert client_for(personas.bob).post(decide_url(run), {"decision": "reject"}).status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.output == "dropped: "


def test_named_approvers_none_of_whom_may_decide_fail_the_step(
    engine_in_process: None, personas: Personas
) -> None:
    workflow = published_workflow(personas.workspace, approval_flow(approvers=["vera@example.com"]))
    run = start(workflow)
    assert run.status == Run.Status.FAILED
    assert "None of the approvers (vera@example.com)" in run.error


def test_a_second_decision_is_refused_and_changes_nothing(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    client_for(personas.bob).post(decide_url(run), {"decision": "approve", "step_key": "approve"})
    late = client_for(personas.alice).post(
        decide_url(run), {"decision": "reject", "comment": "no!", "step_key": "approve"}
    )
    assert late.status_code == 409
    assert "Already decided: approved by bob@example.com." in late.content.decode()
    # Without the step (the API's way): the run is not waiting any more.
    with pytest.raises(services.NotWaitingForDecision):
        services.run_decide(
            run=run, membership=membership(personas.workspace, personas.alice), approve=False
        )
    run.refresh_from_db()
    assert run.output == "published (bob@example.com)"
    assert AuditEntry.objects.filter(action="run.decision").count() == 1


def test_a_run_not_waiting_for_a_decision_refuses_one(
    engine_in_process: None, personas: Personas
) -> None:
    workflow = published_workflow(
        personas.workspace,
        {"name": "Pause", "steps": [{"key": "pause", "type": "wait", "seconds": 3600}]},
    )
    run = start(workflow)
    answer = client_for(personas.bob).post(decide_url(run), {"decision": "approve"})
    assert answer.status_code == 409
    assert "not waiting for a decision" in answer.content.decode()


def test_hostile_text_in_the_message_and_the_comment_is_inert_on_the_page_and_in_the_email(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow, text=HOSTILE)
    page = client_for(personas.bob).get(page_url(run)).content.decode()
    assert "<img src=x" not in page and 'hx-post="/w/x' not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    html_parts = [body for message in mail.outbox for body, kind in message.alternatives]
    assert html_parts and all("<img src=x" not in body for body in html_parts)
    assert all("&lt;img src=x onerror=alert(1)&gt;" in body for body in html_parts)
    assert all('hx-post="/w/x' not in body for body in html_parts)

    client_for(personas.bob).post(
        decide_url(run), {"decision": "reject", "comment": HOSTILE, "step_key": "approve"}
    )
    run.refresh_from_db()
    assert run.output == f"dropped: {HOSTILE}"
    page = client_for(personas.bob).get(page_url(run)).content.decode()
    assert "<img src=x" not in page and 'hx-post="/w/x' not in page


def test_the_poll_is_answered_204_while_the_same_decision_waits(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    client = client_for(personas.bob)
    html = client.get(page_url(run)).content.decode()
    shown = re.search(r'hx-get="[^"?]+\?shown=([^"]+)"', html)
    assert shown is not None and shown.group(1) == "decision%3Aapprove"
    poll = {"HX-Request": "true", "HX-Target": "run-live"}
    # Nothing new: nothing swapped, so a comment being typed stays.
    assert client.get(page_url(run) + "?shown=decision:approve", headers=poll).status_code == 204
    services.run_decide(
        run=run, membership=membership(personas.workspace, personas.alice), approve=True
    )
    changed = client.get(page_url(run) + "?shown=decision:approve", headers=poll)
    assert changed.status_code == 286  # finished: the fragment, and polling stops
    assert 'id="decision-banner"' not in changed.content.decode()


# --- the timeout ------------------------------------------------------------------------


@pytest.mark.parametrize("on_timeout", ["reject", "approve"])
def test_the_timeout_gives_the_chosen_outcome_through_beat(
    engine_in_process: None, personas: Personas, on_timeout: str
) -> None:
    workflow = published_workflow(
        personas.workspace, approval_flow(timeout_seconds=3600, on_timeout=on_timeout)
    )
    run = start(workflow)
    assert run.wake_at is not None
    # Beat before the time: nothing to wake.
    assert run.id not in engine.reap()
    # An hour later, as far as the run knows.
    past = timezone.now() - timedelta(seconds=1)
    step = steps_of(run)["approve"]
    StepRun.objects.filter(id=step.id).update(state={**step.state, "timeout_at": iso(past)})
    Run.objects.filter(id=run.id).update(wake_at=past)
    assert run.id in engine.reap()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    output = steps_of(run)["approve"].output
    assert output["approved"] is (on_timeout == "approve") and output["by"] is None
    assert "timed out" in output["comment"]
    if on_timeout == "approve":
        assert run.output == "published ()"
    else:
        assert run.output == "dropped: Nobody decided in time: timed out, so rejected."
    # Too late to decide now.
    with pytest.raises(services.NotWaitingForDecision):
        services.run_decide(
            run=run, membership=membership(personas.workspace, personas.bob), approve=True
        )


def test_a_decision_after_the_timeout_but_before_beat_is_refused(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    step = steps_of(run)["approve"]
    past = iso(timezone.now() - timedelta(seconds=1))
    StepRun.objects.filter(id=step.id).update(state={**step.state, "timeout_at": past})
    with pytest.raises(services.NotWaitingForDecision, match="time to decide is over"):
        services.run_decide(
            run=run, membership=membership(personas.workspace, personas.bob), approve=True
        )


# --- validation -------------------------------------------------------------------------


def test_validation_checks_the_message_the_approvers_and_the_timeout(personas: Personas) -> None:
    for step, message in (
        ({"message": "  "}, "Write the message the approvers read."),
        ({"approvers": ["bob"]}, "“bob” is not an email address."),
        ({"approvers": ["a@example.com", "A@example.com"]}, "listed twice"),
        ({"timeout_seconds": 31 * 86400}, "less than or equal to 2592000"),
        ({"timeout_seconds": 5}, "greater than or equal to 60"),
        ({"on_timeout": "maybe"}, "'reject' or 'approve'"),
    ):
        definition = approval_flow(**step)
        _, issues = services.definition_check(definition)
        assert any(message in issue.message for issue in issues), (step, issues)
    _, issues = services.definition_check(approval_flow())
    assert issues == []
    # Its output's fields are known to later steps; a wrong one is caught.
    wrong = approval_flow()
    wrong["steps"][2]["template"] = "{{ approve.approver }}"
    _, issues = services.definition_check(wrong)
    assert any('has no field "approver"' in issue.message for issue in issues), issues


# --- the API ----------------------------------------------------------------------------


def api_decide(token: str, run: Run, body: dict) -> tuple[int, dict]:
    answer = Client().post(
        f"/api/v1/runs/{run.id}/decision",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.status_code, answer.json()


def test_a_token_decides_by_the_api_as_its_creator_and_the_run_json_shows_it(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    # API tokens are made by admins and owners (and die with their standing).
    token = api_token(personas.workspace, personas.alice)
    shown = (
        client_for(personas.alice)
        .get(f"/api/v1/runs/{run.id}", headers={"Authorization": f"Bearer {token}"})
        .json()
    )
    assert shown["status"] == "waiting" and shown["waiting_for"] == "decision"
    asked = shown["steps"][0]["decision"]
    assert asked["message"] == "Publish this? the draft" and asked["approved"] is None
    assert asked["approvers"] == [] and asked["on_timeout"] == "reject"

    status, body = api_decide(token, run, {"approve": True, "comment": "by API"})
    assert status == 200, body
    assert body["status"] == "succeeded" and body["output"] == "published (alice@example.com)"
    decision = body["steps"][0]["decision"]
    assert decision["approved"] is True and decision["by"] == "alice@example.com"
    assert decision["comment"] == "by API"
    assert all(step["decision"] is None for step in body["steps"][1:])
    entry = AuditEntry.objects.get(action="run.decision")
    assert entry.after["via"] == "api" and entry.actor == personas.alice

    # Twice: a conflict, as JSON.
    status, body = api_decide(token, run, {"approve": False})
    assert status == 409 and "not waiting for a decision" in body["error"]
    assert set(body) == {"error", "details"}


def test_the_api_refuses_who_may_not_decide_and_another_workspaces_run(
    engine_in_process: None, personas: Personas
) -> None:
    run = start(
        published_workflow(personas.workspace, approval_flow(approvers=["bob@example.com"]))
    )
    token = api_token(personas.workspace, personas.alice)
    # Alice is not a named approver.
    status, body = api_decide(token, run, {"approve": True})
    assert status == 403 and "Only the approvers named" in body["error"]
    status, body = api_decide(
        api_token(personas.other_workspace, personas.charlie), run, {"approve": True}
    )
    assert status == 404 and set(body) == {"error", "details"}
    status, body = api_decide(token, run, {"approve": "maybe"})
    assert status == 422
    status, body = api_decide(token, run, {"approve": True, "comment": "x" * 2001})
    assert status == 422
    # A token whose maker is a viewer now: dead (401), so it decides nothing either.
    Membership.objects.filter(user=personas.alice, workspace=personas.workspace).update(
        role=Role.VIEWER
    )
    status, body = api_decide(token, run, {"approve": True})
    assert status == 401
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert not AuditEntry.objects.filter(action="run.decision").exists()


# --- the emailed link ---------------------------------------------------------------------


def links_in_outbox() -> dict[str, str]:
    """Each recipient's decision link, from the emails sent."""
    found: dict[str, str] = {}
    for message in mail.outbox:
        match = re.search(r"https?://\S+/decisions/[^/\s]+/", message.body)
        assert match is not None, message.body
        found[message.to[0]] = match.group(0)
    return found


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def test_every_editor_gets_an_email_with_a_link_of_their_own(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    mail.outbox.clear()
    run = start(flow)
    links = links_in_outbox()
    # Alice (owner) and Bob (editor); not Vera (viewer), not Charlie.
    assert set(links) == {"alice@example.com", "bob@example.com"}
    assert links["alice@example.com"] != links["bob@example.com"]
    message = next(m for m in mail.outbox if m.to == ["bob@example.com"])
    assert "Publish this? the draft" in message.body and f"run #{run.id}" in message.body
    # The token is stored nowhere.
    step = steps_of(run)["approve"]
    token = path_of(links["bob@example.com"]).split("/")[2]
    assert token not in str(step.state) and token not in str(run.__dict__)
    # A wake-up that parks it again sends nothing more.
    mail.outbox.clear()
    Run.objects.filter(id=run.id).update(wake_at=timezone.now() - timedelta(seconds=1))
    assert run.id in engine.reap()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING and mail.outbox == []


def test_named_approvers_alone_get_the_email(engine_in_process: None, personas: Personas) -> None:
    mail.outbox.clear()
    start(published_workflow(personas.workspace, approval_flow(approvers=["bob@example.com"])))
    assert set(links_in_outbox()) == {"bob@example.com"}


def test_the_link_decides_once_for_the_member_it_was_sent_to(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    mail.outbox.clear()
    run = start(flow)
    bob_link = path_of(links_in_outbox()["bob@example.com"])

    # Signed out: the login page first.
    anonymous = client_for(personas.bob)
    anonymous.logout()
    assert anonymous.get(bob_link).status_code == 302

    # Someone else: refused, and nothing decided.
    wrong = client_for(personas.alice).post(bob_link, {"decision": "approve"})
    assert wrong.status_code == 403 and "emailed to another member" in wrong.content.decode()
    assert client_for(personas.vera).get(bob_link).status_code == 403

    bob = client_for(personas.bob)
    page = bob.get(bob_link)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Publish this? the draft" in html and 'value="approve"' in html
    assert "csrfmiddlewaretoken" in html
    decided = bob.post(bob_link, {"decision": "reject", "comment": "from my inbox"})
    assert decided.status_code == 302 and decided["Location"] == page_url(run)
    run.refresh_from_db()
    assert run.output == "dropped: from my inbox"
    assert AuditEntry.objects.get(action="run.decision").after["via"] == "link"

    # Used: it says who decided, and decides nothing.
    again = bob.post(bob_link, {"decision": "approve"})
    assert again.status_code == 409
    assert "Already decided: rejected by bob@example.com." in again.content.decode()
    alice_link = path_of(links_in_outbox()["alice@example.com"])
    late = client_for(personas.alice).get(alice_link)
    assert late.status_code == 409 and "rejected by bob@example.com" in late.content.decode()
    assert AuditEntry.objects.filter(action="run.decision").count() == 1


def test_an_expired_or_forged_link_is_refused(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    bob = client_for(personas.bob)
    expired = link_token(
        run_id=run.id,
        step_key="approve",
        user_id=personas.bob.id,
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    answer = bob.post(reverse("decision_link", args=[expired]), {"decision": "approve"})
    assert answer.status_code == 410 and "time to decide is over" in answer.content.decode()
    good = link_token(
        run_id=run.id,
        step_key="approve",
        user_id=personas.bob.id,
        expires_at=timezone.now() + timedelta(days=1),
    )
    # Another user id, with bob's signature: not ours.
    forged = good.replace(".", "X", 1)
    assert bob.get(reverse("decision_link", args=[forged])).status_code == 404
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING


def test_a_removed_member_or_one_made_viewer_cannot_use_their_link(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    mail.outbox.clear()
    run = start(flow)
    bob_link = path_of(links_in_outbox()["bob@example.com"])
    Membership.objects.filter(user=personas.bob).update(role=Role.VIEWER)
    assert client_for(personas.bob).post(bob_link, {"decision": "approve"}).status_code == 403
    Membership.objects.filter(user=personas.bob, workspace=personas.workspace).delete()
    assert client_for(personas.bob).post(bob_link, {"decision": "approve"}).status_code == 404
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING


# --- two people at once -------------------------------------------------------------------


def test_two_decisions_at_once_one_wins_and_the_run_resumes_once(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    members = [
        membership(personas.workspace, personas.alice),
        membership(personas.workspace, personas.bob),
    ]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def decide(index: int) -> None:
        try:
            barrier.wait()
            outcomes.append(
                services.run_decide(
                    run=run, membership=members[index], approve=index == 0, comment=str(index)
                )
            )
        except (services.AlreadyDecided, services.NotWaitingForDecision) as e:
            outcomes.append(e)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=decide, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, Exception)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    step = steps_of(run)["approve"]
    assert step.output == won[0]
    assert step.state["decision"]["comment"] == won[0]["comment"]
    assert AuditEntry.objects.filter(action="run.decision").count() == 1
    # Resumed once: the steps after it ran once.
    assert StepRun.objects.filter(run=run, key="route").count() == 1
    assert connection.vendor in ("sqlite", "postgresql")


def test_the_link_is_scrubbed_from_logged_request_lines(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    mail.outbox.clear()
    start(flow)
    path = path_of(links_in_outbox()["bob@example.com"])
    token = path.split("/")[2]
    signed_out = Client().get(path)
    assert signed_out.status_code == 302
    for line in (f'"GET {path} HTTP/1.1" 200', f"GET {signed_out['Location']}"):
        assert token not in scrub(line) and "[scrubbed]" in scrub(line)


# --- the editor ---------------------------------------------------------------------------


def test_the_editor_saves_its_fields_and_warns_of_approvers_who_cannot_decide(
    personas: Personas,
) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=approval_flow(), user=personas.alice
    )
    save = reverse("workflow_step_save", args=[personas.workspace.slug, workflow.id, 0])
    answer = client_for(personas.bob).post(
        save,
        {
            "step_key": "approve",
            "message": "Ship {{ text }}?",
            "approvers": "bob@example.com; vera@example.com,\n stranger@example.com",
            "timeout_hours": "1.5",
            "on_timeout": "approve",
        },
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200
    workflow.refresh_from_db()
    step = workflow.definition["steps"][0]
    assert step["message"] == "Ship {{ text }}?"
    assert step["approvers"] == ["bob@example.com", "vera@example.com", "stranger@example.com"]
    assert step["timeout_seconds"] == 5400 and step["on_timeout"] == "approve"

    panel = client_for(personas.bob).get(
        reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])
        + "?panel=step&step=0"
    )
    html = panel.content.decode()
    assert 'value="1.5"' in html
    assert 'id="warn-approvers"' in html
    assert "ignored when the run asks: vera@example.com, stranger@example.com." in html

    client_for(personas.bob).post(
        save, {"step_key": "approve", "timeout_hours": "0.001"}, HTTP_HX_REQUEST="true"
    )
    _, issues = services.definition_check(Workflow.objects.get(id=workflow.id).definition)
    assert any("greater than or equal to 60" in issue.message for issue in issues), issues


def test_a_canceled_run_takes_no_decision_and_the_audit_log_reads_it(
    engine_in_process: None, personas: Personas, flow: Workflow
) -> None:
    run = start(flow)
    services.run_cancel(run=run)
    answer = client_for(personas.bob).post(
        decide_url(run), {"decision": "approve", "step_key": "approve"}
    )
    assert answer.status_code == 409 and "not waiting for a decision" in answer.content.decode()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELED

    other = start(flow)
    client_for(personas.bob).post(
        decide_url(other), {"decision": "reject", "comment": HOSTILE, "step_key": "approve"}
    )
    log = client_for(personas.alice).get(reverse("audit_log", args=[personas.workspace.slug]))
    html = log.content.decode()
    assert "Approved or rejected a run" in html and f"Run #{other.id}" in html
    assert "<img src=x" not in html
