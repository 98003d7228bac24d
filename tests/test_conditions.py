from __future__ import annotations

import time

import pytest

from workflows.steps import condition, template
from workflows.steps.condition import ConditionStep
from workflows.steps.template import TemplateStep

MODELS = {"gpt-4.1-mini": 32768}


def make(*cases: dict[str, object], otherwise: str = "fallback") -> ConditionStep:
    return ConditionStep.model_validate({"key": "route", "cases": list(cases), "else": otherwise})


def holds(op: str, left: str, right: str | None = None, **variables: object) -> bool:
    step = make({"left": left, "op": op, "right": right, "goto": "yes"})
    return bool(condition.execute(step, variables)["case"] == 0)


def test_it_goes_to_the_first_case_that_holds() -> None:
    step = make(
        {"left": "{{ n }}", "op": "gt", "right": "10", "goto": "big"},
        {"left": "{{ n }}", "op": "gt", "right": "1", "goto": "medium"},
        {"left": "{{ n }}", "op": "gt", "right": "0", "goto": "small"},
    )
    assert condition.execute(step, {"n": 5}) == {"case": 1, "goto": "medium"}


def test_it_goes_to_else_when_no_case_holds() -> None:
    step = make({"left": "{{ x }}", "op": "equals", "right": "a", "goto": "a"}, otherwise="other")
    assert condition.execute(step, {"x": "b"}) == {"case": None, "goto": "other"}


def test_equals_compares_text_after_stripping_whitespace() -> None:
    assert holds("equals", "{{ category }}", " billing ", category="billing\n")
    assert not holds("equals", "{{ category }}", "Billing", category="billing")


def test_not_equals_is_the_opposite_of_equals() -> None:
    assert holds("not_equals", "{{ x }}", "a", x="b")
    assert not holds("not_equals", "{{ x }}", "a", x=" a ")


def test_contains_is_case_sensitive() -> None:
    assert holds("contains", "{{ text }}", "refund", text="I want a refund now")
    assert not holds("contains", "{{ text }}", "Refund", text="I want a refund now")


def test_not_contains_is_the_opposite_of_contains() -> None:
    assert holds("not_contains", "{{ text }}", "refund", text="hello")
    assert not holds("not_contains", "{{ text }}", "ell", text="hello")


def test_both_sides_are_rendered() -> None:
    assert holds("equals", "{{ a.kind }}", "{{ b }}", a={"kind": "bug"}, b="bug")


def test_matches_searches_a_regular_expression() -> None:
    assert holds("matches", "{{ email }}", r"@example\.com$", email="ann@example.com")
    assert not holds("matches", "{{ email }}", r"@example\.com$", email="ann@example.org")
    assert holds("matches", "{{ text }}", r"(?i)URGENT", text="this is urgent")


def test_matches_inserts_variables_literally() -> None:
    # A variable inside a pattern matches its own text, not as a regex.
    assert holds("matches", "{{ text }}", "^{{ prefix }}", text="a.b rest", prefix="a.b")
    assert not holds("matches", "{{ text }}", "^{{ prefix }}", text="axb rest", prefix="a.b")


def test_a_catastrophic_regex_times_out_as_no_match() -> None:
    started = time.monotonic()
    assert not holds("matches", "{{ text }}", r"(a|aa)+$", text="a" * 60 + "b")
    assert time.monotonic() - started < 5


def test_is_empty_treats_whitespace_and_missing_values_as_empty() -> None:
    assert holds("is_empty", "{{ x }}", x="  \n")
    assert holds("is_empty", "{{ skipped_step }}")
    assert not holds("is_empty", "{{ x }}", x="a")


def test_is_not_empty_needs_some_text() -> None:
    assert holds("is_not_empty", "{{ x }}", x="a")
    assert not holds("is_not_empty", "{{ x }}", x=None)


def test_gt_and_lt_compare_numbers() -> None:
    assert holds("gt", "{{ n }}", "9", n=10)
    assert not holds("gt", "{{ n }}", "10", n="9.5")
    assert holds("lt", "{{ n }}", "10", n="9.5")
    assert holds("lt", "{{ n }}", "-1e3", n=-2000)


def test_gt_and_lt_do_not_hold_for_text_that_is_not_a_number() -> None:
    assert not holds("gt", "{{ n }}", "1", n="many")
    assert not holds("lt", "{{ n }}", "1", n="")
    assert not holds("lt", "{{ n }}", "1", n="nan")


def test_a_number_as_right_hand_value_is_read_as_text() -> None:
    step = make({"left": "{{ n }}", "op": "gt", "right": 100, "goto": "big"})
    assert step.cases[0].right == "100"
    assert condition.execute(step, {"n": 101})["goto"] == "big"


def test_a_variable_value_containing_a_reference_is_compared_literally() -> None:
    assert holds("equals", "{{ x }}", "{{ y }}", x="{{ y }}", y="other") is False
    assert holds("equals", "{{ x }}", "{{ y }}", x="{{ z }}", y="{{ z }}")


def test_it_lists_its_targets_and_templates() -> None:
    step = make(
        {"left": "{{ a }}", "op": "is_empty", "goto": "one"},
        {"left": "{{ b }}", "op": "equals", "right": "{{ c }}", "goto": "two"},
        otherwise="three",
    )
    assert condition.targets(step) == [
        ("cases[0].goto", "one"),
        ("cases[1].goto", "two"),
        ("else", "three"),
    ]
    assert condition.templates(step) == [
        ("cases[0].left", "{{ a }}"),
        ("cases[1].left", "{{ b }}"),
        ("cases[1].right", "{{ c }}"),
    ]


def test_it_exports_else_under_its_json_name() -> None:
    dumped = make({"left": "x", "op": "is_empty", "goto": "a"}).model_dump(
        mode="json", by_alias=True
    )
    assert dumped["else"] == "fallback"
    assert "else_" not in dumped


@pytest.mark.parametrize(
    "case, message",
    [
        (
            {"left": "x", "op": "matches", "right": "(unclosed", "goto": "a"},
            "Invalid regular expression",
        ),
        ({"left": "x", "op": "gt", "right": "ten", "goto": "a"}, '"gt" compares numbers'),
        ({"left": "x", "op": "equals", "goto": "a"}, '"equals" needs a right-hand value'),
    ],
)
def test_it_checks_its_cases(case: dict[str, object], message: str) -> None:
    problems = condition.check(make(case), models=MODELS)
    assert [field for field, _ in problems] == ["cases[0].right"]
    assert message in problems[0][1]


def test_it_accepts_a_pattern_with_a_variable() -> None:
    step = make({"left": "{{ x }}", "op": "matches", "right": r"^\w+ {{ name }}$", "goto": "a"})
    assert condition.check(step, models=MODELS) == []


def test_a_template_step_renders_its_template() -> None:
    step = TemplateStep(key="summary", template="{{ name }} is {{ age }}")
    assert template.execute(step, {"name": "Ann", "age": 40, "extra": "ignored"}) == "Ann is 40"
