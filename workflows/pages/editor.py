"""What the editor page shows, computed from a draft: cards, problems per field, run progress.

The draft may not validate. `editor_state` runs the validator once and
places each issue where the person will look for it: on a step's card and
next to the field in its side panel, on the Inputs or Output card, or in the
page header. The templates only read these objects.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from workflows import services
from workflows.builder import editing
from workflows.builder.definition import Definition, Issue, item_variables_at, variables_at
from workflows.llm.pricing import format_usd
from workflows.models import Run, StepRun, Workflow
from workflows.rendering import references
from workflows.steps import STEP_TYPES
from workflows.steps.form import slot_id

PREVIEW_CHARS = 280

_STEPS_INDEX_RE = re.compile(r"steps\[(\d+)\]")
_UNKNOWN_VARIABLE_RE = re.compile(
    r'^Unknown variable "([A-Za-z_][A-Za-z0-9_]*)"\.(?: Did you mean (.*)\?)?'
)
_QUOTED_RE = re.compile(r'"([^"]+)"')


@dataclass
class Fix:
    """A one-click correction of a mistyped variable: replace `bad` by `good` in the field."""

    bad: str
    good: str


@dataclass
class Excerpt:
    """The text around a bad reference, so the typo can be shown underlined."""

    before: str
    reference: str
    after: str


@dataclass
class Slot:
    field: str  # shadows dataclasses.field in this class body, hence the module path below
    messages: list[str] = dataclasses.field(default_factory=list)
    fixes: list[Fix] = dataclasses.field(default_factory=list)
    excerpts: list[Excerpt] = dataclasses.field(default_factory=list)

    @property
    def id(self) -> str:
        return slot_id(self.field)


@dataclass
class Branch:
    label: str
    goto: str
    tone: str  # "true" for a case, "" for else and next


@dataclass
class StepState:
    """One card's part of a test run."""

    status: str  # queued, running, succeeded, failed, skipped, not_run
    label: str
    output: str = ""
    tokens: int = 0
    cost: str = ""
    latency_ms: int | None = None
    error: str = ""
    reused: bool = False
    # A paid step still running: its answer so far, which the run's events
    # (htmx's SSE extension) replace as it grows.
    live: bool = False


@dataclass
class Card:
    index: int
    key: str
    kind: str
    kind_label: str
    # Its kind's badge colour (TONE), "" for the plain badge.
    tone: str
    title: str
    summary: str
    # What the card says when the summary is empty ("No prompt yet."), if anything.
    summary_empty: str
    branches: list[Branch]
    issues: list[str]
    json_fields: list[str]
    state: StepState | None = None

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass
class Variable:
    name: str
    fields: list[str]


@dataclass
class EditorState:
    definition: dict
    parsed: Definition | None
    issues: list[Issue]
    cards: list[Card]
    inputs: list[dict]
    input_issues: list[Issue]
    output_issues: list[Issue]
    workflow_issues: list[Issue]
    step_issues: dict[int, list[Issue]]

    @property
    def issue_count(self) -> int:
        return len(self.issues)

    @property
    def output(self) -> str | None:
        output = self.definition.get("output")
        return output if isinstance(output, str) else None


def editor_state(
    definition: object,
    run: Run | None = None,
    step_runs: list[StepRun] | None = None,
    *,
    workflow: Workflow | None = None,
) -> EditorState:
    parsed, issues = services.definition_check(definition, workflow=workflow)
    definition = definition if isinstance(definition, dict) else {}
    steps = editing.steps_of(definition)
    step_issues: dict[int, list[Issue]] = {}
    input_issues, output_issues, workflow_issues = [], [], []
    for issue in issues:
        indexes = _step_indexes(issue, steps)
        if indexes:
            for index in indexes:
                step_issues.setdefault(index, []).append(issue)
        elif issue.field.startswith("inputs"):
            input_issues.append(issue)
        elif issue.field == "output":
            output_issues.append(issue)
        else:
            workflow_issues.append(issue)
    states = run_states(definition, run, step_runs or [])
    cards = [
        _card(index, step, parsed, step_issues.get(index, []), states.get(editing.step_key(step)))
        for index, step in enumerate(steps)
    ]
    return EditorState(
        definition=definition,
        parsed=parsed if not issues else None,
        issues=issues,
        cards=cards,
        inputs=[spec for spec in editing.inputs_of(definition) if isinstance(spec, dict)],
        input_issues=input_issues,
        output_issues=output_issues,
        workflow_issues=workflow_issues,
        step_issues=step_issues,
    )


def _step_indexes(issue: Issue, steps: list[Any]) -> list[int]:
    if issue.step is None:
        return []
    match = _STEPS_INDEX_RE.fullmatch(issue.step)
    if match:
        return [int(match.group(1))]
    return [index for index, step in enumerate(steps) if editing.step_key(step) == issue.step]


def _card(
    index: int,
    step: object,
    parsed: Definition | None,
    issues: list[Issue],
    state: StepState | None,
) -> Card:
    raw = step if isinstance(step, dict) else {}
    raw_kind, raw_title = raw.get("type"), raw.get("title")
    kind = raw_kind if isinstance(raw_kind, str) else ""
    module = STEP_TYPES.get(kind)
    key = editing.step_key(raw)
    title = raw_title if isinstance(raw_title, str) else ""
    return Card(
        index=index,
        key=key,
        kind=kind,
        kind_label=module.LABEL if module else (kind or "Step"),
        tone=module.TONE if module else "",
        title=title.strip() or key or f"Step {index + 1}",
        summary=module.summary(raw) if module else "",
        summary_empty=module.EMPTY_SUMMARY if module else "",
        branches=[
            *(Branch(*branch) for branch in (module.branches(raw) if module else [])),
            *_error_branch(raw),
        ],
        issues=[_issue_text(issue) for issue in issues],
        json_fields=list(module.json_properties(raw)) if module else [],
        state=state,
    )


def _error_branch(step: dict) -> list[Branch]:
    """The card's chip for an error branch (on_error naming a later step)."""
    target = step.get("on_error")
    if isinstance(target, str) and target not in ("", "fail", "continue"):
        return [Branch("on error", target, "false")]
    return []


def _issue_text(issue: Issue) -> str:
    return f"{issue.field}: {issue.message}" if issue.field else issue.message


# --- Side panels -------------------------------------------------------------------


def slots_for(
    fields: list[str], issues: list[Issue], values: dict[str, str] | None = None
) -> dict[str, Slot]:
    """One slot per field of a form, plus "general" for issues that belong to none of them.

    `values` (field -> template text) lets a slot quote the text around a
    mistyped variable, so the typo can be shown underlined.
    """
    slots = {name: Slot(name) for name in [*fields, "general"]}
    for issue in issues:
        slot = slots.get(issue.field)
        if slot is None:
            slots["general"].messages.append(_issue_text(issue))
            continue
        slot.messages.append(issue.message)
        match = _UNKNOWN_VARIABLE_RE.match(issue.message)
        if match:
            bad = match.group(1)
            for good in _QUOTED_RE.findall(match.group(2) or ""):
                slot.fixes.append(Fix(bad=bad, good=good))
            text = (values or {}).get(issue.field, "")
            slot.excerpts += _excerpts(text, bad)
    return slots


def _excerpts(text: str, name: str) -> list[Excerpt]:
    found = []
    for reference in references(text):
        if reference.name == name:
            before = text[max(0, reference.start - 40) : reference.start]
            after = text[reference.end : reference.end + 40]
            found.append(
                Excerpt(
                    ("…" if reference.start > 40 else "") + before,
                    reference.text,
                    after + ("…" if reference.end + 40 < len(text) else ""),
                )
            )
            break  # one is enough to show where it is
    return found


# Every step's error policy, below its kind's fields.
ERROR_POLICY_FIELDS = ("retries", "on_error", "fallback")


def step_fields(step: dict) -> list[str]:
    """The fields the step's form shows, each with a slot for its problems (the rest go to
    "general")."""
    module = STEP_TYPES.get(str(step.get("type")))
    return ["key", "title", *(module.fields(step) if module else []), *ERROR_POLICY_FIELDS]


def step_template_values(step: dict) -> dict[str, str]:
    module = STEP_TYPES.get(str(step.get("type")))
    return module.template_values(step) if module else {}


def input_fields(inputs: list[dict]) -> list[str]:
    fields = ["inputs"]
    for index in range(len(inputs)):
        fields += [f"inputs[{index}].{name}" for name in ("name", "type", "default", "description")]
    return fields


def picker_variables(state: EditorState, index: int) -> list[Variable]:
    """The variables a template at step `index` may
    use (len(steps): the output), with JSON fields."""
    if state.parsed is not None:
        names = variables_at(state.parsed, index)
    else:
        names = editing.variables_at_raw(state.definition, index)
    fields_by_key = {card.key: card.json_fields for card in state.cards[:index]}
    # A map's item templates see its item and index too (not its list, `over`).
    items = item_variables_at(state.parsed, index) if state.parsed is not None else {}
    return [
        *(Variable(name, fields) for name, fields in items.items()),
        *(Variable(name, fields_by_key.get(name, [])) for name in names),
    ]


# --- Test runs on the cards -----------------------------------------------------------


def run_states(definition: dict, run: Run | None, step_runs: list[StepRun]) -> dict[str, StepState]:
    """Each step's state in `run`, by key; steps the run has not reached yet are queued."""
    if run is None:
        return {}
    by_key = {step_run.key: step_run for step_run in step_runs}
    states: dict[str, StepState] = {}
    for step in editing.steps_of(definition):
        key = editing.step_key(step)
        step_run = by_key.get(key)
        if step_run is not None:
            states[key] = step_state(step_run)
        elif run.is_finished:
            states[key] = StepState("not_run", "not run")
        else:
            states[key] = StepState("queued", "queued")
    return states


def step_state(step_run: StepRun) -> StepState:
    labels = {
        "running": "running",
        "waiting": "waiting for budget",
        "succeeded": "done",
        "failed": "failed",
        "skipped": "skipped",
    }
    live = step_run.status == StepRun.Status.RUNNING and _paid(step_run.type)
    shown = step_run.status == StepRun.Status.SUCCEEDED or (live and step_run.output)
    return StepState(
        status=step_run.status,
        label=labels.get(step_run.status, step_run.status),
        output=preview(step_run.output) if shown else "",
        live=live,
        tokens=step_run.tokens_in + step_run.tokens_out,
        cost=format_usd(step_run.cost_nanousd) if _paid(step_run.type) else "",
        latency_ms=step_run.latency_ms,
        error=step_run.error,
        reused=step_run.reused,
    )


def preview(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS].rstrip() + "…"


def _paid(kind: str) -> bool:
    return getattr(STEP_TYPES.get(kind), "PAID", False)
