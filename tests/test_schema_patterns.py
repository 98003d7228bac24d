"""User regexes in an LLM step's JSON schema (`pattern`, `patternProperties`) run on RE2,
in linear time: a catastrophic pattern cannot stall a worker, and a pattern RE2 cannot run
is refused when the definition is validated, naming the step and the field."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import override_settings

from workflows.builder.definition import validate_definition
from workflows.steps import llm
from workflows.steps.context import StepContext, StepFailed

MODELS = {"gpt-4.1-mini": 32768}
# Exponential on a backtracking engine: 2**28 paths for 28 "a"s and a "!".
CATASTROPHIC = "^(a+)+$"
EVIL = "a" * 28 + "!"


def schema_with(**code: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"code": {"type": "string", **code}},
        "required": ["code"],
        "additionalProperties": False,
    }


def definition_with(schema: dict[str, Any], prompt: str = "Give a code.") -> dict[str, Any]:
    return {
        "name": "Codes",
        "steps": [
            {
                "key": "extract",
                "type": "llm",
                "prompt": prompt,
                "response_format": {"type": "json_schema", "name": "code", "schema": schema},
            }
        ],
    }


def answer_checked(
    fake_openai: str, schema: dict[str, Any], reply: str
) -> tuple[float, str | None]:
    """Run the real llm step against the fake server answering `reply`; (seconds, failure)."""
    definition, issues = validate_definition(
        definition_with(schema, f"[[fake:reply={reply}]]"), models=MODELS
    )
    assert definition is not None and not issues, issues
    step = definition.steps[0]
    context = StepContext(variables={}, run_id=1, workspace_id=1, deadline=None)
    with override_settings(
        OPENAI_BASE_URL=f"{fake_openai}/v1", OPENAI_API_KEY="sk-test", LLM_MAX_ATTEMPTS=1
    ):
        call = llm.prepare(step, {})
        started = time.monotonic()
        try:
            llm.execute(step, call, context)
            failure = None
        except StepFailed as e:
            failure = str(e)
    return time.monotonic() - started, failure


def test_a_catastrophic_pattern_judges_a_28_character_answer_at_once(fake_openai: str) -> None:
    seconds, failure = answer_checked(
        fake_openai, schema_with(pattern=CATASTROPHIC), f'{{"code": "{EVIL}"}}'
    )
    assert seconds < 2
    assert failure is not None and "does not match" in failure


def test_a_catastrophic_pattern_property_judges_a_long_key_at_once(fake_openai: str) -> None:
    schema = {
        "type": "object",
        "patternProperties": {CATASTROPHIC: {"type": "string"}},
        "additionalProperties": False,
    }
    seconds, failure = answer_checked(fake_openai, schema, f'{{"{EVIL}": "x"}}')
    assert seconds < 2
    assert failure is not None and "not match any of the regexes" in failure


def test_a_matching_answer_still_passes(fake_openai: str) -> None:
    seconds, failure = answer_checked(
        fake_openai, schema_with(pattern=r"^[A-Z]{3}-\d+$"), '{"code": "ABC-42"}'
    )
    assert failure is None


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [
        (r"^(a)\1$", "backreference"),
        (r"^(?=a)a$", "lookahead"),
        (r"(?<!x)a", "lookbehind"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_naming_the_step_and_field(
    pattern: str, feature: str
) -> None:
    _, issues = validate_definition(definition_with(schema_with(pattern=pattern)), models=MODELS)
    assert [(issue.step, issue.field) for issue in issues] == [
        ("extract", "response_format.schema")
    ], feature
    assert issues[0].message.startswith(
        f'schema.properties.code.pattern: the pattern "{pattern}" cannot be used'
    )
    assert "RE2" in issues[0].message


def test_a_pattern_property_re2_cannot_run_is_refused() -> None:
    schema = {
        "type": "object",
        "patternProperties": {r"^(?!id)": {"type": "string"}},
        "additionalProperties": False,
    }
    _, issues = validate_definition(definition_with(schema), models=MODELS)
    assert [issue.message.split(":")[0] for issue in issues] == ["schema.patternProperties"]


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^x": {"type": "string"}},
        "unevaluatedProperties": False,
        "additionalProperties": False,
    }
    _, issues = validate_definition(definition_with(schema), models=MODELS)
    assert any(
        '"unevaluatedProperties" cannot be used together' in issue.message for issue in issues
    )


def test_an_ordinary_pattern_is_accepted() -> None:
    _, issues = validate_definition(
        definition_with(schema_with(pattern=r"^\d{4}-\d{2}$")), models=MODELS
    )
    assert issues == []
