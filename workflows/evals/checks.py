"""The kinds of checks, each a pass/fail verdict on one row of an eval.

A check's configuration is validated when it is saved (`check_config`), so a
stored check always runs; `check_run` is pure (no database, no network) except
for the LLM judge, which lives in judge.py and is called by execution.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from jsonschema import SchemaError, ValidationError

from config.lib.json_storable import unstorable_value
from workflows.llm import schema_validation

KINDS: dict[str, str] = {
    "equals": "Output equals",
    "contains": "Output contains",
    "matches": "Output matches a regular expression",
    "json_field_equals": "A JSON field equals",
    "json_field_in": "A JSON field is one of",
    "json_schema": "Output is valid against a JSON schema",
    "cost_under": "Cost under",
    "latency_under": "Latency under",
    "llm_judge": "LLM judge",
}


class CheckInvalid(Exception):
    """A check's configuration cannot run; the message says what to fix."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What a row's run produced, as checks see it."""

    succeeded: bool
    output: object
    error: str
    cost_nanousd: int
    latency_ms: int | None
    expected: object


def as_text(value: object) -> str:
    """A value as text: a string as it is, anything else as compact, sorted JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _as_json(value: object) -> object:
    """A string holding JSON read as JSON (a model's answer often is), else the value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _field(value: object, path: str) -> tuple[bool, object]:
    """The field at a dotted path ("a.b.0"): (found, value)."""
    current = _as_json(value)
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def _same(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    return _as_json(a) == _as_json(b)


def _nanousd(usd: object) -> int:
    try:
        value = Decimal(str(usd))
    except InvalidOperation:
        raise CheckInvalid("max_usd must be a number of dollars, e.g. 0.01.") from None
    if not value.is_finite():
        raise CheckInvalid("max_usd must be a number of dollars, e.g. 0.01.")
    if value < 0:
        raise CheckInvalid("max_usd cannot be negative.")
    return int(value * 1_000_000_000)


def check_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The configuration kept for a check of `kind`, or CheckInvalid saying what is wrong."""
    if kind not in KINDS:
        raise CheckInvalid(f"Unknown check kind {kind!r}.")
    if why := unstorable_value(config):
        raise CheckInvalid(f"The settings cannot be kept: a value {why}.")
    if kind in ("equals", "contains"):
        # No "value": compare with the row's expected output.
        return {"value": config["value"]} if config.get("value") not in (None, "") else {}
    if kind == "matches":
        pattern = str(config.get("pattern") or "")
        if not pattern:
            raise CheckInvalid("A regular expression is needed.")
        try:
            schema_validation.compile_pattern(pattern)
        except schema_validation.PatternUnsupported as e:
            raise CheckInvalid(f"The regular expression cannot run in linear time: {e}") from None
        return {"pattern": pattern}
    if kind in ("json_field_equals", "json_field_in"):
        path = str(config.get("path") or "").strip()
        if not path:
            raise CheckInvalid("A field path is needed, e.g. answer.label.")
        if kind == "json_field_in":
            values = config.get("values")
            if not isinstance(values, list) or not values:
                raise CheckInvalid("values must be a non-empty list.")
            return {"path": path, "values": values}
        kept: dict[str, Any] = {"path": path}
        if config.get("value") not in (None, ""):
            kept["value"] = config["value"]
        return kept
    if kind == "json_schema":
        schema = config.get("schema")
        if not isinstance(schema, dict):
            raise CheckInvalid("schema must be a JSON object.")
        problems = schema_validation.pattern_problems(schema)
        if problems:
            raise CheckInvalid(problems[0])
        try:
            schema_validation.check_schema(schema)
        except SchemaError as e:
            raise CheckInvalid(f"Not a valid JSON schema: {e.message}") from None
        return {"schema": schema}
    if kind == "cost_under":
        return {"max_nanousd": _nanousd(config.get("max_usd"))}
    if kind == "latency_under":
        try:
            max_ms = int(config.get("max_ms"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise CheckInvalid("max_ms must be a whole number of milliseconds.") from None
        if max_ms <= 0:
            raise CheckInvalid("max_ms must be positive.")
        return {"max_ms": max_ms}
    rubric = str(config.get("rubric") or "").strip()
    if not rubric:
        raise CheckInvalid("The judge needs a rubric: what makes an answer pass.")
    return {"rubric": rubric[:4000]}


def _wanted(config: dict[str, Any], outcome: Outcome) -> tuple[bool, object]:
    if "value" in config:
        return True, config["value"]
    return outcome.expected is not None, outcome.expected


def check_run(kind: str, config: dict[str, Any], outcome: Outcome) -> Verdict:
    """The verdict of a check that needs no model (not the judge)."""
    if kind == "cost_under":
        ok = outcome.cost_nanousd < config["max_nanousd"]
        return Verdict(ok, f"cost {outcome.cost_nanousd} n$, limit {config['max_nanousd']} n$")
    if kind == "latency_under":
        if outcome.latency_ms is None:
            return Verdict(False, "the run has no latency (it did not run)")
        ok = outcome.latency_ms < config["max_ms"]
        return Verdict(ok, f"{outcome.latency_ms} ms, limit {config['max_ms']} ms")
    if not outcome.succeeded:
        return Verdict(False, f"the run failed: {outcome.error}"[:300])
    output = outcome.output
    if kind in ("equals", "contains"):
        known, wanted = _wanted(config, outcome)
        if not known:
            return Verdict(False, "the row has no expected output")
        if kind == "equals":
            return Verdict(_same(output, wanted), "equal" if _same(output, wanted) else "differs")
        ok = as_text(wanted) in as_text(output)
        return Verdict(ok, "found" if ok else "not found")
    if kind == "matches":
        ok = schema_validation.compile_pattern(config["pattern"]).search(as_text(output))
        return Verdict(ok is not None, "matches" if ok is not None else "does not match")
    if kind in ("json_field_equals", "json_field_in"):
        found, value = _field(output, config["path"])
        if not found:
            return Verdict(False, f"no field {config['path']}")
        if kind == "json_field_in":
            ok = any(_same(value, v) for v in config["values"])
            return Verdict(ok, f"{as_text(value)[:100]} is {'' if ok else 'not '}one of them")
        known, wanted = _wanted(config, outcome)
        if not known:
            return Verdict(False, "the row has no expected output")
        ok = _same(value, wanted)
        return Verdict(ok, "equal" if ok else f"{as_text(value)[:100]} differs")
    if kind == "json_schema":
        try:
            schema_validation.validate(_as_json(output), config["schema"])
        except ValidationError as e:
            return Verdict(False, e.message[:300])
        return Verdict(True, "valid")
    raise CheckInvalid(f"The {kind} check is not run here.")
