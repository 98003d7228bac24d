from __future__ import annotations

import pytest

from workflows.builder.definition import Definition, validate_definition
from workflows.runtime.flow import index_of, next_key, skipped_between

MODELS = {"gpt-4.1-mini": 32768}


def definition() -> Definition:
    data = {
        "name": "Branches",
        "inputs": [{"name": "kind"}],
        "steps": [
            {"key": "start", "type": "template", "template": "{{ kind }}"},
            {
                "key": "route",
                "type": "condition",
                "cases": [
                    {"left": "{{ kind }}", "op": "equals", "right": "a", "goto": "for_a"},
                    {"left": "{{ kind }}", "op": "equals", "right": "stop", "goto": "end"},
                ],
                "else": "for_other",
            },
            {"key": "for_a", "type": "template", "template": "A", "next": "finish"},
            {"key": "for_other", "type": "template", "template": "other"},
            {"key": "finish", "type": "template", "template": "{{ for_a }}{{ for_other }}"},
        ],
    }
    parsed, issues = validate_definition(data, models=MODELS)
    assert issues == [] and parsed is not None
    return parsed


def test_it_goes_to_the_following_step_by_default() -> None:
    assert next_key(definition(), 0, "a") == "route"


def test_it_follows_a_condition_output() -> None:
    assert next_key(definition(), 1, {"case": 0, "goto": "for_a"}) == "for_a"
    assert next_key(definition(), 1, {"case": None, "goto": "for_other"}) == "for_other"


def test_it_follows_next() -> None:
    assert next_key(definition(), 2, "A") == "finish"


def test_it_ends_after_the_last_step() -> None:
    assert next_key(definition(), 4, "done") == "end"


def test_it_refuses_a_condition_output_that_is_not_a_dict() -> None:
    with pytest.raises(TypeError):
        next_key(definition(), 1, "for_a")


def test_it_lists_the_steps_jumped_over() -> None:
    assert skipped_between(definition(), 1, "for_other") == ["for_a"]
    assert skipped_between(definition(), 2, "finish") == ["for_other"]
    assert skipped_between(definition(), 1, "end") == ["for_a", "for_other", "finish"]


def test_it_skips_nothing_when_going_to_the_following_step() -> None:
    assert skipped_between(definition(), 0, "route") == []
    assert skipped_between(definition(), 4, "end") == []


def test_it_finds_a_step_by_key() -> None:
    assert index_of(definition(), "for_other") == 3
    with pytest.raises(KeyError):
        index_of(definition(), "nope")
