"""Where a run goes next. Targets always point forward, so every run ends."""

from __future__ import annotations

from workflows.builder.definition import END, Definition
from workflows.steps import module_for


def next_key(definition: Definition, index: int, output: object) -> str:
    """The key of the step to run after the one at `index`, or "end"."""
    step = definition.steps[index]
    chosen: str | None = module_for(step).next_key(step, output)
    if chosen is not None:
        return chosen
    if index + 1 < len(definition.steps):
        return definition.steps[index + 1].key
    return END


def index_of(definition: Definition, key: str) -> int:
    for index, step in enumerate(definition.steps):
        if step.key == key:
            return index
    raise KeyError(key)


def skipped_between(definition: Definition, from_index: int, to_key: str) -> list[str]:
    """Keys of the steps jumped over going from `from_index` to `to_key`."""
    stop = len(definition.steps) if to_key == END else index_of(definition, to_key)
    return [step.key for step in definition.steps[from_index + 1 : stop]]
