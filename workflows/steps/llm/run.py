"""The `llm` step's execution: one chat completion, as text or as JSON following a schema
(workflows/steps/chat.py, shared with the other kinds that send a prompt)."""

from __future__ import annotations

from collections.abc import Mapping

from workflows.steps import chat
from workflows.steps.chat import Call
from workflows.steps.context import StepContext, StepResult, Usage
from workflows.steps.llm.config import LlmStep

# The engine records an attempt before each call: this step costs money.
PAID = True


def messages_for(step: LlmStep, variables: Mapping[str, object]) -> list[dict[str, str]]:
    return chat.messages_for(step, variables)


def prepare(step: LlmStep, variables: Mapping[str, object]) -> Call:
    """Render the messages and price the worst case. Nothing is sent (or paid)
    when the prompt cannot fit the model's context: StepFailed says why."""
    return chat.prepare(step, variables)


def estimate_lost(step: LlmStep, call: Call, received: str) -> Usage:
    """The usage of an answer cut mid-stream by a crash, estimated (chat.estimate_lost)."""
    return chat.estimate_lost(step, call, received)


def execute(step: LlmStep, call: Call, context: StepContext) -> StepResult:
    """Call the model, retrying transient failures, and price what the response
    reports (see chat.execute: the engine holds and settles the budget)."""
    return chat.execute(step, call, context)


__all__ = ["PAID", "Call", "estimate_lost", "execute", "messages_for", "prepare"]
