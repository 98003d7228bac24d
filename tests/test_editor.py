"""The editor: every action, every role, autosave, publish, versions and live test runs."""

from __future__ import annotations

import json

import pytest
from django.core import signing
from django.urls import reverse

from accounts.models import AuditEntry
from tests.conftest import Personas
from tests.factories import HTMX, client_for
from tests.polling import wait_for_run
from tests.servers import WorkerProcess
from workflows import services
from workflows.builder import starters
from workflows.models import Run, Workflow, WorkflowVersion

CHAIN = {
    "name": "Chain",
    "description": "",
    "inputs": [{"name": "ticket", "type": "text", "required": True}],
    "steps": [
        {
            "key": "triage",
            "type": "llm",
            "title": "Classify",
            "prompt": "Classify {{ ticket }}",
            "temperature": 0,
            "max_tokens": 100,
            "response_format": {
                "type": "json_schema",
                "name": "triage",
                "schema": {
                    "type": "object",
                    "properties": {"category": {"type": "string", "enum": ["billing", "other"]}},
                    "required": ["category"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "key": "route",
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
            "type": "template",
            "template": "Billing: {{ ticket }}",
            "next": "end",
        },
        {"key": "reply", "type": "llm", "prompt": "Reply to {{ ticket }}"},
    ],
    "output": "{{ billing_reply }}{{ reply }}",
}


@pytest.fixture
def workflow(personas: Personas) -> Workflow:
    return services.workflow_create(
        workspace=personas.workspace, definition=json.loads(json.dumps(CHAIN)), user=personas.alice
    )


def url(personas: Personas, name: str, workflow: Workflow, *args: object) -> str:
    return reverse(name, args=[personas.workspace.slug, workflow.id, *args])


def llm_fields(**overrides: str) -> dict[str, str]:
    fields = {
        "key": "triage",
        "title": "Classify",
        "system": "",
        "prompt": "Classify {{ ticket }}",
        "model": "gpt-4.1-mini",
        "temperature": "0",
        "max_tokens": "100",
        "response_type": "json_schema",
        "schema_name": "triage",
        "schema": json.dumps(CHAIN["steps"][0]["response_format"]["schema"]),
        "next": "",
    }
    return {**fields, **overrides}


def draft(workflow: Workflow) -> dict:
    workflow.refresh_from_db()
    return workflow.definition


def keys(workflow: Workflow) -> list[str]:
    return [step["key"] for step in draft(workflow)["steps"]]


# --- Seeing the editor -----------------------------------------------------------------------


def test_the_editor_draws_every_card_with_the_conditions_branches(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).get(url(personas, "workflow_editor", workflow))
    assert response.status_code == 200
    html = response.content.decode()
    for card in ("Inputs", "Classify", "route", "billing_reply", "reply", "Output"):
        assert card in html
    assert "billing → <strong>billing_reply</strong>" in html
    assert "else → <strong>reply</strong>" in html
    assert "data-autosave" in html and url(personas, "workflow_step_add", workflow) in html


def test_a_viewer_sees_everything_read_only_without_a_single_edit_control(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.vera)
    for query in (
        "",
        "?panel=step&step=0",
        "?panel=step&step=1",
        "?panel=inputs",
        "?panel=output",
        "?panel=run",
        "?panel=publish",
        "?panel=settings",
    ):
        response = client.get(url(personas, "workflow_editor", workflow) + query)
        assert response.status_code == 200, query
        html = response.content.decode()
        assert "data-autosave" not in html, query
        assert "draggable" not in html, query
        for name in (
            "workflow_step_add",
            "workflow_steps_reorder",
            "workflow_publish",
            "workflow_duplicate",
            "workflow_archive",
            "workflow_inputs_save",
            "workflow_output_save",
        ):
            assert url(personas, name, workflow) not in html, (query, name)
        assert url(personas, "workflow_step_delete", workflow, 0) not in html
        assert "Read-only" in html
    # ...and may test-run it.
    assert (
        url(personas, "workflow_test_run", workflow)
        in client.get(url(personas, "workflow_editor", workflow) + "?panel=run").content.decode()
    )


def test_an_outsider_and_another_workspaces_workflow_are_404s(
    personas: Personas, workflow: Workflow
) -> None:
    assert (
        client_for(personas.charlie).get(url(personas, "workflow_editor", workflow)).status_code
        == 404
    )
    theirs = services.workflow_create(
        workspace=personas.other_workspace, definition=CHAIN, user=None
    )
    response = client_for(personas.alice).get(
        reverse("workflow_editor", args=[personas.workspace.slug, theirs.id])
    )
    assert response.status_code == 404


def test_selecting_a_card_with_htmx_answers_with_the_side_panel_only(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).get(
        url(personas, "workflow_editor", workflow) + "?panel=step&step=1",
        **HTMX,
        HTTP_HX_TARGET="panel",
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="panel"')
    assert "Step 2 · Condition" in html and "<html" not in html
    assert 'name="case-0-goto"' in html


def test_the_variable_picker_offers_only_what_the_step_may_use(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    first = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=0").context[
        "variables"
    ]
    assert [variable.name for variable in first] == ["ticket", "payload"]
    last = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=3").context[
        "variables"
    ]
    assert [variable.name for variable in last] == [
        "ticket",
        "triage",
        "route",
        "billing_reply",
        "payload",
    ]
    assert [v.fields for v in last if v.name == "triage"] == [["category"]]


def test_an_unknown_panel_or_step_falls_back_to_a_sensible_one(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    for query in ("?panel=nope", "?panel=step&step=99", "?panel=step&step=x"):
        assert client.get(url(personas, "workflow_editor", workflow) + query).status_code == 200


@pytest.mark.parametrize("steps", [5, 50])
def test_the_editor_renders_with_a_constant_number_of_queries(
    personas: Personas,
    django_assert_max_num_queries,
    steps: int,  # type: ignore[no-untyped-def]
) -> None:
    definition = {
        "name": f"Long {steps}",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {
                "key": f"s{i}",
                "type": "llm",
                "prompt": f"Step {i} about {{{{ topic }}}} {{{{ s{i - 1} }}}}"
                if i
                else "Start {{ topic }}",
            }
            for i in range(steps)
        ],
    }
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    run = services.run_start(
        workflow=workflow,
        trigger=Run.Trigger.MANUAL,
        inputs={"topic": "x"},
        user=personas.bob,
        draft=True,
    )
    assert run.created_by == personas.bob
    client = client_for(personas.bob)
    with django_assert_max_num_queries(10):
        response = client.get(
            reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])
        )
    assert response.status_code == 200
    assert len(response.context["state"].cards) == steps


# --- Autosave ------------------------------------------------------------------------------------


def test_autosave_stores_the_step_and_answers_with_out_of_band_pieces(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 0),
        llm_fields(title="Sort it", prompt="Sort this:\r\n{{ ticket }}", temperature="0.4"),
        **HTMX,
    )
    assert response.status_code == 200
    step = draft(workflow)["steps"][0]
    assert (step["title"], step["prompt"], step["temperature"]) == (
        "Sort it",
        "Sort this:\n{{ ticket }}",
        0.4,
    )
    html = response.content.decode()
    assert 'id="save-state"' in html and 'id="card-head-0" hx-swap-oob="true"' in html
    assert 'id="err-prompt" class="field-issues" hx-swap-oob="true"' in html
    assert "<form" not in html, "the form being typed in is never replaced"


def test_a_mistyped_variable_is_saved_and_shown_next_to_the_field_with_the_valid_name(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    response = client.post(
        url(personas, "workflow_step_save", workflow, 0),
        llm_fields(prompt="Classify {{ tiket }}"),
        **HTMX,
    )
    assert response.status_code == 200
    assert draft(workflow)["steps"][0]["prompt"] == "Classify {{ tiket }}"
    html = response.content.decode()
    assert "Unknown variable &quot;tiket&quot;. Did you mean &quot;ticket&quot;?" in html
    assert '<mark class="ref-bad">{{ tiket }}</mark>' in html
    assert 'data-fix-bad="tiket" data-fix-good="ticket"' in html
    assert 'id="card-badges-0" hx-swap-oob="true"' in html and "1 problem" in html
    # The full page says the same on the card and the field.
    page = client.get(
        url(personas, "workflow_editor", workflow) + "?panel=step&step=0"
    ).content.decode()
    assert "Did you mean &quot;ticket&quot;" in page and "1 problem" in page


def test_malformed_schema_json_is_a_field_error_and_the_draft_keeps_what_was_typed(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    response = client.post(
        url(personas, "workflow_step_save", workflow, 0),
        llm_fields(schema='{"type": "object",', title="Kept"),
        **HTMX,
    )
    assert response.status_code == 422
    assert "Not valid JSON" in response.content.decode()
    step = draft(workflow)["steps"][0]
    assert step["title"] == "Kept"
    assert step["response_format"]["schema"] == '{"type": "object",'
    page = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=0")
    assert page.status_code == 200
    assert "Not valid JSON" in page.content.decode()
    assert "{&quot;type&quot;: &quot;object&quot;,</textarea>" in page.content.decode()


def test_schema_json_nested_too_deeply_for_the_parser_is_a_field_error_not_a_500(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post(
        url(personas, "workflow_step_save", workflow, 0), llm_fields(schema=deep), **HTMX
    )
    assert response.status_code == 422
    assert "Not valid JSON: it is nested too deeply." in response.content.decode()
    page = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=0")
    assert page.status_code == 200


def test_a_temperature_that_is_not_a_number_is_a_422_not_a_500(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 0), llm_fields(temperature="warm"), **HTMX
    )
    assert response.status_code == 422
    assert "Enter a number." in response.content.decode()


def test_without_javascript_a_save_redirects_back_to_the_panel(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 0), llm_fields(title="Plain")
    )
    assert response.status_code == 302 and response["Location"].endswith("?panel=step&step=0")
    assert draft(workflow)["steps"][0]["title"] == "Plain"


def test_renaming_a_step_follows_its_references(personas: Personas, workflow: Workflow) -> None:
    client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 0), llm_fields(key="kind"), **HTMX
    )
    definition = draft(workflow)
    assert definition["steps"][1]["cases"][0]["left"] == "{{ kind.category }}"
    assert services.definition_check(definition)[1] == []


def test_switching_the_answer_format_rerenders_the_editor_with_the_schema_fields(
    personas: Personas, workflow: Workflow
) -> None:
    fields = {
        "key": "reply",
        "title": "",
        "system": "",
        "prompt": "Reply to {{ ticket }}",
        "model": "gpt-4.1-mini",
        "temperature": "0.7",
        "max_tokens": "1024",
        "response_type": "json_schema",
        "next": "",
        "action": "refresh",
    }
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 3), fields, **HTMX
    )
    assert response.status_code == 200
    assert (
        'id="editor"' in response.content.decode() and 'name="schema"' in response.content.decode()
    )
    response_format = draft(workflow)["steps"][3]["response_format"]
    assert (
        response_format["type"] == "json_schema"
        and response_format["schema"]["additionalProperties"] is False
    )


def test_a_sample_generates_a_strict_schema(personas: Personas, workflow: Workflow) -> None:
    sample = json.dumps({"category": "billing", "urgent": True, "tags": ["refund"]})
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 0),
        {**llm_fields(), "sample": sample, "action": "schema_from_sample"},
        **HTMX,
    )
    assert response.status_code == 200
    schema = draft(workflow)["steps"][0]["response_format"]["schema"]
    assert schema["required"] == ["category", "urgent", "tags"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "sample, message", [("{nope", "Not valid JSON"), ("[1, 2]", "must be a JSON object")]
)
def test_a_bad_sample_is_a_field_error(
    personas: Personas, workflow: Workflow, sample: str, message: str
) -> None:
    before = draft(workflow)["steps"][0]["response_format"]
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_save", workflow, 0),
        {**llm_fields(), "sample": sample, "action": "schema_from_sample"},
        **HTMX,
    )
    assert response.status_code == 422
    assert message in response.content.decode()
    assert draft(workflow)["steps"][0]["response_format"] == before


def test_condition_cases_are_edited_added_and_removed(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    fields = {
        "key": "route",
        "title": "",
        "case_count": "1",
        "case-0-left": "{{ triage.category }}",
        "case-0-op": "not_equals",
        "case-0-right": "other",
        "case-0-goto": "billing_reply",
        "else": "end",
    }
    client.post(url(personas, "workflow_step_save", workflow, 1), fields, **HTMX)
    step = draft(workflow)["steps"][1]
    assert step["cases"][0]["op"] == "not_equals" and step["else"] == "end"
    client.post(
        url(personas, "workflow_step_save", workflow, 1), {**fields, "action": "add_case"}, **HTMX
    )
    assert len(draft(workflow)["steps"][1]["cases"]) == 2
    client.post(
        url(personas, "workflow_step_save", workflow, 1),
        {
            **fields,
            "case_count": "2",
            "case-1-left": "",
            "case-1-op": "is_empty",
            "case-1-goto": "end",
            "action": "remove_case:0",
        },
        **HTMX,
    )
    cases = draft(workflow)["steps"][1]["cases"]
    assert [case["op"] for case in cases] == ["is_empty"]


def test_inputs_are_edited_and_a_rename_follows_the_references(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    response = client.post(
        url(personas, "workflow_inputs_save", workflow),
        {
            "input_count": "1",
            "input-0-name": "message",
            "input-0-type": "text",
            "input-0-required": "on",
            "input-0-default": "",
            "input-0-description": "The ticket",
        },
        **HTMX,
    )
    assert response.status_code == 200
    definition = draft(workflow)
    assert (
        definition["inputs"]
        == [
            {
                "name": "message",
                "type": "text",
                "required": True,
                "description": "The ticket",
                "default": None,
            }
        ]
        or definition["inputs"][0]["name"] == "message"
    )
    assert definition["steps"][0]["prompt"] == "Classify {{ message }}"
    assert services.definition_check(definition)[1] == []


def test_inputs_can_be_added_and_removed_and_bad_defaults_are_field_errors(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    base = {
        "input_count": "1",
        "input-0-name": "ticket",
        "input-0-type": "text",
        "input-0-required": "on",
    }
    client.post(
        url(personas, "workflow_inputs_save", workflow), {**base, "action": "add_input"}, **HTMX
    )
    assert [spec["name"] for spec in draft(workflow)["inputs"]] == ["ticket", "input_5"]
    response = client.post(
        url(personas, "workflow_inputs_save", workflow),
        {
            **base,
            "input_count": "2",
            "input-1-name": "count",
            "input-1-type": "number",
            "input-1-default": "many",
        },
        **HTMX,
    )
    assert response.status_code == 422 and "Enter a number." in response.content.decode()
    assert draft(workflow)["inputs"][1]["default"] == "many", "kept as typed"
    client.post(
        url(personas, "workflow_inputs_save", workflow),
        {
            **base,
            "input_count": "2",
            "input-1-name": "count",
            "input-1-type": "number",
            "action": "remove_input:1",
        },
        **HTMX,
    )
    assert [spec["name"] for spec in draft(workflow)["inputs"]] == ["ticket"]


def test_the_output_is_a_template_or_the_last_steps_output(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    client.post(
        url(personas, "workflow_output_save", workflow),
        {"output_mode": "template", "output": "Answer: {{ reply }}"},
        **HTMX,
    )
    assert draft(workflow)["output"] == "Answer: {{ reply }}"
    client.post(
        url(personas, "workflow_output_save", workflow),
        {"output_mode": "last", "action": "refresh"},
        **HTMX,
    )
    assert draft(workflow)["output"] is None


def test_renaming_the_workflow_refuses_a_name_already_taken(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_create(
        workspace=personas.workspace, definition={**CHAIN, "name": "Taken"}, user=None
    )
    client = client_for(personas.bob)
    response = client.post(
        url(personas, "workflow_settings_save", workflow),
        {"name": "Taken", "description": "Still saved"},
        **HTMX,
    )
    assert response.status_code == 422 and "already called" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.name == "Chain" and workflow.description == "Still saved"
    client.post(
        url(personas, "workflow_settings_save", workflow),
        {"name": "Support", "description": ""},
        **HTMX,
    )
    workflow.refresh_from_db()
    assert workflow.name == "Support"


# --- Shape of the chain ---------------------------------------------------------------------------


def test_a_step_is_added_between_two_cards_and_its_panel_opens(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_add", workflow), {"position": "1", "kind": "template"}, **HTMX
    )
    assert response.status_code == 200
    assert keys(workflow) == ["triage", "step_5", "route", "billing_reply", "reply"]
    assert response.context["panel"] == "step" and response.context["panel_index"] == 1
    assert response["HX-Replace-Url"].endswith("?panel=step&step=1")


def test_an_unknown_step_kind_is_refused_without_a_change(
    personas: Personas, workflow: Workflow
) -> None:
    response = client_for(personas.bob).post(
        url(personas, "workflow_step_add", workflow), {"position": "1", "kind": "email"}, **HTMX
    )
    assert response.status_code == 204 and "toast" in response["HX-Trigger"]
    assert len(keys(workflow)) == 4


def test_steps_move_up_and_down_with_the_keyboard_buttons(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    response = client.post(
        url(personas, "workflow_step_move", workflow, 3), {"direction": "up"}, **HTMX
    )
    assert keys(workflow) == ["triage", "route", "reply", "billing_reply"]
    assert response.context["focus"] == "#move-up-2"
    client.post(url(personas, "workflow_step_move", workflow, 0), {"direction": "down"}, **HTMX)
    assert keys(workflow) == ["route", "triage", "reply", "billing_reply"]


def test_a_drag_and_drop_reorder_posts_the_new_order(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    response = client.post(
        url(personas, "workflow_steps_reorder", workflow),
        {"order": "0,1,3,2", "moved": "3"},
        **HTMX,
    )
    assert response.status_code == 200 and response.context["panel_index"] == 2
    assert keys(workflow) == ["triage", "route", "reply", "billing_reply"]
    bad = client.post(url(personas, "workflow_steps_reorder", workflow), {"order": "0,0,1"}, **HTMX)
    assert bad.status_code == 204
    assert keys(workflow) == ["triage", "route", "reply", "billing_reply"]


def test_a_deleted_step_comes_back_with_undo(personas: Personas, workflow: Workflow) -> None:
    client = client_for(personas.bob)
    response = client.post(url(personas, "workflow_step_delete", workflow, 2), **HTMX)
    assert keys(workflow) == ["triage", "route", "reply"]
    html = response.content.decode()
    assert "Deleted “billing_reply”" in html and 'id="undo-button"' in html
    token = response.context["undo"]["token"]
    client.post(url(personas, "workflow_step_restore", workflow), {"token": token}, **HTMX)
    assert draft(workflow) == services.definition_parse(CHAIN).model_dump(
        mode="json", by_alias=True
    )


def test_an_undo_token_only_works_for_its_own_workflow(
    personas: Personas, workflow: Workflow
) -> None:
    other = services.workflow_create(
        workspace=personas.workspace, definition={**CHAIN, "name": "Other"}, user=None
    )
    token = signing.dumps(
        {"workflow": other.id, "index": 0, "step": {"key": "x"}}, salt="stepwise.editor.undo"
    )
    client = client_for(personas.bob)
    assert (
        client.post(
            url(personas, "workflow_step_restore", workflow), {"token": token}, **HTMX
        ).status_code
        == 404
    )
    forged = client.post(
        url(personas, "workflow_step_restore", workflow), {"token": "forged"}, **HTMX
    )
    assert forged.status_code == 204
    assert len(keys(workflow)) == 4


EDIT_POSTS = [
    ("workflow_step_save", (0,), {"title": "x"}),
    ("workflow_step_add", (), {"position": "0", "kind": "llm"}),
    ("workflow_step_move", (1,), {"direction": "up"}),
    ("workflow_steps_reorder", (), {"order": "3,2,1,0"}),
    ("workflow_step_delete", (0,), {}),
    ("workflow_step_restore", (), {"token": "x"}),
    ("workflow_inputs_save", (), {"input_count": "0"}),
    ("workflow_output_save", (), {"output_mode": "last"}),
    ("workflow_settings_save", (), {"name": "Hacked"}),
    ("workflow_publish", (), {"summary": "x"}),
    ("workflow_version_restore", (1,), {}),
]


@pytest.mark.parametrize("name, args, data", EDIT_POSTS, ids=[item[0] for item in EDIT_POSTS])
def test_the_server_refuses_every_edit_by_a_viewer_and_by_an_outsider(
    personas: Personas, workflow: Workflow, name: str, args: tuple, data: dict
) -> None:
    services.workflow_publish(workflow=workflow, user=None)
    before = draft(workflow)
    target = url(personas, name, workflow, *args)
    assert client_for(personas.vera).post(target, data, **HTMX).status_code == 403
    assert client_for(personas.charlie).post(target, data, **HTMX).status_code == 404
    assert draft(workflow) == before
    assert WorkflowVersion.objects.filter(workflow=workflow).count() == 1


def test_editing_get_requests_are_not_allowed(personas: Personas, workflow: Workflow) -> None:
    before = draft(workflow)
    response = client_for(personas.bob).get(url(personas, "workflow_step_delete", workflow, 0))
    # Sent to the editor (config/lib/post_only.py), the step untouched.
    assert response.status_code == 303
    assert response["Location"] == url(personas, "workflow_editor", workflow)
    assert draft(workflow) == before


# --- Publish and versions -------------------------------------------------------------------------


def test_publish_proposes_a_summary_of_the_changes_and_keeps_the_edited_one(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.bob)
    services.workflow_publish(workflow=workflow, user=None)
    client.post(
        url(personas, "workflow_step_save", workflow, 0),
        llm_fields(prompt="Sort {{ ticket }}"),
        **HTMX,
    )
    panel = client.get(url(personas, "workflow_editor", workflow) + "?panel=publish")
    assert panel.context["publish_form"].initial["summary"] == "Changed the prompt of triage."
    response = client.post(
        url(personas, "workflow_publish", workflow), {"summary": "Shorter prompt"}, **HTMX
    )
    assert response.status_code == 200
    assert "Published version 2" in response["HX-Trigger"]
    version = workflow.versions.get(number=2)
    assert version.summary == "Shorter prompt" and version.author == personas.bob


def test_an_invalid_draft_cannot_be_published(personas: Personas, workflow: Workflow) -> None:
    client = client_for(personas.bob)
    client.post(
        url(personas, "workflow_step_save", workflow, 0), llm_fields(prompt="{{ nope }}"), **HTMX
    )
    panel = client.get(
        url(personas, "workflow_editor", workflow) + "?panel=publish"
    ).content.decode()
    assert "Fix 1 problem first" in panel and 'id="publish-button"' not in panel
    response = client.post(url(personas, "workflow_publish", workflow), {"summary": ""}, **HTMX)
    assert response.status_code == 422
    assert not workflow.versions.exists()


def test_the_history_shows_each_version_with_its_diff_and_the_draft(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_publish(workflow=workflow, user=personas.alice, summary="First")
    changed = json.loads(json.dumps(CHAIN))
    changed["steps"][3]["prompt"] = "Answer {{ ticket }} kindly"
    services.workflow_save_draft(workflow=workflow, definition=changed, user=None)
    services.workflow_publish(workflow=workflow, user=personas.bob, summary="Kinder")
    changed["steps"][2]["template"] = "Billing team: {{ ticket }}"
    services.workflow_save_draft(workflow=workflow, definition=changed, user=None)
    response = client_for(personas.vera).get(url(personas, "workflow_versions", workflow))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Version 2" in html and "Kinder" in html and "Version 1" in html
    assert "Answer {{ ticket }} kindly" in html and "Billing team: {{ ticket }}" in html
    assert "Unpublished changes since version 2" in html
    assert "Restore into the draft" not in html, "viewers cannot restore"


def test_restoring_a_version_copies_it_into_the_draft_and_is_audited(
    personas: Personas, workflow: Workflow
) -> None:
    services.workflow_publish(workflow=workflow, user=None)
    client = client_for(personas.bob)
    client.post(url(personas, "workflow_step_delete", workflow, 3), **HTMX)
    response = client.post(url(personas, "workflow_version_restore", workflow, 1))
    assert response.status_code == 302
    assert keys(workflow) == ["triage", "route", "billing_reply", "reply"]
    assert AuditEntry.objects.filter(
        action="workflow.restore_version", target_id=str(workflow.id)
    ).exists()
    assert client.post(url(personas, "workflow_version_restore", workflow, 9)).status_code == 404


# --- Test runs ------------------------------------------------------------------------------------


def test_the_test_run_form_is_generated_from_the_inputs(personas: Personas) -> None:
    definition = {
        "name": "Typed",
        "inputs": [
            {"name": "text", "type": "text"},
            {"name": "count", "type": "number", "required": False, "default": 2},
            {"name": "flag", "type": "boolean", "required": False},
            {"name": "data", "type": "json"},
        ],
        "steps": [{"key": "t", "type": "template", "template": "{{ text }}"}],
    }
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    html = (
        client_for(personas.vera)
        .get(reverse("workflow_editor", args=[personas.workspace.slug, workflow.id]) + "?panel=run")
        .content.decode()
    )
    assert '<textarea name="input-text"' in html
    assert 'type="number" name="input-count"' in html and 'value="2"' in html
    assert 'type="checkbox" name="input-flag"' in html
    assert '<textarea name="input-data"' in html


def test_missing_and_malformed_inputs_are_form_errors(personas: Personas) -> None:
    definition = {
        "name": "Typed",
        "inputs": [{"name": "text", "type": "text"}, {"name": "data", "type": "json"}],
        "steps": [{"key": "t", "type": "template", "template": "{{ text }}"}],
    }
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    response = client_for(personas.vera).post(
        reverse("workflow_test_run", args=[personas.workspace.slug, workflow.id]),
        {"input-text": "", "input-data": "{oops"},
        **HTMX,
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "This field is required." in html and "Expected JSON" in html
    assert not Run.objects.exists()


def test_a_draft_with_problems_cannot_be_test_run(personas: Personas, workflow: Workflow) -> None:
    services.workflow_save_draft(
        workflow=workflow, definition={**CHAIN, "output": "{{ nope }}"}, user=None
    )
    response = client_for(personas.bob).post(
        url(personas, "workflow_test_run", workflow), {"input-ticket": "hi"}, **HTMX
    )
    assert response.status_code == 422
    assert "before running" in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.integration
def test_a_viewer_test_runs_the_draft_and_watches_each_card_until_polling_stops(
    worker: WorkerProcess, personas: Personas
) -> None:
    definition = json.loads(json.dumps(CHAIN))
    definition["steps"][0]["prompt"] = "Classify {{ ticket }} [[fake:choose=other]]"
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    client = client_for(personas.vera)
    response = client.post(
        url(personas, "workflow_test_run", workflow), {"input-ticket": "My order is late"}, **HTMX
    )
    assert response.status_code == 200
    run = Run.objects.get(workflow=workflow)
    assert (run.version, run.trigger, run.created_by) == (None, Run.Trigger.MANUAL, personas.vera)
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' in html and "queued" in html

    run = wait_for_run(run.id)
    assert run.status == Run.Status.SUCCEEDED, run.error
    poll = client.get(url(personas, "workflow_test_run_status", workflow, run.id), **HTMX)
    html = poll.content.decode()
    assert 'hx-trigger="every 1s"' not in html, "polling stops once the run has ended"
    assert 'id="card-run-0" hx-swap-oob="true"' in html
    assert "done" in html and "skipped" in html and "tokens" in html and "$0.0" in html
    assert reverse("run_detail", args=[personas.workspace.slug, run.id]) in html
    # The editor shows the same on its cards when it is opened again.
    page = client.get(url(personas, "workflow_editor", workflow)).content.decode()
    assert "card-run is-succeeded" in page and "card-run is-skipped" in page


def test_another_workflows_run_cannot_be_polled_through_this_one(
    personas: Personas, workflow: Workflow
) -> None:
    other = services.workflow_create(
        workspace=personas.workspace, definition={**CHAIN, "name": "Other"}, user=None
    )
    run = services.run_start(
        workflow=other, trigger=Run.Trigger.MANUAL, inputs={"ticket": "x"}, draft=True
    )
    response = client_for(personas.bob).get(
        url(personas, "workflow_test_run_status", workflow, run.id), **HTMX
    )
    assert response.status_code == 404


def test_starters_open_in_the_editor_without_problems(personas: Personas) -> None:
    client = client_for(personas.bob)
    for starter in (starters.BLANK, *starters.STARTERS):
        workflow = services.workflow_create(
            workspace=personas.workspace,
            definition={**starter.fresh_definition(), "name": f"From {starter.slug}"},
            user=None,
        )
        response = client.get(
            reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])
        )
        assert response.status_code == 200
        assert response.context["state"].issue_count == 0


@pytest.mark.parametrize(
    "name, args",
    [
        ("workflow_editor", ()),
        ("workflow_versions", ()),
        ("workflow_delete", ()),
        ("workflow_test_run_status", (1,)),
    ],
)
def test_every_page_of_a_workflow_is_a_404_for_an_outsider(
    personas: Personas, workflow: Workflow, name: str, args: tuple
) -> None:
    response = client_for(personas.charlie).get(url(personas, name, workflow, *args), **HTMX)
    assert response.status_code == 404


def test_a_viewer_reads_the_history_but_cannot_open_the_delete_page(
    personas: Personas, workflow: Workflow
) -> None:
    client = client_for(personas.vera)
    assert client.get(url(personas, "workflow_versions", workflow)).status_code == 200
    assert client.get(url(personas, "workflow_delete", workflow)).status_code == 403
