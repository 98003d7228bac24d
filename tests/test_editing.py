"""The editor's pure edit functions (workflows/builder/editing.py) and the starters."""

from __future__ import annotations

import pytest

from workflows import services
from workflows.builder import editing, starters
from workflows.steps import STEP_TYPES, condition, llm
from workflows.steps.llm import strict_schema_problems


def chain() -> dict:
    return {
        "name": "Chain",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {"key": "outline", "type": "llm", "prompt": "Outline {{ topic }}."},
            {
                "key": "draft",
                "type": "llm",
                "prompt": "Write from:\n{{ outline }}\n{{outline.x|json}}",
            },
            {
                "key": "route",
                "type": "condition",
                "cases": [
                    {"left": "{{ draft }}", "op": "contains", "right": "{{ topic }}", "goto": "end"}
                ],
                "else": "polish",
            },
            {"key": "polish", "type": "template", "template": "{{ draft }}", "next": "end"},
        ],
        "output": "{{ polish }} / {{ outline }}",
    }


def keys(definition: dict) -> list[str]:
    return [step["key"] for step in definition["steps"]]


def test_inserting_a_step_puts_a_fresh_llm_step_at_the_position_with_a_free_key() -> None:
    definition, index = editing.step_insert(chain(), position=1, kind="llm")
    assert index == 1
    assert keys(definition) == ["outline", "step_5", "draft", "route", "polish"]
    assert definition["steps"][1]["type"] == "llm"
    assert keys(chain()) == ["outline", "draft", "route", "polish"], "the input is not changed"


def test_a_new_template_reads_the_previous_step_and_a_new_condition_continues_to_the_next() -> None:
    definition, _ = editing.step_insert(chain(), position=2, kind="template")
    assert definition["steps"][2]["template"] == "{{ draft }}"
    definition, _ = editing.step_insert(chain(), position=2, kind="condition")
    condition = definition["steps"][2]
    assert condition["cases"][0]["left"] == "{{ draft }}"
    assert condition["else"] == "route"


def test_inserting_at_the_end_and_an_unknown_kind_or_place_are_refused() -> None:
    definition, index = editing.step_insert(chain(), position=4, kind="template")
    assert index == 4 and keys(definition)[-1] == "step_5"
    with pytest.raises(editing.EditError):
        editing.step_insert(chain(), position=9, kind="llm")
    with pytest.raises(editing.EditError):
        editing.step_insert(chain(), position=0, kind="email")


def test_new_steps_validate_once_their_prompt_is_written() -> None:
    valid = chain()
    valid["steps"][1]["prompt"] = "Write from:\n{{ outline }}"
    assert services.definition_check(valid)[1] == []
    for kind in STEP_TYPES:
        definition, index = editing.step_insert(valid, position=1, kind=kind)
        if kind == "llm":
            definition["steps"][index]["prompt"] = "Say hi."
        _, issues = services.definition_check(definition)
        if kind in ("workflow", "http"):
            # A new workflow step asks which workflow to run, an http step for
            # its URL, and nothing else.
            assert [i.field for i in issues] == [{"workflow": "workflow", "http": "url"}[kind]]
            continue
        if kind == "map":
            # A new map asks for its list and its prompt, and nothing else.
            assert [(i.field, i.message) for i in issues] == [
                ("over", "Say which list to go over, e.g. {{ extract.items }}."),
                ("prompt", "The prompt is empty."),
            ]
            continue
        assert issues == [], (kind, issues)


def test_moving_a_step_up_or_down_returns_its_new_index_and_stays_put_at_the_edges() -> None:
    definition, index = editing.step_move(chain(), index=1, offset=-1)
    assert (keys(definition), index) == (["draft", "outline", "route", "polish"], 0)
    definition, index = editing.step_move(chain(), index=0, offset=-1)
    assert (keys(definition), index) == (keys(chain()), 0)
    definition, index = editing.step_move(chain(), index=2, offset=1)
    assert (keys(definition), index) == (["outline", "draft", "polish", "route"], 3)


def test_reordering_takes_a_permutation_and_refuses_anything_else() -> None:
    definition = editing.steps_reorder(chain(), [3, 0, 1, 2])
    assert keys(definition) == ["polish", "outline", "draft", "route"]
    for order in ([0, 1, 2], [0, 0, 1, 2], [0, 1, 2, 7]):
        with pytest.raises(editing.EditError):
            editing.steps_reorder(chain(), order)


def test_a_removed_step_can_be_put_back_where_it_was() -> None:
    definition, removed = editing.step_remove(chain(), index=1)
    assert removed["key"] == "draft" and keys(definition) == ["outline", "route", "polish"]
    restored, index = editing.step_restore(definition, index=1, step=removed)
    assert index == 1 and restored == chain()


def test_renaming_a_step_rewrites_its_references_and_jumps_everywhere() -> None:
    definition = chain()
    step = {**definition["steps"][0], "key": "plan"}
    renamed = editing.step_replace(definition, index=0, step=step)
    assert renamed["steps"][1]["prompt"] == "Write from:\n{{ plan }}\n{{plan.x|json}}"
    assert renamed["output"] == "{{ polish }} / {{ plan }}"
    step = {**renamed["steps"][3], "key": "final"}
    renamed = editing.step_replace(renamed, index=3, step=step)
    assert renamed["steps"][2]["else"] == "final"


def test_a_rename_onto_a_name_in_use_leaves_references_alone() -> None:
    definition = chain()
    step = {**definition["steps"][0], "key": "topic"}
    renamed = editing.step_replace(definition, index=0, step=step)
    assert renamed["steps"][1]["prompt"].startswith("Write from:\n{{ outline }}")
    # ...and renaming away from a duplicated name does not claim the other's references.
    again = editing.step_replace(renamed, index=0, step={**step, "key": "plan"})
    assert "{{ topic }}" in again["steps"][0]["prompt"]


def test_renaming_an_input_rewrites_the_templates_that_use_it() -> None:
    inputs = [{"name": "subject", "type": "text"}]
    definition = editing.inputs_replace(chain(), inputs)
    assert definition["steps"][0]["prompt"] == "Outline {{ subject }}."
    assert definition["steps"][2]["cases"][0]["right"] == "{{ subject }}"


def test_inputs_can_be_added_and_removed() -> None:
    definition = editing.input_add(chain())
    assert [spec["name"] for spec in definition["inputs"]] == ["topic", "input_5"]
    definition = editing.input_remove(definition, index=0)
    assert [spec["name"] for spec in definition["inputs"]] == ["input_5"]
    with pytest.raises(editing.EditError):
        editing.input_remove(definition, index=3)


def test_variables_at_a_point_of_a_broken_draft_are_the_inputs_earlier_steps_and_payload() -> None:
    broken = {
        "inputs": [{"name": "a"}, {"oops": 1}],
        "steps": [{"key": "s1"}, "junk", {"key": "s3"}],
    }
    assert editing.variables_at_raw(broken, 2) == ["a", "s1", "payload"]
    assert editing.variables_at_raw({}, 0) == ["payload"]


def test_cases_can_be_added_and_removed() -> None:
    step = chain()["steps"][2]
    step = condition.case_add(step, previous="draft")
    assert len(step["cases"]) == 2 and step["cases"][1]["left"] == "{{ draft }}"
    step = condition.case_remove(step, index=0)
    assert step["cases"][0]["op"] == "equals"


# --- JSON schema from a sample ----------------------------------------------------


def test_a_sample_object_becomes_a_strict_schema() -> None:
    schema = llm.schema_from_sample(
        {
            "category": "billing",
            "score": 3,
            "ratio": 0.5,
            "urgent": True,
            "note": None,
            "tags": ["a", "b"],
            "customer": {"name": "Ada", "address": {"zip": "1000"}},
        }
    )
    assert schema == {
        "type": "object",
        "properties": {
            "category": {"type": "string"},
            "score": {"type": "integer"},
            "ratio": {"type": "number"},
            "urgent": {"type": "boolean"},
            "note": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "customer": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "address": {
                        "type": "object",
                        "properties": {"zip": {"type": "string"}},
                        "required": ["zip"],
                        "additionalProperties": False,
                    },
                },
                "required": ["name", "address"],
                "additionalProperties": False,
            },
        },
        "required": ["category", "score", "ratio", "urgent", "note", "tags", "customer"],
        "additionalProperties": False,
    }
    assert strict_schema_problems(schema) == []


def test_objects_in_a_list_are_merged_and_keys_some_lack_become_nullable() -> None:
    schema = llm.schema_from_sample(
        {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2.5, "note": "x"}]}
    )
    items = schema["properties"]["items"]["items"]
    assert items["properties"] == {
        "sku": {"type": "string"},
        "qty": {"type": "number"},
        "note": {"type": ["string", "null"]},
    }
    assert items["required"] == ["sku", "qty", "note"]
    assert strict_schema_problems(schema) == []


def test_mixed_and_empty_lists_still_give_a_valid_strict_schema() -> None:
    schema = llm.schema_from_sample(
        {"mixed": [1, "two"], "empty": [], "nested": [[1], [2]], "odd": [{"a": 1}, 3]}
    )
    assert schema["properties"]["mixed"]["items"] == {"type": ["integer", "string"]}
    assert schema["properties"]["empty"]["items"] == {"type": "string"}
    assert strict_schema_problems(schema) == []


def test_a_sample_that_is_not_an_object_is_refused_with_a_reason() -> None:
    for sample in ([1, 2], "text", 3, None):
        with pytest.raises(llm.SampleError, match="must be a JSON object"):
            llm.schema_from_sample(sample)


# --- Starters --------------------------------------------------------------------------


@pytest.mark.parametrize("starter", [starters.BLANK, *starters.STARTERS], ids=lambda s: s.slug)
def test_every_starter_is_a_valid_definition(starter: starters.Starter) -> None:
    _, issues = services.definition_check(starter.fresh_definition())
    assert issues == []


def test_there_are_at_least_five_starters_covering_the_promised_ideas() -> None:
    slugs = {starter.slug for starter in starters.STARTERS}
    assert {"summarize", "translate", "classify-route", "extract-json", "outline-draft"} <= slugs
    route = starters.starter_for("classify-route").definition
    assert route["steps"][0]["response_format"]["type"] == "json_schema"
    assert any(step["type"] == "condition" for step in route["steps"])
