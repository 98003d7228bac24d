"""What a step's `execute` receives and returns, shared by every step kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass
class StepContext:
    variables: Mapping[str, object]
    run_id: int
    workspace_id: int
    deadline: datetime | None
    # Called before each attempt of a paid call, so a crash mid-retry still
    # leaves an honest attempt count behind.
    on_attempt: Callable[[], None] = lambda: None
    # Called with the answer so far as a streamed call grows (the engine
    # persists it on the step, or on a map's item, at most every
    # STREAM_PERSIST_SECONDS).
    on_partial: Callable[[str], None] = lambda text: None


@dataclass
class Usage:
    model: str = ""
    tokens_in: int = 0
    tokens_cached: int = 0
    tokens_out: int = 0
    cost_nanousd: int = 0

    def plus(self, other: Usage) -> Usage:
        """Both together: a lost attempt's usage and the one that answered."""
        return Usage(
            model=self.model or other.model,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_cached=self.tokens_cached + other.tokens_cached,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_nanousd=self.cost_nanousd + other.cost_nanousd,
        )


@dataclass
class StepResult:
    output: object
    messages: list[dict[str, str]] | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: int = 1
    # Its usage is already in the run's totals (a map's items added theirs as
    # each finished): the engine records it on the step without adding it again.
    counted: bool = False


class StepFailed(Exception):
    """The step cannot produce an output. Anything already paid is in `usage`.

    `kind` names the failure for error branches (`{{ step.error.kind }}`):
    "rate_limit", "server", "timeout", "network", "http", "invalid_answer",
    "budget", "refused", or "error"; `status` is the HTTP status when there
    was one; `retryable` says whether the same request may pass later (the
    step's `retries`), `retry_after` how long the server asked to wait."""

    def __init__(
        self,
        message: str,
        *,
        usage: Usage | None = None,
        messages: list[dict[str, str]] | None = None,
        attempts: int = 1,
        kind: str = "error",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        counted: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage or Usage()
        self.messages = messages
        self.attempts = attempts
        # As StepResult.counted.
        self.counted = counted
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def as_error(self) -> dict[str, object]:
        """What an error branch reads as `{{ <step>.error }}`."""
        return {"message": self.message, "kind": self.kind, "status": self.status}


# Waiting step kinds (`WAITS = True`): workflows/runtime/engine.py, "Waiting".


@dataclass(frozen=True)
class ChildSpec:
    """A run of another workflow of the workspace, for the engine to start
    in the transaction that parks the step (so it is started exactly once)."""

    workflow_id: int
    # A pinned version number; None for the latest published version.
    version: int | None
    inputs: dict[str, object]
    # The item of a `map` step it runs for (its index), and the item itself
    # (kept on the map's StepItem row).
    item: int | None = None
    item_input: object = None


@dataclass(frozen=True)
class Child:
    """A child run as the step waiting for it sees it."""

    id: int
    item: int | None
    status: str
    output: object
    error: str
    cost_nanousd: int
    finished: bool


@dataclass
class Wait:
    """What a waiting kind returns instead of a result: park the run.

    `waiting_for` is one of Run.WaitingFor's values; `state` is kept on the
    step (StepRun.state) and handed back to `resume`; `wake_at` is when beat
    wakes the run (a time, a timeout); `children` are started with the park."""

    waiting_for: str
    state: dict[str, object]
    wake_at: datetime | None = None
    children: list[ChildSpec] = field(default_factory=list)


@dataclass
class WaitContext:
    variables: Mapping[str, object]
    run_id: int
    workspace_id: int
    now: datetime
    # The step's child runs started so far, oldest first (empty in `begin`).
    children: list[Child] = field(default_factory=list)
    # Runs a `map` step's paid items inside the worker (workflows/runtime/items.py).
    items: PaidItems | None = None


class PaidCall(Protocol):
    """A prepared paid call: its worst case, held in the budget before it is sent."""

    @property
    def hold_nanousd(self) -> int: ...

    @property
    def messages(self) -> list[dict[str, str]]: ...


@dataclass(frozen=True)
class ItemOutcome:
    """What became of one item of a map: `status` is a StepItem status
    ("pending" when the map stopped before it ran)."""

    index: int
    status: str
    output: object
    error: str
    usage: Usage


@dataclass(frozen=True)
class ItemsDone:
    """The items of a map in item order, and why it stopped early (the budget,
    the run's time limit), if it did."""

    outcomes: list[ItemOutcome]
    stopped: str = ""

    @property
    def usage(self) -> Usage:
        total = Usage(model=next((o.usage.model for o in self.outcomes if o.usage.model), ""))
        for outcome in self.outcomes:
            total.tokens_in += outcome.usage.tokens_in
            total.tokens_cached += outcome.usage.tokens_cached
            total.tokens_out += outcome.usage.tokens_out
            total.cost_nanousd += outcome.usage.cost_nanousd
        return total


class PaidItems(Protocol):
    """The engine's runner of a map step's paid items (workflows/runtime/items.py):
    each item persisted as it finishes, its worst case held in the budget,
    every write fenced by the run's lease."""

    def run(
        self,
        *,
        inputs: list[object],
        concurrency: int,
        stop_at_failure: bool,
        failed_status: str,
        prepare: Callable[[int, object], Any],
        execute: Callable[[int, Any, StepContext], StepResult],
        estimate_lost: Callable[[Any, str], Usage] | None = None,
    ) -> ItemsDone: ...
