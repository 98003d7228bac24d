"""Fields every step kind shares."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from config.lib.names import DirectionSafe

# The target that stops a run.
END = "end"

# `on_error`: fail the run (the default), go on with `fallback` as the step's
# output, or the key of a later step to go to (an error branch).
ON_ERROR_FAIL = "fail"
ON_ERROR_CONTINUE = "continue"
MAX_RETRIES = 10


class StepBase(BaseModel):
    # extra="forbid" turns a typo such as "promt" into a validation error
    # instead of a silently ignored field.
    model_config = ConfigDict(extra="forbid")

    key: str
    # Each kind narrows this to a Literal; declared here so that "type"
    # comes right after "key" in exported definitions.
    type: str
    # A label people read (cards, the run page): no bidi controls (config/lib/names.py).
    title: Annotated[str, DirectionSafe] = ""
    next: str | None = None
    # When the step fails: how many more tries for a failure that may pass
    # (429, 5xx, a timeout; None: the kind's default), then what to do.
    retries: int | None = Field(default=None, ge=0, le=MAX_RETRIES)
    on_error: str = ON_ERROR_FAIL
    # With on_error "continue": the step's output instead (a template, or JSON).
    fallback: Any = None

    @model_serializer(mode="wrap")
    def _without_default_policy(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A step without an error policy is stored and exported without its fields."""
        data: dict[str, Any] = handler(self)
        for name, default in _POLICY_DEFAULTS.items():
            if name in data and data[name] == default:
                del data[name]
        return data


# Fields every step has for its error policy (an llm step's fallback_model
# too), left out of a stored definition while they hold their defaults.
_POLICY_DEFAULTS: dict[str, Any] = {
    "retries": None,
    "on_error": ON_ERROR_FAIL,
    "fallback": None,
    "fallback_model": None,
}
