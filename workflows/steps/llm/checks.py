"""The `llm` step's checks: what pydantic cannot see, the model table and OpenAI's strict-schema
rules (shared with the other kinds that send a prompt, workflows/steps/chat.py)."""

from __future__ import annotations

from collections.abc import Mapping

from workflows.steps import chat
from workflows.steps.chat import strict_schema_problems
from workflows.steps.llm.config import LlmStep


def check(step: LlmStep, *, models: Mapping[str, int]) -> list[tuple[str, str]]:
    """Problems pydantic cannot see: the model table and OpenAI's strict-schema rules."""
    return chat.check(step, models=models)


__all__ = ["check", "strict_schema_problems"]
