"""Rough edges of the editor, triggers, versions, audit log and usage pages (issue 11, part 4)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit_display import action_label
from accounts.models import User
from tests.conftest import Personas
from tests.factories import HTMX, client_for
from workflows import services
from workflows.builder import editing
from workflows.integrations import api_auth, schedules
from workflows.models import Run, StepRun, Workflow
from workflows.steps import condition
from workflows.templatetags.run_format import when

PAYLOAD = '<img src=x onerror=alert(1)><b hx-get="/" hx-trigger="load">x</b>'

CLASSIFY = {
    "name": "Classify",
    "inputs": [{"name": "ticket", "type": "text"}],
    "steps": [
        {
            "key": "triage",
            "type": "llm",
            "prompt": "Classify {{ ticket }}",
            "max_tokens": 100,
            "response_format": {
                "type": "json_schema",
                "name": "triage",
                "schema": {
                    "type": "object",
                    "properties": {
                        "urgent": {"type": "boolean"},
                        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
                    },
                    "required": ["urgent", "category"],
                    "additionalProperties": False,
                },
            },
        },
        {"key": "reply", "type": "llm", "prompt": "Reply to {{ ticket }}"},
    ],
}


@pytest.fixture
def workflow(personas: Personas) -> Workflow:
    return services.workflow_create(
        workspace=personas.workspace,
        definition=json.loads(json.dumps(CLASSIFY)),
        user=personas.alice,
    )


def editor(personas: Personas, workflow: Workflow) -> str:
    return reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])


# --- Conditions ---------------------------------------------------------------------------


def test_a_new_condition_after_a_json_step_compares_one_of_its_fields() -> None:
    definition, index = editing.step_insert(
        json.loads(json.dumps(CLASSIFY)), position=1, kind="condition"
    )
    case = definition["steps"][index]["cases"][0]
    assert case["left"] == "{{ triage.category }}", "the field with choices, not the whole JSON"
    assert case["op"] == "equals" and case["right"] == "billing"
    parsed, issues = services.definition_check(definition)
    assert issues == []


def test_a_new_condition_after_a_text_step_compares_its_text() -> None:
    definition, index = editing.step_insert(
        json.loads(json.dumps(CLASSIFY)), position=2, kind="condition"
    )
    assert definition["steps"][index]["cases"][0]["left"] == "{{ reply }}"


def test_a_new_case_compares_what_the_case_before_it_compares() -> None:
    step = {
        "key": "route",
        "type": "condition",
        "cases": [
            {"left": "{{ triage.category }}", "op": "equals", "right": "billing", "goto": "end"}
        ],
        "else": "end",
    }
    step = condition.case_add(step, previous="triage")
    assert step["cases"][1]["left"] == "{{ triage.category }}"


def test_a_condition_card_shows_else_as_a_branch_not_an_error_and_no_case_goto_fields(
    personas: Personas, workflow: Workflow
) -> None:
    definition, _ = editing.step_insert(workflow.definition, position=1, kind="condition")
    services.workflow_save_draft(workflow=workflow, definition=definition, user=personas.alice)
    html = (
        client_for(personas.alice)
        .get(editor(personas, workflow) + "?panel=step&step=1")
        .content.decode()
    )
    card = html[html.index('id="card-body-1"') : html.index('id="card-run-1"')]
    assert "else →" in card
    assert "chip-false" not in card and "danger" not in card
    assert "case" not in re.sub(r"<[^>]+>", "", card).replace("else", ""), card
    # The variable picker of the next step does not offer them either.
    html = (
        client_for(personas.alice)
        .get(editor(personas, workflow) + "?panel=step&step=2")
        .content.decode()
    )
    assert 'data-insert="step_3.case"' not in html and 'data-insert="step_3.goto"' not in html


# --- Rename in place ------------------------------------------------------------------------


def test_renaming_from_the_title_updates_name_breadcrumb_and_tab_title(
    personas: Personas, workflow: Workflow
) -> None:
    url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    response = client_for(personas.bob).post(url, {"name": "Ticket triage"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Ticket triage · " in html
    assert 'hx-swap-oob="innerHTML:.workflow-name">Ticket triage</span>' in html
    assert 'id="editor-title" hx-swap-oob="true"' in html and 'value="Ticket triage"' in html
    workflow.refresh_from_db()
    assert workflow.name == "Ticket triage" and workflow.definition["name"] == "Ticket triage"


def test_renaming_escapes_markup_everywhere_it_is_shown(
    personas: Personas, workflow: Workflow
) -> None:
    url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    html = client_for(personas.bob).post(url, {"name": PAYLOAD}, **HTMX).content.decode()
    assert "<img" not in html and "<b hx-get" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    page = client_for(personas.alice).get(editor(personas, workflow)).content.decode()
    assert "<img src=x" not in page and '<b hx-get="/"' not in page


def test_renaming_without_javascript_is_a_plain_form_and_redirects(
    personas: Personas, workflow: Workflow
) -> None:
    url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    page = client_for(personas.bob).get(editor(personas, workflow)).content.decode()
    assert f'<form class="title-form" method="post" action="{url}"' in page
    response = client_for(personas.bob).post(url, {"name": "Plain rename"})
    assert response.status_code == 302 and response["Location"].startswith(
        editor(personas, workflow)
    )
    workflow.refresh_from_db()
    assert workflow.name == "Plain rename"


def test_renaming_refuses_a_taken_or_empty_name_next_to_the_title(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_create(
        workspace=personas.workspace, definition={**CLASSIFY, "name": "Taken"}, user=personas.alice
    )
    url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    response = client_for(personas.bob).post(url, {"name": "Taken"}, **HTMX)
    assert response.status_code == 422
    assert "Another workflow is already called" in response.content.decode()
    response = client_for(personas.bob).post(url, {"name": "   "}, **HTMX)
    assert response.status_code == 422 and "needs a name" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.name == "Classify"


def test_renaming_needs_the_editor_role(personas: Personas, workflow: Workflow) -> None:
    url = reverse("workflow_rename", args=[personas.workspace.slug, workflow.id])
    assert client_for(personas.vera).post(url, {"name": "Nope"}).status_code == 403
    assert client_for(personas.charlie).post(url, {"name": "Nope"}).status_code == 404
    page = client_for(personas.vera).get(editor(personas, workflow)).content.decode()
    assert "editor-title-input" not in page


def test_the_settings_panel_autosave_updates_the_name_everywhere(
    personas: Personas, workflow: Workflow
) -> None:
    url = reverse("workflow_settings_save", args=[personas.workspace.slug, workflow.id])
    html = (
        client_for(personas.bob)
        .post(url, {"name": "From the panel", "description": ""}, **HTMX)
        .content.decode()
    )
    assert "<title>From the panel · " in html
    assert 'hx-swap-oob="innerHTML:.workflow-name">From the panel</span>' in html


# --- Wording --------------------------------------------------------------------------------


def test_discard_draft_changes_is_offered_only_when_the_draft_differs(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_publish(workflow=workflow, user=personas.alice)
    versions = reverse("workflow_versions", args=[personas.workspace.slug, workflow.id])
    assert "Discard draft changes" not in client_for(personas.alice).get(versions).content.decode()
    changed = {**workflow.definition, "description": "Changed"}
    services.workflow_save_draft(workflow=workflow, definition=changed, user=personas.alice)
    assert "Discard draft changes" in client_for(personas.alice).get(versions).content.decode()


def test_restoring_a_version_says_what_really_happened(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_publish(workflow=workflow, user=personas.alice)
    client = client_for(personas.alice)
    restore = reverse("workflow_version_restore", args=[personas.workspace.slug, workflow.id, 1])
    # The draft already is version 1.
    response = client.post(restore, follow=True)
    text = response.content.decode()
    assert "is now the draft" not in text
    assert "The draft was already the same as version 1" in text
    # A changed draft really becomes version 1 again.
    services.workflow_save_draft(
        workflow=workflow,
        definition={**workflow.definition, "description": "x"},
        user=personas.alice,
    )
    text = client.post(restore, follow=True).content.decode()
    assert "Version 1 is now the draft" in text


def test_the_audit_log_names_restoring_a_version_in_plain_words() -> None:
    assert action_label("workflow.restore_version") == "Restored a version into the draft"
    assert action_label("workflow.duplicate") == "Duplicated a workflow"
    # An action nobody labelled still reads as words, not "Restore version workflow".
    assert action_label("widget.restore_version") == "Widget: restore version"


def test_relative_times_never_say_zero_minutes_ago(personas: Personas, workflow: Workflow) -> None:
    now = timezone.now()
    assert when(now - timedelta(seconds=5)) == "just now"
    assert when(now - timedelta(minutes=3)) == "3\xa0minutes ago"
    from workflows.integrations import triggers

    services.workflow_publish(workflow=workflow, user=personas.alice)
    trigger = triggers.trigger_create(workflow=workflow, user=personas.alice, name="Hook").trigger
    triggers.trigger_rotate(trigger=trigger, user=personas.alice)
    api_auth.token_create(workspace=personas.workspace, name="CI", user=personas.alice)
    from workflows.models import ApiToken

    ApiToken.objects.update(last_used_at=timezone.now())
    pages = [
        reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id]),
        reverse("api_tokens", args=[personas.workspace.slug]),
    ]
    for page in pages:
        text = client_for(personas.alice).get(page).content.decode()
        assert "0\xa0minutes ago" not in text and "0 minutes ago" not in text, page
        assert "just now" in text, page


# --- Usage by person ------------------------------------------------------------------------


def _paid_run(
    workflow: Workflow, *, trigger: str, user: User | None, cost: int, **extra: object
) -> Run:
    run = Run.objects.create(
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        definition=workflow.definition,
        trigger=trigger,
        status=Run.Status.SUCCEEDED,
        created_by=user,
        **extra,
    )
    StepRun.objects.create(
        run=run,
        key="triage",
        position=0,
        type="llm",
        status=StepRun.Status.SUCCEEDED,
        cost_nanousd=cost,
        tokens_in=10,
        tokens_out=5,
        finished_at=timezone.now(),
    )
    return run


def test_usage_by_person_labels_runs_of_tokens_webhooks_and_schedules(
    personas: Personas, workflow: Workflow
) -> None:
    from workflows.billing.usage import usage_by_member

    token = api_auth.token_create(
        workspace=personas.workspace, name="CI deploy", user=personas.alice
    ).token
    _paid_run(workflow, trigger=Run.Trigger.MANUAL, user=personas.alice, cost=1000)
    _paid_run(workflow, trigger=Run.Trigger.API, user=personas.alice, cost=2000, api_token=token)
    _paid_run(workflow, trigger=Run.Trigger.WEBHOOK, user=None, cost=3000)
    _paid_run(workflow, trigger=Run.Trigger.SCHEDULE, user=personas.bob, cost=4000)
    rows = {row.label: row for row in usage_by_member(personas.workspace)}
    assert rows["Alice"].cost_nanousd == 1000, "the token's runs are not Alice's"
    assert rows["API token “CI deploy”"].cost_nanousd == 2000
    assert rows["Webhook"].cost_nanousd == 3000
    assert rows["Schedule"].cost_nanousd == 4000, "a schedule's runs are not its creator's"
    assert "Bob" not in rows
    assert sum(row.cost_nanousd for row in rows.values()) == 10_000

    page = (
        client_for(personas.alice)
        .get(reverse("workspace_usage", args=[personas.workspace.slug]))
        .content.decode()
    )
    assert "API token “CI deploy”" in page and "Webhook" in page and "Schedule" in page


# --- Schedules ------------------------------------------------------------------------------


def test_the_schedule_form_shows_every_error_at_once_next_to_its_field(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_publish(workflow=workflow, user=personas.alice)
    url = reverse("schedule_create", args=[personas.workspace.slug, workflow.id])
    response = client_for(personas.alice).post(
        url,
        {
            "cron": "every morning",
            "time_zone": "Mars/Olympus",
            "inputs": "{not json",
            "enabled": "on",
        },
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Use five fields" in html
    assert "Unknown time zone" in html
    assert "not valid JSON" in html
    # Inputs that are JSON but do not fit the workflow are named together with a bad cron.
    response = client_for(personas.alice).post(
        url, {"cron": "61 * * * *", "time_zone": "UTC", "inputs": "{}", "enabled": "on"}
    )
    html = response.content.decode()
    assert "Use five fields" in html and "ticket" in html
    assert f'action="{url}#new-schedule"' in html, "the answer scrolls back to the form"


def test_next_runs_are_shown_in_the_schedule_s_time_zone(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_publish(workflow=workflow, user=personas.alice)
    schedules.schedule_create(
        workflow=workflow,
        cron="0 9 * * *",
        time_zone="Europe/Paris",
        inputs={"ticket": "daily"},
        user=personas.alice,
    )
    html = (
        client_for(personas.alice)
        .get(reverse("workflow_triggers", args=[personas.workspace.slug, workflow.id]))
        .content.decode()
    )
    section = html[html.index("Next runs") if "Next runs" in html else html.index("Next run") :]
    assert "09:00" in section
    assert "08:00" not in section and "07:00" not in section
