from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from workflows.builder.definition import (
    Definition,
    InputError,
    Issue,
    coerce_inputs,
    validate_definition,
    variables_at,
)

MODELS = {"gpt-4.1-mini": 32768, "gpt-4.1-nano": 4096}
DELETE = object()

TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"label": {"type": "string"}},
                "required": ["label"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["category", "tags"],
    "additionalProperties": False,
}

EXAMPLE: dict[str, Any] = {
    "name": "Support triage",
    "description": "Classify a ticket and draft a reply",
    "inputs": [
        {"name": "ticket", "type": "text", "required": True},
        {"name": "tone", "type": "text", "required": False, "default": "friendly"},
    ],
    "steps": [
        {
            "key": "triage",
            "type": "llm",
            "system": "You triage support tickets.",
            "prompt": "Classify this ticket:\n{{ ticket }}",
            "temperature": 0,
            "max_tokens": 200,
            "response_format": {"type": "json_schema", "name": "triage", "schema": TRIAGE_SCHEMA},
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
            "type": "llm",
            "prompt": "Write a {{ tone }} reply about billing to:\n{{ ticket }}",
            "next": "end",
        },
        {"key": "reply", "type": "llm", "prompt": "Write a {{ tone }} reply to:\n{{ ticket }}"},
    ],
    "output": "{{ billing_reply }}{{ reply }}",
}


def changed(changes: dict[str, object]) -> dict[str, Any]:
    """EXAMPLE with `changes` applied; keys are dotted paths such as "steps.0.prompt"."""
    data = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
        node: Any = data
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return data


def issues_of(data: object) -> list[tuple[str | None, str, str]]:
    _, issues = validate_definition(data, models=MODELS)
    return [(issue.step, issue.field, issue.message) for issue in issues]


def test_it_accepts_the_example() -> None:
    definition, issues = validate_definition(EXAMPLE, models=MODELS)
    assert issues == []
    assert isinstance(definition, Definition)
    assert [step.key for step in definition.steps] == ["triage", "route", "billing_reply", "reply"]


def test_it_fills_in_defaults() -> None:
    definition, _ = validate_definition(EXAMPLE, models=MODELS)
    assert definition is not None
    reply = definition.steps[3].model_dump(mode="json", by_alias=True)
    assert reply == {
        "key": "reply",
        "type": "llm",
        "title": "",
        "next": None,
        "prompt": "Write a {{ tone }} reply to:\n{{ ticket }}",
        "system": "",
        "model": "gpt-4.1-mini",
        "temperature": 0.7,
        "max_tokens": 1024,
        "response_format": {"type": "text"},
    }
    assert definition.inputs[0].model_dump() == {
        "name": "ticket",
        "type": "text",
        "required": True,
        "default": None,
        "description": "",
    }


def test_it_round_trips_through_its_json_export() -> None:
    definition, _ = validate_definition(EXAMPLE, models=MODELS)
    assert definition is not None
    exported = definition.model_dump(mode="json", by_alias=True, exclude_none=False)
    assert exported["steps"][1]["else"] == "reply"
    assert exported["steps"][0]["response_format"]["schema"] == TRIAGE_SCHEMA
    again, issues = validate_definition(exported, models=MODELS)
    assert issues == []
    assert again is not None
    assert again.model_dump(mode="json", by_alias=True, exclude_none=False) == exported


DOCS = Path(__file__).resolve().parent.parent / "docs" / "workflow-format.md"


def test_every_complete_example_in_the_docs_validates() -> None:
    examples = re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert len(examples) >= 3
    for example in examples:
        assert issues_of(json.loads(example)) == []


def test_it_refuses_an_unknown_variable_and_suggests_the_nearest() -> None:
    data = changed({"steps.3.prompt": "Reply to {{ tikcet }}"})
    assert issues_of(data) == [
        ("reply", "prompt", 'Unknown variable "tikcet". Did you mean "ticket"?')
    ]


def test_it_suggests_only_variables_valid_at_that_step() -> None:
    data = changed({"steps.0.prompt": "{{ replyy }}"})
    assert issues_of(data) == [("triage", "prompt", 'Unknown variable "replyy".')]


def test_it_refuses_a_later_step() -> None:
    data = changed({"steps.0.prompt": "{{ ticket }} {{ reply }}"})
    assert issues_of(data) == [
        (
            "triage",
            "prompt",
            '"reply" is a later step; a step can only use inputs and earlier steps.',
        )
    ]


def test_it_refuses_the_step_itself() -> None:
    data = changed({"steps.3.prompt": "{{ reply }}"})
    assert issues_of(data) == [("reply", "prompt", 'A step cannot use its own output ("reply").')]


def test_it_refuses_a_field_the_schema_lacks_and_suggests_the_nearest() -> None:
    data = changed({"steps.1.cases.0.left": "{{ triage.categroy }}"})
    assert issues_of(data) == [
        (
            "route",
            "cases[0].left",
            '"triage.categroy" does not exist: triage has no field "categroy". Did you mean '
            '"category"?',
        )
    ]


def test_it_follows_array_items_by_index() -> None:
    assert issues_of(changed({"steps.3.prompt": "{{ triage.tags.0.label }}"})) == []
    assert issues_of(changed({"steps.3.prompt": "{{ triage.tags.first }}"})) == [
        ("reply", "prompt", '"triage.tags.first" does not exist: triage.tags has no field "first".')
    ]
    assert issues_of(changed({"steps.3.prompt": "{{ triage.tags.0.name }}"})) == [
        (
            "reply",
            "prompt",
            '"triage.tags.0.name" does not exist: triage.tags.0 has no field "name". Its fields: '
            "label.",
        )
    ]


def test_it_refuses_fields_below_a_scalar() -> None:
    data = changed({"steps.3.prompt": "{{ triage.category.name }}"})
    assert issues_of(data) == [
        (
            "reply",
            "prompt",
            '"triage.category.name" does not exist: triage.category has no field "name".',
        )
    ]


def test_it_follows_local_refs_and_any_of() -> None:
    schema = {
        "type": "object",
        "properties": {
            "contact": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]},
        },
        "required": ["contact"],
        "additionalProperties": False,
        "$defs": {
            "person": {
                "type": "object",
                "properties": {"email": {"type": "string"}},
                "required": ["email"],
                "additionalProperties": False,
            }
        },
    }
    data = changed(
        {"steps.0.response_format.schema": schema, "steps.3.prompt": "{{ triage.contact.email }}"}
    )
    data["steps"][1]["cases"][0]["left"] = "{{ triage.contact }}"
    assert issues_of(data) == []
    data["steps"][3]["prompt"] = "{{ triage.contact.phone }}"
    assert issues_of(data) == [
        (
            "reply",
            "prompt",
            '"triage.contact.phone" does not exist: triage.contact has no field "phone". Its '
            "fields: email.",
        )
    ]


def test_it_follows_a_recursive_schema_without_looping() -> None:
    tree = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"],
        "additionalProperties": False,
        "anyOf": [{"$ref": "#"}],
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
                "additionalProperties": False,
            }
        },
    }
    data = changed(
        {
            "steps.0.response_format.schema": tree,
            "steps.1.cases.0.left": "{{ triage.root.children.0.children.2.name }}",
            "steps.3.prompt": "{{ triage.root.children.0.nmae }}",
        }
    )
    assert issues_of(data) == [
        (
            "reply",
            "prompt",
            '"triage.root.children.0.nmae" does not exist: triage.root.children.0 has no field '
            '"nmae". '
            'Did you mean "name"?',
        )
    ]


def test_it_refuses_fields_of_a_text_step() -> None:
    data = changed({"steps.3.prompt": "{{ billing_reply.subject }}"})
    assert issues_of(data) == [
        (
            "reply",
            "prompt",
            'Step "billing_reply" outputs text, so "billing_reply.subject" does not exist; '
            "give it a JSON response format to use fields.",
        )
    ]


def test_it_allows_the_fields_of_a_condition_output() -> None:
    assert issues_of(changed({"steps.3.prompt": "{{ route.case }} {{ route.goto }}"})) == []
    assert issues_of(changed({"steps.3.prompt": "{{ route.target }}"}))[0][2].startswith(
        '"route.target" does not exist'
    )


def test_it_refuses_fields_of_a_text_input_but_not_of_a_json_input() -> None:
    data = changed({"steps.3.prompt": "{{ ticket.subject }}"})
    assert issues_of(data) == [
        (
            "reply",
            "prompt",
            'Input "ticket" is text, so "ticket.subject" does not exist; only json inputs have '
            "fields.",
        )
    ]
    data = changed(
        {"inputs.2": {"name": "order", "type": "json"}, "steps.3.prompt": "{{ order.items.0.sku }}"}
    )
    assert issues_of(data) == []


def test_it_allows_the_payload_anywhere() -> None:
    data = changed(
        {"steps.0.prompt": "{{ payload }} {{ payload.user.email }} {{ payload | json }}"}
    )
    assert issues_of(data) == []


def test_it_refuses_an_invalid_reference() -> None:
    data = changed({"steps.3.prompt": "{{ 1+1 }} and {{ a b }}"})
    assert [(step, field) for step, field, _ in issues_of(data)] == [("reply", "prompt")] * 2
    assert issues_of(data)[0][2].startswith('Invalid variable reference "{{ 1+1 }}"')


def test_it_checks_the_output_template_against_every_step_and_input() -> None:
    assert issues_of(changed({"output": "{{ ticket }} {{ triage.category }} {{ reply }}"})) == []
    assert issues_of(changed({"output": "{{ replyy }} {{ triage.nope }}"})) == [
        (None, "output", 'Unknown variable "replyy". Did you mean "reply"?'),
        (
            None,
            "output",
            '"triage.nope" does not exist: triage has no field "nope". Its fields: category, tags.',
        ),
    ]


def test_it_reports_every_problem_at_once() -> None:
    data = changed(
        {
            "name": DELETE,
            "steps.0.temperature": 2,
            "steps.2.prompt": "{{ tikcet }}",
            "steps.3.next": "triage",
        }
    )
    assert issues_of(data) == [
        (None, "name", "This field is required."),
        ("triage", "temperature", "Input should be less than or equal to 1."),
        ("billing_reply", "prompt", 'Unknown variable "tikcet". Did you mean "ticket"?'),
        (
            "reply",
            "next",
            '"triage" is an earlier step; a step can only go to a later step or "end", so that '
            "every run ends.",
        ),
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"steps": "all of them"},
        {"steps.0": None},
        {"steps.1": ["condition"]},
        {"steps.1.cases": "billing"},
        {"steps.1.cases.0": 7},
        {"steps.0.response_format": "json"},
        {"steps.0.response_format.schema": []},
        {"steps.0.response_format.schema.properties": {"category": 3}},
        {"inputs": {"ticket": "text"}},
        {"inputs.0": "ticket"},
        {"output": 5},
        {"name": ["x"]},
    ],
)
def test_it_reports_malformed_parts_instead_of_crashing(changes: dict[str, object]) -> None:
    _, issues = validate_definition(changed(changes), models=MODELS)
    assert issues


def test_it_returns_the_parsed_definition_with_semantic_issues() -> None:
    definition, issues = validate_definition(
        changed({"steps.3.prompt": "{{ nope }}"}), models=MODELS
    )
    assert definition is not None
    assert len(issues) == 1


def test_it_refuses_a_definition_that_is_not_an_object() -> None:
    assert validate_definition(["steps"], models=MODELS) == (
        None,
        [Issue(None, "", "A workflow definition must be a JSON object.")],
    )


NOT_STRICT = {
    "type": "object",
    "properties": {
        "address": {
            "type": "object",
            "properties": {"zip": {"type": "string"}},
            "additionalProperties": False,
        }
    },
    "required": ["address"],
    "additionalProperties": False,
}

LONG = "x" * 65

# (changes to EXAMPLE, expected (step, field, message)) — one row per kind of error.
PROBLEMS: list[tuple[str, dict[str, object], tuple[str | None, str, str]]] = [
    ("missing name", {"name": DELETE}, (None, "name", "This field is required.")),
    ("empty name", {"name": "  "}, (None, "name", "String should have at least 1 character.")),
    (
        "long name",
        {"name": "n" * 201},
        (None, "name", "String should have at most 200 characters."),
    ),
    ("missing steps", {"steps": DELETE}, (None, "steps", "This field is required.")),
    (
        "empty steps",
        {"steps": [], "output": None},
        (None, "steps", "A workflow needs at least one step."),
    ),
    ("unknown top field", {"outputs": "x"}, (None, "outputs", "Unknown field.")),
    ("unknown step field", {"steps.0.promt": "x"}, ("triage", "promt", "Unknown field.")),
    ("missing step type", {"steps.3.type": DELETE}, ("reply", "type", "This field is required.")),
    (
        "unknown step type",
        {"steps.3.type": "email"},
        (
            "reply",
            "type",
            'Unknown type "email" '
            "(expected 'llm', 'template', 'condition', 'workflow', 'map', 'wait', 'http', "
            "'approval').",
        ),
    ),
    (
        "missing key",
        {"steps.4": {"type": "template", "template": "x"}},
        ("steps[4]", "key", "This field is required."),
    ),
    ("missing prompt", {"steps.3.prompt": DELETE}, ("reply", "prompt", "This field is required.")),
    ("blank prompt", {"steps.3.prompt": " \n"}, ("reply", "prompt", "The prompt is empty.")),
    (
        "missing template",
        {"steps.3": {"key": "reply", "type": "template"}},
        ("reply", "template", "This field is required."),
    ),
    ("missing else", {"steps.1.else": DELETE}, ("route", "else", "This field is required.")),
    (
        "missing goto",
        {"steps.1.cases.0.goto": DELETE},
        ("route", "cases[0].goto", "This field is required."),
    ),
    ("no cases", {"steps.1.cases": []}, ("route", "cases", "A condition needs at least one case.")),
    (
        "unknown op",
        {"steps.1.cases.0.op": "startswith"},
        (
            "route",
            "cases[0].op",
            "Input should be 'equals', 'not_equals', 'contains', 'not_contains', 'matches', "
            "'is_empty', 'is_not_empty', 'gt' or 'lt'.",
        ),
    ),
    (
        "missing right",
        {"steps.1.cases.0.right": DELETE},
        ("route", "cases[0].right", '"equals" needs a right-hand value.'),
    ),
    (
        "non-numeric gt",
        {"steps.1.cases.0.op": "gt", "steps.1.cases.0.right": "lots"},
        ("route", "cases[0].right", '"gt" compares numbers, and "lots" is not a number.'),
    ),
    (
        "invalid regex",
        {"steps.1.cases.0.op": "matches", "steps.1.cases.0.right": "[a-z"},
        (
            "route",
            "cases[0].right",
            "Invalid regular expression: unterminated character set at position 4.",
        ),
    ),
    (
        "condition with next",
        {"steps.1.next": "reply"},
        ("route", "next", "A condition picks the next step with its cases and else; remove next."),
    ),
    (
        "invalid key",
        {"steps.4": {"key": "2nd-reply", "type": "template", "template": "x"}},
        (
            "2nd-reply",
            "key",
            '"2nd-reply" is not a valid name: use letters, digits and underscores, '
            "starting with a letter or underscore, at most 64 characters.",
        ),
    ),
    (
        "too long key",
        {"steps.4": {"key": LONG, "type": "template", "template": "x"}},
        (
            LONG,
            "key",
            f'"{LONG}" is not a valid name: use letters, digits and underscores, '
            "starting with a letter or underscore, at most 64 characters.",
        ),
    ),
    (
        "reserved key",
        {"steps.4": {"key": "payload", "type": "template", "template": "x"}},
        ("payload", "key", '"payload" is reserved; choose another name.'),
    ),
    (
        "reserved key in capitals",
        {"steps.4": {"key": "End", "type": "template", "template": "x"}},
        ("End", "key", '"End" is reserved; choose another name.'),
    ),
    (
        "reserved input name",
        {"inputs.1.name": "workflow", "steps.2.prompt": "x", "steps.3.prompt": "x"},
        (None, "inputs[1].name", '"workflow" is reserved; choose another name.'),
    ),
    (
        "invalid input name",
        {"inputs.1.name": "your tone", "steps.2.prompt": "x", "steps.3.prompt": "x"},
        (
            None,
            "inputs[1].name",
            '"your tone" is not a valid name: use letters, digits and underscores, '
            "starting with a letter or underscore, at most 64 characters.",
        ),
    ),
    (
        "duplicate step key",
        {"steps.2.key": "reply", "steps.1.cases.0.goto": "reply", "output": None},
        ("reply", "key", '"reply" is already used by step "reply".'),
    ),
    (
        "step key clashing with an input",
        {"steps.4": {"key": "Ticket", "type": "template", "template": "x"}},
        ("Ticket", "key", '"Ticket" is already used by input "ticket".'),
    ),
    (
        "duplicate input name",
        {"inputs.1.name": "ticket", "steps.2.prompt": "x", "steps.3.prompt": "x"},
        (None, "inputs[1].name", '"ticket" is already used by input "ticket".'),
    ),
    (
        "missing input name",
        {"inputs.1.name": DELETE, "steps.2.prompt": "x", "steps.3.prompt": "x"},
        (None, "inputs[1].name", "This field is required."),
    ),
    (
        "unknown input type",
        {"inputs.1.type": "date"},
        (None, "inputs[1].type", "Input should be 'text', 'number', 'boolean' or 'json'."),
    ),
    (
        "default of the wrong type",
        {"inputs.2": {"name": "count", "type": "number", "required": False, "default": "many"}},
        (None, "inputs[2].default", "Not a valid number default: Expected a number."),
    ),
    (
        "unknown goto",
        {"steps.1.cases.0.goto": "billing"},
        ("route", "cases[0].goto", 'Unknown step "billing". Did you mean "billing_reply"?'),
    ),
    (
        "goto to itself",
        {"steps.1.cases.0.goto": "route"},
        ("route", "cases[0].goto", 'A step cannot go to itself; use a later step or "end".'),
    ),
    (
        "goto backwards",
        {"steps.1.else": "triage"},
        (
            "route",
            "else",
            '"triage" is an earlier step; a step can only go to a later step or "end", so that '
            "every run ends.",
        ),
    ),
    (
        "unknown next",
        {"steps.2.next": "ending"},
        ("billing_reply", "next", 'Unknown step "ending". Did you mean "end"?'),
    ),
    (
        "temperature too high",
        {"steps.0.temperature": 1.5},
        ("triage", "temperature", "Input should be less than or equal to 1."),
    ),
    (
        "negative temperature",
        {"steps.0.temperature": -0.1},
        ("triage", "temperature", "Input should be greater than or equal to 0."),
    ),
    (
        "zero max_tokens",
        {"steps.0.max_tokens": 0},
        ("triage", "max_tokens", "Input should be greater than or equal to 1."),
    ),
    (
        "max_tokens over the limit",
        {"steps.0.max_tokens": 40000},
        ("triage", "max_tokens", "Input should be less than or equal to 32768."),
    ),
    (
        "max_tokens over the model's maximum",
        {"steps.0.model": "gpt-4.1-nano", "steps.0.max_tokens": 8000},
        ("triage", "max_tokens", "gpt-4.1-nano allows at most 4096 output tokens."),
    ),
    (
        "unknown model",
        {"steps.0.model": "gpt-2"},
        ("triage", "model", 'Unknown model "gpt-2" (allowed: gpt-4.1-mini, gpt-4.1-nano).'),
    ),
    (
        "unknown response format",
        {"steps.3.response_format": {"type": "xml"}},
        ("reply", "response_format.type", "Unknown type \"xml\" (expected 'text', 'json_schema')."),
    ),
    (
        "json schema without a schema",
        {"steps.0.response_format.schema": DELETE},
        ("triage", "response_format.schema", "This field is required."),
    ),
    (
        "invalid response format name",
        {"steps.0.response_format.name": "triage result"},
        (
            "triage",
            "response_format.name",
            "Use letters, digits and underscores, starting with a letter or underscore, at most "
            "64 characters.",
        ),
    ),
    (
        "invalid json schema",
        {
            "steps.0.response_format.schema": {"type": "object", "required": "category"},
            "steps.1.cases.0.left": "x",
        },
        (
            "triage",
            "response_format.schema",
            "schema.required: not a valid JSON Schema: 'category' is not of type 'array'",
        ),
    ),
    (
        "schema root not an object",
        {
            "steps.0.response_format.schema": {"type": "array", "items": {"type": "string"}},
            "steps.1.cases.0.left": "x",
        },
        ("triage", "response_format.schema", 'schema: the root must have "type": "object".'),
    ),
    (
        "schema without additionalProperties false",
        {"steps.0.response_format.schema.additionalProperties": DELETE},
        ("triage", "response_format.schema", 'schema: "additionalProperties" must be false.'),
    ),
    (
        "schema with an optional property",
        {"steps.0.response_format.schema": NOT_STRICT, "steps.1.cases.0.left": "x"},
        (
            "triage",
            "response_format.schema",
            'schema.properties.address: every property must be listed in "required" (missing: '
            "zip).",
        ),
    ),
    (
        "unknown variable",
        {"steps.3.prompt": "{{ tone }} {{ tiket }}"},
        ("reply", "prompt", 'Unknown variable "tiket". Did you mean "ticket"?'),
    ),
    (
        "later step",
        {"steps.0.system": "{{ route }}"},
        (
            "triage",
            "system",
            '"route" is a later step; a step can only use inputs and earlier steps.',
        ),
    ),
    (
        "field of a text step",
        {"output": "{{ reply.text }}"},
        (
            None,
            "output",
            'Step "reply" outputs text, so "reply.text" does not exist; give it a JSON response '
            "format to use fields.",
        ),
    ),
    (
        "invalid reference",
        {"steps.3.prompt": "{{ ticket | upper }}"},
        (
            "reply",
            "prompt",
            'Invalid variable reference "{{ ticket | upper }}": use {{ name }} or {{ step.field '
            "}}, "
            "optionally followed by | json.",
        ),
    ),
    (
        "invalid reference in a template step",
        {"steps.3": {"key": "reply", "type": "template", "template": "{{ ticket.0.1.x + 1 }}"}},
        (
            "reply",
            "template",
            'Invalid variable reference "{{ ticket.0.1.x + 1 }}": use {{ name }} or {{ step.field '
            "}}, "
            "optionally followed by | json.",
        ),
    ),
]


@pytest.mark.parametrize(
    "changes, expected",
    [(changes, expected) for _, changes, expected in PROBLEMS],
    ids=[row[0] for row in PROBLEMS],
)
def test_it_reports_each_kind_of_problem_with_its_step_and_field(
    changes: dict[str, object], expected: tuple[str | None, str, str]
) -> None:
    assert issues_of(changed(changes)) == [expected]


def test_an_issue_turns_into_a_dict() -> None:
    issue = Issue("reply", "prompt", "The prompt is empty.")
    assert issue.to_dict() == {
        "step": "reply",
        "field": "prompt",
        "message": "The prompt is empty.",
    }
    assert str(issue) == "reply.prompt: The prompt is empty."


def test_it_lists_the_variables_valid_at_each_step() -> None:
    definition, _ = validate_definition(EXAMPLE, models=MODELS)
    assert definition is not None
    assert variables_at(definition, 0) == ["ticket", "tone", "payload"]
    assert variables_at(definition, 2) == ["ticket", "tone", "triage", "route", "payload"]


# --- Inputs ------------------------------------------------------------------


def typed_definition() -> Definition:
    data = changed(
        {
            "inputs": [
                {"name": "ticket"},
                {"name": "tone", "required": False, "default": "friendly"},
                {"name": "count", "type": "number", "required": False},
                {"name": "urgent", "type": "boolean", "required": False, "default": "no"},
                {"name": "order", "type": "json", "required": False},
            ]
        }
    )
    definition, issues = validate_definition(data, models=MODELS)
    assert issues == [] and definition is not None
    return definition


def test_it_applies_defaults_and_ignores_unknown_keys() -> None:
    values = coerce_inputs(typed_definition(), {"ticket": "Help", "extra": "webhook noise"})
    assert values == {
        "ticket": "Help",
        "tone": "friendly",
        "count": None,
        "urgent": False,
        "order": None,
    }


def test_a_blank_value_counts_as_absent() -> None:
    values = coerce_inputs(typed_definition(), {"ticket": "Help", "tone": "  ", "count": ""})
    assert values["tone"] == "friendly"
    assert values["count"] is None


@pytest.mark.parametrize(
    "given, expected",
    [("3", 3), ("-3", -3), ("3.5", 3.5), (" 1e3 ", 1000.0), (7, 7), (2.5, 2.5)],
)
def test_it_coerces_numbers(given: object, expected: object) -> None:
    value = coerce_inputs(typed_definition(), {"ticket": "x", "count": given})["count"]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        (True, True),
        (0, False),
    ],
)
def test_it_coerces_booleans(given: object, expected: bool) -> None:
    assert coerce_inputs(typed_definition(), {"ticket": "x", "urgent": given})["urgent"] is expected


def test_it_parses_json_text_and_keeps_json_values() -> None:
    definition = typed_definition()
    assert coerce_inputs(definition, {"ticket": "x", "order": '{"id": 7}'})["order"] == {"id": 7}
    assert coerce_inputs(definition, {"ticket": "x", "order": [1, 2]})["order"] == [1, 2]


def test_it_turns_scalars_into_text_for_text_inputs() -> None:
    assert coerce_inputs(typed_definition(), {"ticket": 42})["ticket"] == "42"


def test_it_refuses_missing_required_inputs_naming_them_all() -> None:
    data = changed({"inputs.1.required": True, "inputs.1.default": DELETE})
    definition, _ = validate_definition(data, models=MODELS)
    assert definition is not None
    with pytest.raises(InputError) as raised:
        coerce_inputs(definition, {"ticket": " "})
    assert raised.value.details == {
        "ticket": "This input is required.",
        "tone": "This input is required.",
    }
    assert str(raised.value) == "Missing required inputs: ticket, tone."


def test_it_refuses_values_of_the_wrong_type_with_a_detail_per_input() -> None:
    with pytest.raises(InputError) as raised:
        coerce_inputs(
            typed_definition(),
            {"ticket": {"a": 1}, "count": "3 apples", "urgent": "maybe", "order": "{oops"},
        )
    details = raised.value.details
    assert details["ticket"] == "Expected text."
    assert details["count"] == "Expected a number."
    assert details["urgent"] == "Expected true or false."
    assert details["order"].startswith("Expected JSON:")
    assert str(raised.value).startswith(
        "Invalid inputs: ticket: Expected text. count: Expected a number."
    )


@pytest.mark.parametrize("given", [True, "nan", "inf", "1_000", "0x10", float("inf")])
def test_it_refuses_things_that_only_look_like_numbers(given: object) -> None:
    with pytest.raises(InputError):
        coerce_inputs(typed_definition(), {"ticket": "x", "count": given})


# --- Nesting depth -----------------------------------------------------------------


def nested_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {
            "type": "object",
            "properties": {"x": schema},
            "required": ["x"],
            "additionalProperties": False,
        }
    return schema


def test_a_300_level_nested_schema_is_an_issue_naming_the_step_not_a_crash() -> None:
    data = changed(
        {"steps.0.response_format.schema": nested_schema(300), "steps.1.cases.0.left": "x"}
    )
    assert issues_of(data) == [
        (
            "triage",
            "response_format.schema",
            "Nested too deeply: a workflow definition may hold objects and arrays at most 64 "
            "levels deep "
            "(a response schema at most 60).",
        )
    ]


def test_a_deeply_nested_input_default_is_an_issue_too() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    data = changed(
        {"inputs.1": {"name": "order", "type": "json", "required": False, "default": deep}}
    )
    assert [(step, field) for step, field, _ in issues_of(data)] == [(None, "inputs[1].default")]


def test_a_schema_at_the_depth_limit_is_accepted() -> None:
    # 60 levels from the schema's root: 29 nested objects (2 levels each) and the root's own.
    data = changed(
        {"steps.0.response_format.schema": nested_schema(29), "steps.1.cases.0.left": "x"}
    )
    assert [issue for issue in issues_of(data) if "Nested" in issue[2]] == []


def test_json_text_nested_too_deeply_for_the_parser_is_an_input_error_not_a_crash() -> None:
    with pytest.raises(InputError) as raised:
        coerce_inputs(
            typed_definition(), {"ticket": "Help", "order": "[" * 100_000 + "]" * 100_000}
        )
    assert raised.value.details["order"].startswith("Expected JSON:")
