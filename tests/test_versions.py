"""What changed between two definitions (workflows/builder/versions.py)."""

from __future__ import annotations

import copy

from workflows.builder.versions import change_summary, definition_diff

BASE = {
    "name": "Chain",
    "description": "",
    "inputs": [{"name": "topic", "type": "text", "required": True}],
    "steps": [
        {"key": "outline", "type": "llm", "prompt": "Outline {{ topic }}.", "temperature": 0.7},
        {
            "key": "draft",
            "type": "llm",
            "prompt": "Write about {{ topic }}.\nUse:\n{{ outline }}\nBe brief.",
        },
        {"key": "polish", "type": "template", "template": "{{ draft }}"},
    ],
    "output": None,
}


def edited() -> dict:
    return copy.deepcopy(BASE)


def test_the_first_version_is_summarised_by_its_steps() -> None:
    assert change_summary(None, BASE) == "First version: 3 steps (outline, draft, polish)."


def test_no_change_says_so() -> None:
    assert change_summary(BASE, edited()) == "No changes since the previous version."
    assert definition_diff(BASE, edited()).is_empty


def test_added_removed_and_changed_steps_are_named_with_the_fields_that_changed() -> None:
    after = edited()
    after["steps"][1]["prompt"] = "Write about {{ topic }}.\nUse:\n{{ outline }}\nBe funny."
    after["steps"][1]["temperature"] = 0.2
    del after["steps"][2]
    after["steps"].append({"key": "title", "type": "llm", "prompt": "Title for {{ draft }}"})
    summary = change_summary(BASE, after)
    assert (
        summary
        == "Added step title; removed step polish; changed the prompt, temperature of draft."
    )


def test_inputs_output_and_name_changes_are_summarised() -> None:
    after = edited()
    after["inputs"].append({"name": "tone", "type": "text", "required": False, "default": "warm"})
    after["inputs"][0]["required"] = False
    after["output"] = "{{ polish }}"
    after["name"] = "Better chain"
    summary = change_summary(BASE, after)
    assert summary == (
        "Added input tone; changed the required of topic; changed the output; "
        'renamed the workflow to "Better chain".'
    )


def test_a_reordered_step_is_reported_as_moved() -> None:
    after = edited()
    after["steps"] = [after["steps"][1], after["steps"][0], after["steps"][2]]
    diff = definition_diff(BASE, after)
    # Swapping two neighbours moves one of them; the third stays where it was.
    assert [item.status for item in diff.steps] == ["moved"]
    assert diff.steps[0].name in ("outline", "draft")
    assert change_summary(BASE, after) == f"Moved step {diff.steps[0].name}."


def test_a_changed_text_field_diffs_line_by_line() -> None:
    after = edited()
    after["steps"][1]["prompt"] = "Write about {{ topic }}.\nUse:\n{{ outline }}\nBe funny."
    change = definition_diff(BASE, after).steps[0]
    assert change.name == "draft" and change.status == "changed"
    lines = [(line.op, line.text) for line in change.fields[0].lines]
    assert ("-", "Be brief.") in lines and ("+", "Be funny.") in lines
    assert (" ", "{{ outline }}") in lines


def test_structured_fields_diff_as_indented_json() -> None:
    after = edited()
    after["steps"][0]["response_format"] = {
        "type": "json_schema",
        "name": "o",
        "schema": {"type": "object", "properties": {}},
    }
    change = definition_diff(BASE, after).steps[0]
    assert change.fields[0].field == "response_format"
    assert any(line.op == "+" and '"name": "o"' in line.text for line in change.fields[0].lines)


def test_an_empty_system_prompt_and_a_missing_one_are_the_same() -> None:
    after = edited()
    after["steps"][0]["system"] = ""
    assert definition_diff(BASE, after).is_empty


def test_broken_drafts_are_diffed_without_errors() -> None:
    broken = {"name": "x", "steps": ["junk", {"type": "llm"}], "inputs": "nope"}
    diff = definition_diff(BASE, broken)
    assert {item.status for item in diff.steps} >= {"removed"}
    assert change_summary(BASE, broken)


def test_changes_to_waiting_steps_are_named_by_their_fields() -> None:
    before = edited()
    before["steps"] += [
        {"key": "pause", "type": "wait", "seconds": 60},
        {"key": "call", "type": "workflow", "workflow": 3, "inputs": {"text": "{{ draft }}"}},
    ]
    after = copy.deepcopy(before)
    after["steps"][3]["seconds"] = 3600
    after["steps"][4]["inputs"] = {"text": "{{ polish }}"}
    after["steps"][4]["version"] = 2
    assert change_summary(before, after) == (
        "Changed the seconds of pause; changed the version, inputs of call."
    )
