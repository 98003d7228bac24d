"""Definitions as the engine reads them: parsed once per process.

Many runs share a definition, and a published version never changes, so
each distinct one (by its JSON text) is validated by pydantic once."""

from __future__ import annotations

import functools
import json

from workflows.builder.definition import Definition


@functools.lru_cache(maxsize=256)
def _parse(data: str) -> Definition:
    return Definition.model_validate_json(data)


def parsed(data: object) -> Definition:
    return _parse(json.dumps(data, sort_keys=True))
