"""Names people give things are refused when they hold an invisible bidi embedding, override or
isolate control (config/lib/names.py): such a character reversed the text after it in the tab's
title, confirmation dialogs, emails and the audit log. Right-to-left names stay welcome."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.models import User, Workspace
from config.lib.names import name_direction_problem
from tests.conftest import Personas
from tests.factories import api_token, client_for, published_workflow
from workflows import services
from workflows.evals import datasets
from workflows.models import ApiToken, Dataset, EvalCheck, Trigger, Workflow, WorkflowVersion

RLO = "\u202e"
HOSTILE = f"Invoices {RLO}fdp.exe"
REFUSED = "Names cannot contain invisible text-direction characters (U+202E): remove them."
ARABIC = "سير عمل الفواتير"

ECHO = {
    "name": "Echo",
    "inputs": [{"name": "who", "type": "text"}],
    "steps": [{"key": "say", "type": "template", "title": "Say hi", "template": "Hi {{ who }}"}],
}


@pytest.mark.parametrize("point", [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
def test_every_embedding_override_and_isolate_control_is_refused(point: int) -> None:
    assert f"(U+{point:04X})" in name_direction_problem(f"a{chr(point)}b")


def test_right_to_left_names_and_direction_marks_are_accepted() -> None:
    assert name_direction_problem(ARABIC) == ""
    assert name_direction_problem("שלום\u200fworld\u200e") == ""


def test_the_message_names_each_control_once() -> None:
    assert name_direction_problem(f"{RLO}a{RLO}\u2066b\u2069") == (
        "Names cannot contain invisible text-direction characters (U+202E, U+2066, U+2069): "
        "remove them."
    )


# Forms ------------------------------------------------------------------------------------


def test_a_workspace_name_with_an_override_is_refused(personas: Personas) -> None:
    alice = client_for(personas.alice)
    created = alice.post(reverse("workspace_create"), {"name": HOSTILE})
    assert REFUSED in created.content.decode()
    assert not Workspace.objects.filter(name=HOSTILE).exists()

    renamed = alice.post(
        reverse("workspace_rename", args=[personas.workspace.slug]), {"name": HOSTILE}
    )
    assert REFUSED in renamed.content.decode()
    personas.workspace.refresh_from_db()
    assert personas.workspace.name != HOSTILE


def test_a_person_signing_up_with_an_override_in_their_name_is_refused(db: None) -> None:
    response = Client().post(
        "/accounts/signup/",
        {"name": HOSTILE, "email": "eve@example.com", "password": "correct horse battery staple"},
    )
    assert response.status_code == 200
    assert REFUSED in response.content.decode()


def test_an_api_token_name_with_an_override_is_refused(personas: Personas) -> None:
    response = client_for(personas.alice).post(
        reverse("api_token_create", args=[personas.workspace.slug]), {"name": HOSTILE}
    )
    assert REFUSED in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_webhook_name_with_an_override_is_refused(personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    response = client_for(personas.alice).post(
        reverse("trigger_create", args=[personas.workspace.slug, workflow.id]),
        {"name": HOSTILE, "rate_limit_per_minute": 60},
    )
    assert REFUSED in response.content.decode()
    assert not Trigger.objects.exists()


def test_dataset_and_check_names_with_an_override_are_refused(personas: Personas) -> None:
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    base = f"/w/{personas.workspace.slug}/workflows/{workflow.id}"
    bob = client_for(personas.bob)
    check = bob.post(
        f"{base}/checks/add/", {"name": HOSTILE, "kind": "contains", "config": '{"value": "Hi"}'}
    )
    assert check.status_code == 422
    assert REFUSED in check.content.decode()
    assert not EvalCheck.objects.exists()
    with pytest.raises(datasets.DatasetInvalid, match="U\\+202E"):
        datasets.dataset_create(
            workflow=workflow, name=HOSTILE, rows=[datasets.NewRow({"who": "Ada"})], user=None
        )
    assert not Dataset.objects.exists()


def test_renaming_a_workflow_in_the_editor_with_an_override_is_refused(
    personas: Personas,
) -> None:
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    bob = client_for(personas.bob)
    base = f"/w/{personas.workspace.slug}/workflows/{workflow.id}"
    renamed = bob.post(f"{base}/rename/", {"name": HOSTILE}, HTTP_HX_REQUEST="true")
    assert renamed.status_code == 422
    assert REFUSED in renamed.content.decode()
    settings = bob.post(f"{base}/settings/", {"name": HOSTILE}, HTTP_HX_REQUEST="true")
    assert REFUSED in settings.content.decode()
    workflow.refresh_from_db()
    assert workflow.name == "Echo" and workflow.definition["name"] == "Echo"


def test_a_step_title_with_an_override_is_a_problem_of_the_draft(personas: Personas) -> None:
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    _, issues = services.definition_check(
        {**ECHO, "steps": [{**ECHO["steps"][0], "title": HOSTILE}]}, workflow=workflow
    )
    assert [(issue.step, issue.field, issue.message) for issue in issues] == [
        ("say", "title", REFUSED)
    ]


def test_an_arabic_workflow_name_is_accepted_and_shown(personas: Personas) -> None:
    bob = client_for(personas.bob)
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    base = f"/w/{personas.workspace.slug}/workflows/{workflow.id}"
    renamed = bob.post(f"{base}/rename/", {"name": ARABIC}, HTTP_HX_REQUEST="true")
    assert renamed.status_code == 200
    workflow.refresh_from_db()
    assert workflow.name == ARABIC
    services.workflow_publish(workflow=workflow, user=None)
    services.run_start(workflow=workflow, inputs={"who": "Ada"}, trigger="manual", user=None)
    runs = client_for(personas.alice).get(
        f"/w/{personas.workspace.slug}/runs/?workflow={workflow.id}"
    )
    html = runs.content.decode()
    assert f'<bdi class="truncate">{ARABIC}</bdi>' in html  # the run's row
    assert f"Delete all runs of <bdi>{ARABIC}</bdi>" in html
    assert ARABIC in bob.get(f"{base}/").content.decode()


# The API ----------------------------------------------------------------------------------


@pytest.fixture
def api(personas: Personas) -> Client:
    token = api_token(personas.workspace, personas.alice)
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_importing_a_workflow_named_with_an_override_is_refused(api: Client) -> None:
    answer = api.post(
        "/api/v1/workflows", {**ECHO, "name": HOSTILE}, content_type="application/json"
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "The workflow definition is not valid.",
        "details": [{"step": None, "field": "name", "message": REFUSED}],
    }
    titled = {**ECHO, "steps": [{**ECHO["steps"][0], "title": f"Say {RLO}ih"}]}
    answer = api.post("/api/v1/workflows", titled, content_type="application/json")
    assert answer.status_code == 422
    assert answer.json()["details"] == [{"step": "say", "field": "title", "message": REFUSED}]
    assert not Workflow.objects.exists()


def test_replacing_a_draft_with_an_override_in_its_name_is_refused(api: Client) -> None:
    made = api.post("/api/v1/workflows", ECHO, content_type="application/json")
    assert made.status_code == 201
    answer = api.put(
        f"/api/v1/workflows/{made.json()['id']}",
        {**ECHO, "name": HOSTILE},
        content_type="application/json",
    )
    assert answer.status_code == 422
    assert answer.json()["details"][0]["message"] == REFUSED
    assert Workflow.objects.get().name == "Echo"


def test_an_arabic_workflow_imported_through_the_api_keeps_its_name(api: Client) -> None:
    answer = api.post(
        "/api/v1/workflows", {**ECHO, "name": ARABIC}, content_type="application/json"
    )
    assert answer.status_code == 201
    assert answer.json()["name"] == ARABIC
    assert api.get(f"/api/v1/workflows/{answer.json()['id']}").json()["name"] == ARABIC


def test_trigger_and_dataset_names_with_an_override_are_refused_by_the_api(
    personas: Personas, api: Client
) -> None:
    workflow = services.workflow_create(workspace=personas.workspace, definition=ECHO, user=None)
    services.workflow_publish(workflow=workflow, user=None)
    for path, body in (
        (f"/api/v1/workflows/{workflow.id}/triggers", {"name": HOSTILE}),
        (
            f"/api/v1/workflows/{workflow.id}/datasets",
            {"name": HOSTILE, "rows": [{"inputs": {"who": "Ada"}}]},
        ),
    ):
        answer = api.post(path, body, content_type="application/json")
        assert answer.status_code == 422, path
        assert answer.json()["error"] == "The request is not valid."
        assert [detail["msg"] for detail in answer.json()["details"]] == [REFUSED]
    assert not Trigger.objects.exists() and not Dataset.objects.exists()


# Names stored before the rule -------------------------------------------------------------


def _strip(app: str, name: str) -> None:
    importlib.import_module(f"{app}.migrations.{name}").strip_names(apps, None)


def test_names_stored_before_the_rule_lose_their_controls(personas: Personas) -> None:
    workspace = personas.workspace
    Workspace.objects.filter(id=workspace.id).update(name=f"Acme{RLO}")
    User.objects.filter(id=personas.bob.id).update(name=f"Bob {RLO}evil")
    taken = services.workflow_create(
        workspace=workspace, definition={**ECHO, "name": "Invoices fdp.exe"}, user=None
    )
    hostile = services.workflow_create(workspace=workspace, definition=ECHO, user=None)
    titled = {**ECHO, "name": HOSTILE, "steps": [{**ECHO["steps"][0], "title": f"Say{RLO}"}]}
    Workflow.objects.filter(id=hostile.id).update(name=HOSTILE, definition=titled)
    WorkflowVersion.objects.create(workflow=hostile, number=1, definition=titled)
    check = EvalCheck.objects.create(
        workflow=hostile, name="fine\u2066", kind="contains", config={"value": "Hi"}
    )
    arabic = services.workflow_create(
        workspace=workspace, definition={**ECHO, "name": ARABIC}, user=None
    )

    _strip("accounts", "0011_strip_name_bidi_controls")
    _strip("workflows", "0019_strip_name_bidi_controls")

    workspace.refresh_from_db()
    assert workspace.name == "Acme"
    assert User.objects.get(id=personas.bob.id).name == "Bob evil"
    hostile.refresh_from_db()
    # "Invoices fdp.exe" was taken by another workflow of the workspace.
    assert hostile.name == "Invoices fdp.exe (2)"
    assert hostile.definition["name"] == "Invoices fdp.exe (2)"
    assert hostile.definition["steps"][0]["title"] == "Say"
    assert WorkflowVersion.objects.get(workflow=hostile).definition["steps"][0]["title"] == "Say"
    check.refresh_from_db()
    assert check.name == "fine"
    taken.refresh_from_db()
    arabic.refresh_from_db()
    assert (taken.name, arabic.name) == ("Invoices fdp.exe", ARABIC)


def test_the_token_command_refuses_a_name_with_an_override(personas: Personas) -> None:
    with pytest.raises(CommandError, match="U\\+202E"):
        call_command(
            "create_api_token", "alice@example.com", personas.workspace.slug, "--name", HOSTILE
        )
    assert not ApiToken.objects.exists()
