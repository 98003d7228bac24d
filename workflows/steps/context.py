"""What a step's `execute` receives and returns, shared by every step kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class StepContext:
    variables: Mapping[str, object]
    run_id: int
    workspace_id: int
    deadline: datetime | None
    # Called before each attempt of a paid call, so a crash mid-retry still
    # leaves an honest attempt count behind.
    on_attempt: Callable[[], None] = lambda: None


@dataclass
class Usage:
    model: str = ""
    tokens_in: int = 0
    tokens_cached: int = 0
    tokens_out: int = 0
    cost_nanousd: int = 0


@dataclass
class StepResult:
    output: object
    messages: list[dict[str, str]] | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: int = 1


class StepFailed(Exception):
    """The step cannot produce an output. Anything already paid is in `usage`."""

    def __init__(
        self,
        message: str,
        *,
        usage: Usage | None = None,
        messages: list[dict[str, str]] | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage or Usage()
        self.messages = messages
        self.attempts = attempts
