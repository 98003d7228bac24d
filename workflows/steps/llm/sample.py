"""A strict JSON schema written from a sample answer (the llm panel's "Generate schema")."""

from __future__ import annotations

from typing import Any


class SampleError(ValueError):
    """The sample cannot give a schema (it is not a JSON object)."""


def schema_from_sample(sample: object) -> dict[str, Any]:
    """A strict JSON schema that `sample` (a JSON object) satisfies.

    Strict, as OpenAI's structured outputs require: every object has
    "additionalProperties": false and lists all its properties as required.
    A key that only some objects of a list have is kept, required, and
    allowed to be null; a null sample value becomes a nullable string.
    """
    if not isinstance(sample, dict):
        raise SampleError('The sample must be a JSON object, such as {"category": "billing"}.')
    return _schema_of(sample)


_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema_of(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {str(key): _schema_of(item) for key, item in value.items()},
            "required": [str(key) for key in value],
            "additionalProperties": False,
        }
    if isinstance(value, list):
        items = [_schema_of(item) for item in value]
        merged = items[0] if items else {"type": "string"}
        for item in items[1:]:
            merged = _merge(merged, item)
        return {"type": "array", "items": merged}
    if value is None:
        return {"type": ["string", "null"]}
    return {"type": _JSON_TYPES.get(type(value), "string")}


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    return list(kind) if isinstance(kind, list) else [str(kind)]


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One schema accepting what `a` and what `b` accept (for the items of a list)."""
    if a == b:
        return a
    if _types(a) == ["object"] and _types(b) == ["object"]:
        properties: dict[str, Any] = {}
        for name in [
            *a["properties"],
            *(name for name in b["properties"] if name not in a["properties"]),
        ]:
            if name in a["properties"] and name in b["properties"]:
                properties[name] = _merge(a["properties"][name], b["properties"][name])
            else:
                properties[name] = _nullable(a["properties"].get(name) or b["properties"][name])
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
    if _types(a) == ["array"] and _types(b) == ["array"]:
        return {"type": "array", "items": _merge(a["items"], b["items"])}
    kinds = list(dict.fromkeys([*_types(a), *_types(b)]))
    if "integer" in kinds and "number" in kinds:
        kinds.remove("integer")
    structured = [kind for kind in kinds if kind in ("object", "array")]
    if structured:
        # A value that is sometimes structured and sometimes not: keep the structure,
        # allow null, and let the person refine it.
        return _nullable(a if _types(a)[0] in structured else b)
    return {"type": kinds[0] if len(kinds) == 1 else kinds}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = _types(schema)
    if "null" in kinds:
        return schema
    return {**schema, "type": [*kinds, "null"]}
