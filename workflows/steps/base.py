"""Fields every step kind shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# The target that stops a run.
END = "end"


class StepBase(BaseModel):
    # extra="forbid" turns a typo such as "promt" into a validation error
    # instead of a silently ignored field.
    model_config = ConfigDict(extra="forbid")

    key: str
    # Each kind narrows this to a Literal; declared here so that "type"
    # comes right after "key" in exported definitions.
    type: str
    title: str = ""
    next: str | None = None
