"""The `map` step: a prompt or a workflow for each item of a JSON list, items
kept as they finish, the budget held per item, the list checked at
validation. The engine runs in this process (the items on threads of their
own); the crash and timing cases, with a real worker, are in
test_map_integration.py."""

from __future__ import annotations

import pytest

from tests.conftest import Personas
from tests.factories import published_workflow, steps_of
from workflows import services
from workflows.builder.definition import validate_definition
from workflows.models import Run, StepItem, StepRun, Workflow

ANSWER = {
    "type": "json_schema",
    "name": "answer",
    "schema": {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    },
}


def mapping(**step: object) -> dict:
    return {
        "name": "Mapper",
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ things }}",
                "prompt": "Say something about item {{ index }}: {{ item }}",
                "max_tokens": 20,
                **step,
            }
        ],
    }


def start(workflow: Workflow, inputs: dict | None = None) -> Run:
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs or {})
    run.refresh_from_db()
    return run


def items_of(run: Run) -> list[StepItem]:
    return list(StepItem.objects.filter(run=run).order_by("index"))


def issues_of(definition: dict) -> list[str]:
    _, issues = validate_definition(definition, models=services.allowed_models())
    return [str(issue) for issue in issues]


# --- over a prompt ---------------------------------------------------------------------


def test_a_map_runs_the_prompt_for_each_item_and_outputs_the_results_in_item_order(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    things = [f"thing-{n}" for n in range(7)]
    run = start(
        published_workflow(personas.workspace, mapping(concurrency=3, response_format=ANSWER)),
        {"things": things},
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert isinstance(run.output, list) and len(run.output) == 7
    assert all(set(result) == {"answer"} for result in run.output)
    items = items_of(run)
    assert [item.index for item in items] == list(range(7))
    assert [item.input for item in items] == things
    assert all(item.status == StepItem.Status.SUCCEEDED for item in items)
    assert [item.output for item in items] == run.output
    assert all(item.attempts == 1 and item.cost_nanousd > 0 for item in items)
    assert "item 3: thing-3" in items[3].messages[-1]["content"]
    for n in range(7):
        assert fake_calls(f"item {n}: thing-{n}") == 1
    step = steps_of(run)["each"]
    assert step.status == StepRun.Status.SUCCEEDED and step.state == {"total": 7}
    # The step is the sum of its items, and the run of its step: nothing counted twice.
    assert step.cost_nanousd == sum(item.cost_nanousd for item in items)
    assert step.tokens_in == sum(item.tokens_in for item in items)
    assert step.tokens_out == sum(item.tokens_out for item in items)
    assert run.cost_nanousd == step.cost_nanousd
    assert run.tokens_in == step.tokens_in and run.tokens_out == step.tokens_out


def test_a_later_step_reads_the_list_and_its_items_fields(
    engine_in_process: None, personas: Personas
) -> None:
    definition = mapping(response_format=ANSWER)
    definition["steps"].append(
        {"key": "after", "type": "template", "template": "{{ each.1.answer }}|{{ each | json }}"}
    )
    run = start(published_workflow(personas.workspace, definition), {"things": ["a", "b"]})
    assert run.status == Run.Status.SUCCEEDED, run.error
    first, rest = run.output.split("|", 1)
    assert first and first in rest


def test_an_empty_list_gives_an_empty_list(engine_in_process: None, personas: Personas) -> None:
    run = start(published_workflow(personas.workspace, mapping()), {"things": []})
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == []


def test_something_that_is_not_a_list_at_run_time_fails_the_step_clearly(
    engine_in_process: None, personas: Personas
) -> None:
    run = start(published_workflow(personas.workspace, mapping()), {"things": {"a": 1}})
    assert run.status == Run.Status.FAILED
    assert "“over” must give a JSON array (a list); it gave an object." in run.error


def test_a_list_longer_than_the_limit_fails_before_any_call(
    engine_in_process: None, personas: Personas, settings, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    settings.MAP_MAX_ITEMS = 3
    run = start(published_workflow(personas.workspace, mapping()), {"things": [1, 2, 3, 4]})
    assert run.status == Run.Status.FAILED
    assert "gave 4 items; a map runs at most 3 (MAP_MAX_ITEMS)" in run.error
    assert fake_calls() == 0 and items_of(run) == []


FAILING = "[[fake:context_length_exceeded]]"


@pytest.mark.parametrize(
    ("on_item_error", "middle"),
    [("skip", None), ("collect", "error")],
)
def test_a_failed_item_is_skipped_or_collected_and_the_others_kept(
    engine_in_process: None, personas: Personas, on_item_error: str, middle: str | None
) -> None:
    run = start(
        published_workflow(personas.workspace, mapping(on_item_error=on_item_error)),
        {"things": ["first", FAILING, "last"]},
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    first, failed, last = run.output
    assert isinstance(first, str) and first and isinstance(last, str) and last
    items = items_of(run)
    if middle is None:
        assert failed is None
        assert items[1].status == StepItem.Status.SKIPPED
    else:
        assert set(failed) == {"error"} and "context" in failed["error"]
        assert items[1].status == StepItem.Status.FAILED
    assert items[1].error and items[1].output is None


def test_a_failed_item_stops_the_map_by_default_naming_the_item(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    run = start(
        published_workflow(personas.workspace, mapping(concurrency=1)),
        {"things": ["first", FAILING, "never sent"]},
    )
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("Step “each” failed: Item 1 failed:")
    statuses = [item.status for item in items_of(run)]
    assert statuses == [StepItem.Status.SUCCEEDED, StepItem.Status.FAILED, StepItem.Status.PENDING]
    assert fake_calls("never sent") == 0
    step = steps_of(run)["each"]
    assert step.status == StepRun.Status.FAILED
    # What the finished item cost is on the failed step and the run, once.
    assert step.cost_nanousd == items_of(run)[0].cost_nanousd > 0
    run.refresh_from_db()
    assert run.cost_nanousd == step.cost_nanousd


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_map_whose_items_do_not_all_fit_the_budget_stops_at_the_budget(
    engine_in_process: None, personas: Personas, fake_calls, concurrency: int
) -> None:  # type: ignore[no-untyped-def]
    workspace = personas.workspace
    # Room for one item's worst case (max_tokens 400) and a tenth more: an item
    # goes only while what was spent leaves room for its worst case.
    one = _worst_case(mapping(max_tokens=400, concurrency=1), ["x"])
    workspace.budget_nanousd = one + one // 10
    workspace.save(update_fields=["budget_nanousd"])
    things = [f"budget item {n}" for n in range(12)]
    # With four at once, items wait for each other's holds to settle, then stop.
    run = start(
        published_workflow(workspace, mapping(max_tokens=400, concurrency=concurrency)),
        {"things": things},
    )
    assert run.status == Run.Status.FAILED
    assert "workspace budget exhausted" in run.error
    assert "items had finished; they are kept" in run.error
    items = items_of(run)
    done = [item for item in items if item.status == StepItem.Status.SUCCEEDED]
    # Real answers cost less than their worst case, so more than one fits, never all.
    assert 2 <= len(done) < 12
    waiting = [item for item in items if item.status != StepItem.Status.SUCCEEDED]
    assert all(item.status == StepItem.Status.PENDING for item in waiting)
    assert all(item.attempts == 0 for item in waiting)
    assert fake_calls("budget item") == len(done)
    step = steps_of(run)["each"]
    assert step.cost_nanousd == sum(item.cost_nanousd for item in done)
    run.refresh_from_db()
    assert run.cost_nanousd == step.cost_nanousd
    ledger = workspace.budget_months.get()
    assert ledger.spent_nanousd == step.cost_nanousd and ledger.reserved_nanousd == 0


def _worst_case(definition: dict, things: list) -> int:
    from workflows.steps import chat, module_for

    parsed, issues = validate_definition(definition, models=services.allowed_models())
    assert parsed is not None, issues
    step = parsed.steps[0]
    assert module_for(step).TYPE == "map"
    return chat.prepare(step, {"things": things, "item": things[0], "index": 0}).hold_nanousd


# --- validation ---------------------------------------------------------------------------


def test_a_map_over_something_that_is_not_a_list_is_refused_at_validation() -> None:
    text_input = mapping()
    text_input["inputs"] = [{"name": "things", "type": "text"}]
    assert any(
        'each.over: Input "things" is text, not a list' in issue for issue in issues_of(text_input)
    )

    over_text_step = mapping(over="{{ intro }}")
    over_text_step["steps"].insert(0, {"key": "intro", "type": "llm", "prompt": "Hi"})
    assert any('Step "intro" outputs text, not a list' in i for i in issues_of(over_text_step))

    over_a_string_field = mapping(over="{{ intro.answer }}")
    over_a_string_field["steps"].insert(
        0, {"key": "intro", "type": "llm", "prompt": "Hi", "response_format": ANSWER}
    )
    assert any(
        '"intro.answer" is not a list (its schema says string)' in i
        for i in issues_of(over_a_string_field)
    )

    not_one_reference = mapping(over="items: {{ things }}")
    assert any("Give one reference to a list" in i for i in issues_of(not_one_reference))
    assert any("each.over: " in i for i in issues_of(mapping(over="")))


def test_a_map_over_a_list_field_checks_the_item_fields_against_its_item_schema() -> None:
    extract = {
        "key": "extract",
        "type": "llm",
        "prompt": "List the people",
        "response_format": {
            "type": "json_schema",
            "name": "people",
            "schema": {
                "type": "object",
                "properties": {
                    "people": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                            "required": ["name"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["people"],
                "additionalProperties": False,
            },
        },
    }
    good = mapping(over="{{ extract.people }}", prompt="Greet {{ item.name }} ({{ index }})")
    good["steps"].insert(0, extract)
    assert issues_of(good) == []

    typo = mapping(over="{{ extract.people }}", prompt="Greet {{ item.nmae }}")
    typo["steps"].insert(0, extract)
    assert any('"item.nmae" does not exist' in i and '"name"' in i for i in issues_of(typo))

    index_field = mapping(prompt="{{ index.x }}")
    assert any("each.prompt" in i and "no fields" in i for i in issues_of(index_field))


def test_item_and_index_exist_only_in_the_item_templates() -> None:
    in_over = mapping(over="{{ item }}")
    assert any('each.over: Unknown variable "item"' in i for i in issues_of(in_over))
    later = mapping()
    later["steps"].append({"key": "after", "type": "template", "template": "{{ index }}"})
    assert any('after.template: Unknown variable "index"' in i for i in issues_of(later))
    assert issues_of(mapping(prompt="{{ item }} {{ item.anything }} {{ index }}")) == []


def test_a_map_over_a_workflow_that_calls_back_is_a_cycle() -> None:
    # The call graph sees a map's workflow like a workflow step's (services.call_issues).
    from workflows.steps import STEP_TYPES

    step = STEP_TYPES["map"].Config.model_validate(
        {"key": "m", "type": "map", "over": "{{ x }}", "workflow": 7, "version": 2}
    )
    assert STEP_TYPES["map"].calls(step) == [(7, 2)]


# --- over a workflow ----------------------------------------------------------------------

SHOUT = {
    "name": "Shout",
    "inputs": [{"name": "text", "type": "text"}, {"name": "n", "type": "number"}],
    "steps": [
        {"key": "loud", "type": "llm", "prompt": "Shout {{ n }}: {{ text }}", "max_tokens": 20}
    ],
}


def test_a_map_over_a_workflow_runs_a_child_per_item_at_most_concurrency_at_once(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    shout = published_workflow(personas.workspace, SHOUT)
    definition = mapping(
        prompt="",
        workflow=shout.id,
        inputs={"text": "{{ item }}", "n": "{{ index }}"},
        concurrency=3,
    )
    words = [f"word{n}" for n in range(7)]
    run = start(published_workflow(personas.workspace, definition), {"things": words})
    assert run.status == Run.Status.SUCCEEDED, run.error
    children = list(Run.objects.filter(parent=run).order_by("parent_item"))
    assert [child.parent_item for child in children] == list(range(7))
    assert all(child.status == Run.Status.SUCCEEDED for child in children)
    assert run.output == [child.output for child in children]
    for n, word in enumerate(words):
        assert fake_calls(f"Shout {n}: {word}") == 1
    items = items_of(run)
    assert [item.child_run_id for item in items] == [child.id for child in children]
    assert [item.input for item in items] == words
    assert all(item.status == StepItem.Status.SUCCEEDED for item in items)
    assert [item.cost_nanousd for item in items] == [child.cost_nanousd for child in children]
    # Never more than three children in flight: each started before the fourth-last finished.
    for later in range(3, 7):
        finished_before = [
            c for c in children[:later] if c.finished_at <= children[later].created_at
        ]
        assert len(finished_before) >= later - 2
    # The children's cost is in the run's totals once; the map's step carries none
    # (usage counts each child's own steps).
    assert run.cost_nanousd == sum(child.cost_nanousd for child in children) > 0
    assert steps_of(run)["each"].cost_nanousd == 0


def test_a_map_over_a_workflow_collects_a_failed_childs_error(
    engine_in_process: None, personas: Personas
) -> None:
    shout = published_workflow(personas.workspace, SHOUT)
    definition = mapping(
        prompt="",
        workflow=shout.id,
        inputs={"text": "{{ item }}", "n": "{{ index }}"},
        on_item_error="collect",
    )
    run = start(published_workflow(personas.workspace, definition), {"things": ["a", FAILING]})
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert isinstance(run.output[0], str)
    assert "failed" in run.output[1]["error"]
    assert items_of(run)[1].status == StepItem.Status.FAILED


# --- the run page ---------------------------------------------------------------------------

HOSTILE = '<img src=x onerror="alert(1)"> <script>alert(2)</script>'


def test_the_run_page_shows_how_many_items_are_done_and_each_item_escaped(
    engine_in_process: None, personas: Personas
) -> None:
    from tests.factories import client_for

    run = start(
        published_workflow(personas.workspace, mapping(on_item_error="collect")),
        {"things": [HOSTILE, {"html": HOSTILE}, FAILING]},
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    page = client_for(personas.alice).get(f"/w/{personas.workspace.slug}/runs/{run.id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "3 / 3 done" in html and "1 failed" in html
    assert 'id="step-each-item-2"' in html
    assert "<img src=x" not in html and "<script>alert(2)" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_a_running_maps_page_counts_the_items_done_so_far(personas: Personas) -> None:
    from tests.factories import client_for, run_row

    workflow = published_workflow(personas.workspace, mapping())
    run = run_row(
        workflow, status=Run.Status.RUNNING, finished_at=None, inputs={"things": list(range(120))}
    )
    StepRun.objects.create(
        run=run, key="each", position=0, type="map", status="running", state={"total": 120}
    )
    StepItem.objects.bulk_create(
        StepItem(
            run=run,
            step_key="each",
            index=n,
            input=n,
            status=StepItem.Status.SUCCEEDED if n < 37 else StepItem.Status.PENDING,
        )
        for n in range(120)
    )
    client = client_for(personas.alice)
    url = f"/w/{personas.workspace.slug}/runs/{run.id}/"
    html = client.get(url).content.decode()
    assert "37 / 120 done" in html
    # The live part the page polls every second says the same.
    live = client.get(url, headers={"HX-Request": "true", "HX-Target": "run-live"})
    assert live.status_code == 200 and "37 / 120 done" in live.content.decode()


# --- calls, the editor, resuming -----------------------------------------------------------


def test_a_map_over_a_workflow_is_checked_like_a_call_cycles_and_inputs_included(
    personas: Personas,
) -> None:
    a = published_workflow(personas.workspace, SHOUT | {"name": "A"})
    over_a = mapping(prompt="", workflow=a.id, inputs={"text": "{{ item }}", "n": "{{ index }}"})
    b = published_workflow(personas.workspace, over_a | {"name": "B"})
    # A's draft now maps over B, which maps over A's published version: a cycle.
    a.definition = mapping(prompt="", workflow=b.id, inputs={}) | {"name": "A"}
    a.save()
    _, issues = services.definition_check(a.definition, workflow=a)
    messages = [issue.message for issue in issues]
    assert any("cycle: A → B → A" in message for message in messages)
    # B needs its `things`: a map must give the called workflow's required inputs too.
    assert any("“B” needs things" in message for message in messages)


def test_the_editor_offers_item_and_index_with_the_items_fields_for_a_map(
    personas: Personas,
) -> None:
    from django.urls import reverse

    from tests.factories import client_for

    extract = {
        "key": "extract",
        "type": "llm",
        "prompt": "List the people",
        "response_format": {
            "type": "json_schema",
            "name": "people",
            "schema": {
                "type": "object",
                "properties": {
                    "people": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                            "required": ["name"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["people"],
                "additionalProperties": False,
            },
        },
    }
    definition = mapping(over="{{ extract.people }}", prompt="Hi {{ item.name }}")
    definition["steps"].insert(0, extract)
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=None
    )
    editor = reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])
    html = client_for(personas.alice).get(editor + "?panel=step&step=1").content.decode()
    assert 'data-insert="item"' in html and 'data-insert="index"' in html
    assert 'data-insert="item.name"' in html
    assert 'name="over"' in html and 'name="concurrency"' in html and 'name="prompt"' in html
    # The llm step before it has no item to offer.
    html = client_for(personas.alice).get(editor + "?panel=step&step=0").content.decode()
    assert 'data-insert="item"' not in html


def test_switching_a_map_to_a_workflow_and_back_in_the_editor(personas: Personas) -> None:
    from django.urls import reverse

    from tests.factories import client_for

    shout = published_workflow(personas.workspace, SHOUT)
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=mapping(), user=None
    )
    save = reverse("workflow_step_save", args=[personas.workspace.slug, workflow.id, 0])
    client = client_for(personas.alice)

    def post(**fields: str) -> None:
        response = client.post(save, {"step_key": "each", **fields}, headers={"HX-Request": "true"})
        assert response.status_code == 200, response.content[:300]

    post(mode="workflow")
    post(workflow=str(shout.id))
    post(**{"in-text": "{{ item }}", "in-n": "{{ index }}"})
    workflow.refresh_from_db()
    step = workflow.definition["steps"][0]
    assert step["workflow"] == shout.id and step["inputs"] == {
        "text": "{{ item }}",
        "n": "{{ index }}",
    }
    _, issues = services.definition_check(workflow.definition, workflow=workflow)
    assert issues == []
    post(mode="prompt", concurrency="12", on_item_error="collect")
    workflow.refresh_from_db()
    step = workflow.definition["steps"][0]
    assert "workflow" not in step and step["concurrency"] == 12
    assert step["on_item_error"] == "collect"


def test_resuming_a_map_stopped_at_the_budget_keeps_its_finished_items(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    workspace = personas.workspace
    one = _worst_case(mapping(max_tokens=400), ["x"])
    workspace.budget_nanousd = one + one // 10
    workspace.save(update_fields=["budget_nanousd"])
    things = [f"resumed item {n}" for n in range(6)]
    stopped = start(
        published_workflow(workspace, mapping(max_tokens=400, concurrency=1)), {"things": things}
    )
    assert stopped.status == Run.Status.FAILED
    done = {i.index for i in items_of(stopped) if i.status == StepItem.Status.SUCCEEDED}
    assert 0 < len(done) < 6
    workspace.budget_nanousd = None
    workspace.save(update_fields=["budget_nanousd"])
    resumed = services.run_resume(run=stopped, user=None)
    resumed.refresh_from_db()
    assert resumed.status == Run.Status.SUCCEEDED, resumed.error
    for n in range(6):
        assert fake_calls(f"resumed item {n}") == 1
    kept = [i for i in items_of(resumed) if i.index in done]
    assert all(i.cost_nanousd == 0 and i.attempts == 0 for i in kept)
    assert [i.output for i in kept] == [i.output for i in items_of(stopped) if i.index in done]
    # Only the items called in the resumed run are paid in it.
    assert resumed.cost_nanousd == sum(i.cost_nanousd for i in items_of(resumed)) > 0


def test_a_map_over_a_workflow_stops_at_a_failed_child_by_default(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    shout = published_workflow(personas.workspace, SHOUT)
    definition = mapping(
        prompt="",
        workflow=shout.id,
        inputs={"text": "{{ item }}", "n": "{{ index }}"},
        concurrency=1,
    )
    run = start(
        published_workflow(personas.workspace, definition),
        {"things": ["fine", FAILING, "never run"]},
    )
    assert run.status == Run.Status.FAILED
    failed_child = Run.objects.get(parent=run, parent_item=1)
    assert f"Item 1 failed: its run #{failed_child.id} failed" in run.error
    assert not Run.objects.filter(parent=run, parent_item=2).exists()
    assert fake_calls("never run") == 0
    statuses = [item.status for item in items_of(run)]
    assert statuses == [StepItem.Status.SUCCEEDED, StepItem.Status.FAILED]


def test_a_map_over_a_list_a_prompt_extracted_reads_each_items_fields(
    engine_in_process: None, personas: Personas
) -> None:
    definition = {
        "name": "Extract then map",
        "inputs": [{"name": "document", "type": "text"}],
        "steps": [
            {
                "key": "extract",
                "type": "llm",
                "prompt": "List the products in: {{ document }}",
                "max_tokens": 300,
                "response_format": {
                    "type": "json_schema",
                    "name": "products",
                    "schema": {
                        "type": "object",
                        "properties": {
                            "products": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {"name": {"type": "string"}},
                                    "required": ["name"],
                                    "additionalProperties": False,
                                },
                            }
                        },
                        "required": ["products"],
                        "additionalProperties": False,
                    },
                },
            },
            {
                "key": "pitch",
                "type": "map",
                "over": "{{ extract.products }}",
                "concurrency": 10,
                "prompt": "Pitch product number {{ index }}, named {{ item.name }}",
                "max_tokens": 40,
            },
        ],
    }
    run = start(published_workflow(personas.workspace, definition), {"document": "a catalogue"})
    assert run.status == Run.Status.SUCCEEDED, run.error
    products = steps_of(run)["extract"].output["products"]
    assert products, "the fake model listed no product"
    assert len(run.output) == len(products)
    for item, product in zip(items_of(run), products, strict=True):
        assert item.input == product
        assert f"named {product['name']}" in item.messages[-1]["content"]
