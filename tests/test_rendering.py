from __future__ import annotations

import pytest

from workflows.rendering import Reference, invalid_references, references, render, to_text


def test_it_substitutes_a_variable() -> None:
    assert render("Hello {{ name }}!", {"name": "Alice"}) == "Hello Alice!"


def test_it_accepts_references_without_spaces() -> None:
    assert render("{{name}}/{{  name  }}", {"name": "x"}) == "x/x"


def test_it_reads_fields_and_list_indices_of_json_values() -> None:
    variables = {"triage": {"category": "bug", "tags": [{"label": "urgent"}]}}
    assert render("{{ triage.category }} {{ triage.tags.0.label }}", variables) == "bug urgent"


def test_it_reads_hyphenated_json_keys() -> None:
    assert render("{{ person.first-name }}", {"person": {"first-name": "Ada"}}) == "Ada"


def test_it_renders_missing_values_as_empty_text() -> None:
    variables = {"triage": {"category": "bug"}, "skipped": None}
    template = "[{{ nothing }}][{{ skipped }}][{{ triage.missing }}][{{ triage.category.deeper }}]"
    assert render(template, variables) == "[][][][]"


def test_it_renders_an_out_of_range_index_as_empty_text() -> None:
    assert render("[{{ items.5 }}][{{ items.x }}]", {"items": [1, 2]}) == "[][]"


def test_it_renders_scalars_as_text() -> None:
    variables = {"yes": True, "no": False, "count": 3, "whole": 3.0, "half": 3.5}
    assert (
        render("{{ yes }} {{ no }} {{ count }} {{ whole }} {{ half }}", variables)
        == "true false 3 3 3.5"
    )


def test_it_renders_objects_as_compact_json() -> None:
    variables = {"data": {"city": "Zürich", "tags": ["a", "b"]}}
    assert render("{{ data }}", variables) == '{"city":"Zürich","tags":["a","b"]}'


def test_the_json_filter_embeds_a_value_as_json() -> None:
    variables = {"data": {"city": "Zürich"}, "text": 'say "hi"', "number": 2}
    rendered = render(
        '{"d": {{ data | json }}, "t": {{ text|json }}, "n": {{ number | json }}}', variables
    )
    assert rendered == '{"d": {"city": "Zürich"}, "t": "say \\"hi\\"", "n": 2}'


def test_the_json_filter_renders_a_missing_value_as_null() -> None:
    assert render("{{ payload | json }}", {}) == "null"


def test_it_never_expands_text_twice() -> None:
    variables = {"ticket": "Please print {{ secret }}", "secret": "s3cr3t"}
    assert render("{{ ticket }}", variables) == "Please print {{ secret }}"


def test_an_input_containing_a_reference_to_itself_stays_literal() -> None:
    assert render("Ticket: {{ ticket }}", {"ticket": "{{ ticket }}"}) == "Ticket: {{ ticket }}"


def test_an_llm_output_containing_a_reference_stays_literal() -> None:
    variables = {"ticket": "refund me", "draft": "Re: {{ ticket }}"}
    assert render("{{ draft }}", variables) == "Re: {{ ticket }}"


def test_it_leaves_invalid_references_literal() -> None:
    template = "{{ 1+1 }} {{ a b }} {{ x | upper }} {{ }} {{ x }}"
    assert render(template, {"a": "A", "x": "X"}) == "{{ 1+1 }} {{ a b }} {{ x | upper }} {{ }} X"


def test_it_cannot_reach_python_attributes() -> None:
    # "__class__" is an ordinary dict key here: nothing else is looked up.
    assert render("{{ name.__class__ }}", {"name": "Alice"}) == ""
    assert render("{{ data.keys }}", {"data": {"a": 1}}) == ""


def test_it_lists_references_with_their_path_filter_and_position() -> None:
    found = references("Hi {{ triage.tags.0 | json }} and {{name}}")
    assert found == [
        Reference(
            name="triage",
            path=("tags", "0"),
            filter="json",
            text="{{ triage.tags.0 | json }}",
            start=3,
            end=29,
        ),
        Reference(name="name", path=(), filter=None, text="{{name}}", start=34, end=42),
    ]


@pytest.mark.parametrize(
    "template, invalid",
    [
        ("{{ 1+1 }}", ["{{ 1+1 }}"]),
        ("{{ a b }}", ["{{ a b }}"]),
        ("{{ x | upper }}", ["{{ x | upper }}"]),
        ("{{ }}", ["{{ }}"]),
        ("{{ x. }}", ["{{ x. }}"]),
        ("{{ x }} and {{ ok.0 | json }}", []),
        ("{{ {{ x }}", []),
        ("{{{ x }}}", []),
        ("single { braces } and {{ unclosed", []),
    ],
)
def test_it_finds_invalid_references(template: str, invalid: list[str]) -> None:
    assert invalid_references(template) == invalid


def test_it_renders_what_it_reports_as_valid_inside_extra_braces() -> None:
    assert render('{"a": {{ x | json }}}', {"x": 1}) == '{"a": 1}'


@pytest.mark.parametrize(
    "value, text",
    [
        (None, ""),
        ("", ""),
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-2.0, "-2"),
        (0.25, "0.25"),
        ([1, "é"], '[1,"é"]'),
        ({}, "{}"),
    ],
)
def test_it_turns_values_into_text(value: object, text: str) -> None:
    assert to_text(value) == text


def test_it_can_escape_substituted_text() -> None:
    assert (
        render("^{{ x }}$", {"x": "a.b"}, escape=lambda text: text.replace(".", r"\.")) == r"^a\.b$"
    )
