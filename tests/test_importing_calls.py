"""Importing a workflow whose steps call other workflows by id: an id that is
not a workflow of this workspace (another workspace's, or none at all) is
kept on its step, named in the draft's issues in the same words whoever's id
it is, and the draft cannot be published or run until another is picked.
A published version whose called workflow was deleted since fails at that
step, never running anything outside its workspace."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import Personas
from tests.factories import api_token, published_workflow, steps_of
from workflows import services
from workflows.models import Run, StepRun, Workflow, WorkflowVersion

SHOUT = {
    "name": "Shout",
    "inputs": [{"name": "text", "type": "text"}],
    "steps": [{"key": "loud", "type": "llm", "prompt": "Shout: {{ text }}", "max_tokens": 20}],
}

SCORE = {
    "name": "Score",
    "inputs": [{"name": "text", "type": "text"}],
    "steps": [
        {
            "key": "rate",
            "type": "llm",
            "prompt": "Rate: {{ text }}",
            "max_tokens": 20,
            "response_format": {
                "type": "json_schema",
                "name": "score",
                "schema": {
                    "type": "object",
                    "properties": {"score": {"type": "number"}},
                    "required": ["score"],
                    "additionalProperties": False,
                },
            },
        }
    ],
}


def caller(target_id: int, name: str = "Caller", *, read: str = "{{ call }}") -> dict:
    return {
        "name": name,
        "inputs": [{"name": "text", "type": "text"}],
        "steps": [
            {
                "key": "call",
                "type": "workflow",
                "workflow": target_id,
                "inputs": {"text": "{{ text }}"},
            },
            {"key": "after", "type": "template", "template": f"got: {read}"},
        ],
    }


def mapper(target_id: int, name: str = "Mapper") -> dict:
    return {
        "name": name,
        "inputs": [{"name": "texts", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ texts }}",
                "workflow": target_id,
                "inputs": {"text": "{{ item }}"},
            }
        ],
    }


def unused_id() -> int:
    return (Workflow.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1000


def without_ids(answer: object) -> str:
    """The answer with workflow ids and names of the callers blotted out, to compare two."""
    return re.sub(r"#\d+", "#N", json.dumps(answer, sort_keys=True))


@pytest.fixture
def api(personas: Personas) -> Client:
    return Client(
        headers={"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    )


def send(api: Client, method: str, path: str, body: object = None):  # type: ignore[no-untyped-def]
    data = json.dumps(body) if body is not None else None
    return getattr(api, method)(f"/api/v1{path}", data=data, content_type="application/json")


# --- importing ---------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [caller, mapper])
def test_an_import_keeps_a_step_calling_an_outsiders_workflow_and_names_it_like_a_missing_one(
    api: Client, personas: Personas, definition
) -> None:  # type: ignore[no-untyped-def]
    theirs = published_workflow(personas.other_workspace, SHOUT | {"name": "Their secret plan"})
    answers = {}
    for label, target in (("theirs", theirs.id), ("none", unused_id())):
        created = send(api, "post", "/workflows", definition(target, f"Imported {label}"))
        assert created.status_code == 201, created.content
        body = created.json()
        step = body["definition"]["steps"][0]
        assert step["workflow"] == target  # kept as it came, for the editor to replace
        assert body["issues"] == [
            {
                "step": step["key"],
                "field": "workflow",
                "message": f"Workflow #{target} is not in this workspace.",
            }
        ]
        answers[label] = body["issues"]
    assert without_ids(answers["theirs"]) == without_ids(answers["none"])
    assert "Their secret plan" not in json.dumps(answers)


def test_an_imported_call_cannot_be_published_or_run_until_a_workflow_is_picked(
    api: Client, personas: Personas
) -> None:
    theirs = published_workflow(personas.other_workspace, SHOUT)
    shout = published_workflow(personas.workspace, SHOUT | {"name": "Our shout"})
    refusals = {}
    for label, target in (("theirs", theirs.id), ("none", unused_id())):
        workflow_id = send(api, "post", "/workflows", caller(target, f"Caller {label}")).json()[
            "id"
        ]
        published = send(api, "post", f"/workflows/{workflow_id}/publish")
        assert published.status_code == 422
        body = published.json()
        assert body["error"] == "The workflow definition is not valid."
        assert body["details"] == [
            {
                "step": "call",
                "field": "workflow",
                "message": f"Workflow #{target} is not in this workspace.",
            }
        ]
        refusals[label] = body
        workflow = Workflow.objects.get(id=workflow_id)
        with pytest.raises(services.WorkflowInvalid, match="is not in this workspace"):
            services.run_start(
                workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"text": "x"}, draft=True
            )
        assert not workflow.versions.exists()
        assert not Run.objects.filter(workflow__workspace=personas.other_workspace).exists()

        # Picking one of this workspace's workflows in the editor clears it.
        issues = services.workflow_edit_draft(
            workflow=workflow,
            user=personas.alice,
            edit=lambda draft: (
                draft | {"steps": [draft["steps"][0] | {"workflow": shout.id}, *draft["steps"][1:]]}
            ),
        )
        assert issues == []
        assert send(api, "get", f"/workflows/{workflow_id}").json()["issues"] == []
        assert send(api, "post", f"/workflows/{workflow_id}/publish").status_code == 201
    assert without_ids(refusals["theirs"]) == without_ids(refusals["none"])


def test_replacing_a_draft_through_the_api_says_the_same(api: Client, personas: Personas) -> None:
    theirs = published_workflow(personas.other_workspace, SHOUT)
    workflow_id = send(api, "post", "/workflows", caller(unused_id())).json()["id"]
    replaced = send(api, "put", f"/workflows/{workflow_id}", caller(theirs.id))
    assert replaced.status_code == 200
    assert replaced.json()["issues"] == [
        {
            "step": "call",
            "field": "workflow",
            "message": f"Workflow #{theirs.id} is not in this workspace.",
        }
    ]


def test_fields_read_from_a_call_that_is_not_in_this_workspace_do_not_refuse_the_import(
    api: Client, personas: Personas
) -> None:
    theirs = published_workflow(personas.other_workspace, SCORE)
    for target in (theirs.id, unused_id()):
        created = send(
            api, "post", "/workflows", caller(target, f"Reads {target}", read="{{ call.score }}")
        )
        assert created.status_code == 201, created.content
        assert [issue["message"] for issue in created.json()["issues"]] == [
            f"Workflow #{target} is not in this workspace."
        ]


def test_fields_read_from_a_call_of_this_workspace_are_checked_on_import(
    api: Client, personas: Personas
) -> None:
    score = published_workflow(personas.workspace, SCORE)
    fine = send(api, "post", "/workflows", caller(score.id, "Fine", read="{{ call.score }}"))
    assert fine.status_code == 201 and fine.json()["issues"] == []
    wrong = send(api, "post", "/workflows", caller(score.id, "Wrong", read="{{ call.scor }}"))
    assert wrong.status_code == 422
    assert [issue["message"] for issue in wrong.json()["details"]] == [
        '"call.scor" does not exist: call has no field "scor". Did you mean "score"?'
    ]
    checked = send(api, "post", "/workflows/validate", caller(score.id, read="{{ call.score }}"))
    assert checked.json() == {"valid": True, "issues": []}


def test_the_run_workflow_command_refuses_the_file_naming_the_step_the_same_way(
    personas: Personas, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    theirs = published_workflow(personas.other_workspace, SHOUT)
    answers = {}
    for label, target in (("theirs", theirs.id), ("none", unused_id())):
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(caller(target, f"File {label}")))
        out = StringIO()
        with pytest.raises(SystemExit) as exited:
            call_command(
                "run_workflow", str(path), "--workspace", personas.workspace.slug, stdout=out
            )
        assert exited.value.code == 2
        answers[label] = json.loads(out.getvalue())
        assert answers[label] == {
            "valid": False,
            "errors": [
                {
                    "step": "call",
                    "field": "workflow",
                    "message": f"Workflow #{target} is not in this workspace.",
                }
            ],
        }
    assert without_ids(answers["theirs"]) == without_ids(answers["none"])
    assert not Run.objects.exists()


# --- a cycle through another workspace is neither walked nor named --------------------------


def test_the_call_chain_check_walks_only_this_workspaces_workflows(personas: Personas) -> None:
    top = services.workflow_create(
        workspace=personas.workspace, definition=caller(unused_id(), "Top"), user=None
    )
    # Rows written before calls were checked: ours calls theirs, theirs calls back.
    theirs = Workflow.objects.create(
        workspace=personas.other_workspace, name="Their secret plan", definition=SHOUT
    )
    WorkflowVersion.objects.create(workflow=theirs, number=1, definition=caller(top.id, "Theirs"))
    middle = Workflow.objects.create(workspace=personas.workspace, name="Middle", definition=SHOUT)
    WorkflowVersion.objects.create(
        workflow=middle, number=1, definition=caller(theirs.id, "Middle")
    )
    top.definition = caller(middle.id, "Top")
    top.save(update_fields=["definition"])
    _, issues = services.definition_check(top.definition, workflow=top)
    assert "Their secret plan" not in json.dumps([issue.to_dict() for issue in issues])
    assert not any("cycle" in issue.message for issue in issues)


# --- at run time -------------------------------------------------------------------------


@pytest.mark.parametrize("read", ["{{ call }}", "{{ call.score }}"])
def test_a_version_whose_called_workflow_was_deleted_since_fails_at_that_step(
    engine_in_process: None, personas: Personas, read: str
) -> None:
    score = published_workflow(personas.workspace, SCORE)
    score_id = score.id
    workflow = published_workflow(personas.workspace, caller(score_id, read=read))
    services.workflow_delete(workflow=score, user=None)

    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"text": "x"})
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    call = steps_of(run)["call"]
    assert call.status == StepRun.Status.FAILED
    assert call.error == (
        f"Workflow #{score_id} is not a workflow of this workspace (deleted or archived?)."
    )
    assert not Run.objects.filter(parent=run).exists()


def test_a_stored_version_calling_an_outsiders_workflow_runs_nothing_of_theirs_and_says_the_same(
    engine_in_process: None, personas: Personas
) -> None:
    theirs = published_workflow(personas.other_workspace, SHOUT)
    errors = {}
    for label, target in (("theirs", theirs.id), ("none", unused_id())):
        workflow = Workflow.objects.create(
            workspace=personas.workspace, name=f"Old {label}", definition=caller(target)
        )
        # A version stored before calls were checked on publish.
        WorkflowVersion.objects.create(workflow=workflow, number=1, definition=caller(target))
        run = services.run_start(
            workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"text": "x"}
        )
        run.refresh_from_db()
        assert run.status == Run.Status.FAILED
        errors[label] = steps_of(run)["call"].error
    assert re.sub(r"#\d+", "#N", errors["theirs"]) == re.sub(r"#\d+", "#N", errors["none"])
    assert not Run.objects.filter(workspace=personas.other_workspace).exists()
    assert not Run.objects.filter(workflow=theirs).exists()
