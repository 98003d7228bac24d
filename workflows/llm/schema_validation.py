"""JSON Schema checks of an LLM step's answer, with user regexes on RE2.

`pattern` and `patternProperties` are regular expressions written by users.
jsonschema runs them on Python's `re`, a backtracking engine that holds the
GIL: `"^(a+)+$"` against a 28-character answer stalled every run of a worker
for seconds. Here they run on RE2 (google-re2), whose time is linear in the
text, so no pattern can stall anything.

RE2 has no backreferences and no lookaround; `pattern_problems` refuses such
patterns when a definition is validated, and an answer checked against one
anyway (a version published before) fails with the reason.
`unevaluatedProperties` is refused beside `patternProperties`: jsonschema
evaluates those patterns on `re` internally.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the user, not to stderr

# Keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_ONE = (
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


class PatternUnsupported(Exception):
    pass


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for `pattern`; PatternUnsupported says why there is none."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise PatternUnsupported(reason) from None


def _subschemas(node: dict[str, Any], path: str) -> Iterator[tuple[object, str]]:
    for keyword in _ONE:
        if keyword in node:
            yield node[keyword], f"{path}.{keyword}"
    for keyword in _LIST:
        if isinstance(node.get(keyword), list):
            for position, child in enumerate(node[keyword]):
                yield child, f"{path}.{keyword}[{position}]"
    for keyword in _MAP:
        if isinstance(node.get(keyword), dict):
            for name, child in node[keyword].items():
                yield child, f"{path}.{keyword}.{name}"


def pattern_problems(schema: object) -> list[str]:
    """Why the regexes of `schema` cannot run on RE2, one message per pattern, in document order."""
    problems: list[str] = []
    pending: list[tuple[object, str]] = [(schema, "schema")]
    uses_pattern_properties = uses_unevaluated_properties = False
    while pending:
        node, path = pending.pop(0)
        if not isinstance(node, dict):
            continue
        patterns: list[tuple[str, str]] = []
        if isinstance(node.get("pattern"), str):
            patterns.append((node["pattern"], f"{path}.pattern"))
        if isinstance(node.get("patternProperties"), dict):
            uses_pattern_properties = True
            patterns += [(name, f"{path}.patternProperties") for name in node["patternProperties"]]
        uses_unevaluated_properties |= "unevaluatedProperties" in node
        for pattern, where in patterns:
            try:
                compile_pattern(pattern)
            except PatternUnsupported as error:
                problems.append(
                    f'{where}: the pattern "{pattern}" cannot be used ({error}). Patterns run on a '
                    "linear-time engine (RE2): no backreferences such as \\1 and no lookahead or "
                    "lookbehind such as (?=…) or (?<!…)."
                )
        pending += _subschemas(node, path)
    if uses_pattern_properties and uses_unevaluated_properties:
        problems.append(
            'schema: "unevaluatedProperties" cannot be used together with "patternProperties".'
        )
    return problems


def _search(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None


def _unsupported(pattern: str, error: PatternUnsupported) -> ValidationError:
    return ValidationError(f"the schema's pattern {pattern!r} cannot run on RE2 ({error})")


def _pattern(
    validator: Any, pattern: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        # is_type(instance, "string") said it is a str (jsonschema is untyped to mypy).
        if not _search(pattern, instance):  # type: ignore[arg-type]
            yield ValidationError(f"{instance!r} does not match {pattern!r}")
    except PatternUnsupported as error:
        yield _unsupported(pattern, error)


def _pattern_properties(
    validator: Any, pattern_properties: dict[str, Any], instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        try:
            # is_type(instance, "object") said it is a dict (jsonschema is untyped to mypy).
            matching = [key for key in instance if _search(pattern, key)]  # type: ignore[attr-defined]
        except PatternUnsupported as error:
            yield _unsupported(pattern, error)
            continue
        for key in matching:
            # A dict, as above.
            yield from validator.descend(instance[key], subschema, path=key, schema_path=pattern)  # type: ignore[index]


def _additional_properties(
    validator: Any, additional: object, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # jsonschema's own, with the patternProperties test on RE2.
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    try:
        # is_type(instance, "object") said it is a dict (jsonschema is untyped to mypy).
        extras = sorted(
            (
                key
                for key in instance  # type: ignore[attr-defined]
                if key not in properties and not any(_search(pattern, key) for pattern in patterns)
            ),
            key=str,
        )
    except PatternUnsupported as error:
        yield ValidationError(f"a pattern of patternProperties cannot run on RE2 ({error})")
        return
    if validator.is_type(additional, "object"):
        for extra in extras:
            # A dict, as above.
            yield from validator.descend(instance[extra], additional, path=extra)  # type: ignore[index]
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            yield ValidationError(
                f"{', '.join(map(repr, extras))} {verb} not match any of the regexes: "
                f"{', '.join(map(repr, sorted(patterns)))}"
            )
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({', '.join(map(repr, extras))} "
                f"{'was' if len(extras) == 1 else 'were'} unexpected)"
            )


def _regex_format(instance: object) -> bool:
    if isinstance(instance, str):
        compile_pattern(instance)
    return True


# Checking a schema against the metaschema validates its patterns as the
# "regex" format: on RE2 too, not Python's `re`.
FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checkers = {
    **Draft202012Validator.FORMAT_CHECKER.checkers,
    "regex": (_regex_format, PatternUnsupported),
}

AnswerValidator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
    format_checker=FORMAT_CHECKER,
)


def check_schema(schema: dict[str, Any]) -> None:
    """Raise jsonschema's SchemaError if `schema` is
    not a valid 2020-12 schema (patterns on RE2)."""
    AnswerValidator.check_schema(schema, format_checker=FORMAT_CHECKER)


def validate(instance: object, schema: dict[str, Any]) -> None:
    """Raise ValidationError if `instance` does not follow `schema`. No user regex runs on `re`."""
    if any(
        message.startswith('schema: "unevaluatedProperties"')
        for message in pattern_problems(schema)
    ):
        raise ValidationError(
            '"unevaluatedProperties" cannot be used together with "patternProperties"'
        )
    AnswerValidator(schema).validate(instance)
