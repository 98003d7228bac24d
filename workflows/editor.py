"""What the editor page shows, computed from a draft: cards, problems per field, run progress.

The draft may not validate. `editor_state` runs the validator once and
places each issue where the person will look for it: on a step's card and
next to the field in its side panel, on the Inputs or Output card, or in the
page header. The templates only read these objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from workflows import editing, services
from workflows.definition import Definition, Issue, variables_at
from workflows.models import Run, StepRun
from workflows.pricing import format_usd
from workflows.rendering import references
from workflows.steps import module_for

OP_LABELS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "not_contains": "does not contain",
    "matches": "matches the pattern",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "gt": "is greater than",
    "lt": "is less than",
}
UNARY_OPS = ("is_empty", "is_not_empty")
PREVIEW_CHARS = 280

_STEPS_INDEX_RE = re.compile(r"steps\[(\d+)\]")
_UNKNOWN_VARIABLE_RE = re.compile(
    r'^Unknown variable "([A-Za-z_][A-Za-z0-9_]*)"\.(?: Did you mean (.*)\?)?'
)
_QUOTED_RE = re.compile(r'"([^"]+)"')


def slot_id(field_path: str) -> str:
    """The id of the element that lists a field's problems, e.g. "err-cases-0-left"."""
    return "err-" + (re.sub(r"[^a-z0-9]+", "-", field_path.lower()).strip("-") or "general")


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
    field: str
    messages: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    excerpts: list[Excerpt] = field(default_factory=list)

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


@dataclass
class Card:
    index: int
    key: str
    kind: str
    kind_label: str
    title: str
    summary: str
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
    definition: dict, run: Run | None = None, step_runs: list[StepRun] | None = None
) -> EditorState:
    parsed, issues = services.definition_check(definition)
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
    kind = raw.get("type") if isinstance(raw.get("type"), str) else ""
    key = editing.step_key(raw)
    title = raw.get("title") if isinstance(raw.get("title"), str) else ""
    return Card(
        index=index,
        key=key,
        kind=kind,
        kind_label=editing.KIND_LABELS.get(kind, kind or "Step"),
        title=title.strip() or key or f"Step {index + 1}",
        summary=_summary(raw, kind),
        branches=_branches(raw, kind),
        issues=[_issue_text(issue) for issue in issues],
        json_fields=_json_fields(raw),
        state=state,
    )


def _summary(step: dict, kind: str) -> str:
    if kind == "llm":
        text = step.get("prompt")
    elif kind == "template":
        text = step.get("template")
    else:
        return ""
    text = text if isinstance(text, str) else ""
    text = " ".join(text.split())
    return text[:160] + ("…" if len(text) > 160 else "")


def _branches(step: dict, kind: str) -> list[Branch]:
    branches = []
    if kind == "condition":
        for case in step.get("cases") if isinstance(step.get("cases"), list) else []:
            if isinstance(case, dict):
                branches.append(Branch(case_label(case), str(case.get("goto") or "?"), "true"))
        # "else" is the ordinary way on, not a failure: no alarming colour.
        branches.append(Branch("else", str(step.get("else") or "?"), ""))
    elif isinstance(step.get("next"), str) and step.get("next"):
        branches.append(Branch("then", step["next"], ""))
    return branches


def case_label(case: dict) -> str:
    """How a case reads on its chip: "billing" for an equals, else "left op right"."""
    op = case.get("op")
    right = case.get("right")
    right = "" if right is None else str(right)
    left = str(case.get("left") or "")
    if op == "equals" and right:
        return right
    if op in UNARY_OPS:
        return f"{_short(left)} {OP_LABELS[op]}"
    return f"{OP_LABELS.get(str(op), op)} {right}".strip()


def _short(text: str) -> str:
    refs = references(text)
    if len(refs) == 1 and refs[0].text == text.strip():
        return refs[0].dotted
    return text if len(text) <= 24 else text[:23] + "…"


def _json_fields(step: dict) -> list[str]:
    response_format = step.get("response_format")
    # A condition's output ({"case": 0, "goto": "reply"}) only records the route taken: not offered.
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return []
    schema = response_format.get("schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return [str(name) for name in properties] if isinstance(properties, dict) else []


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


def step_fields(step: dict) -> list[str]:
    """The fields the step's form shows, each with a
    slot for its problems (the rest go to "general")."""
    kind = step.get("type")
    common = ["key", "title"]
    if kind == "llm":
        fields = [
            *common,
            "system",
            "prompt",
            "model",
            "temperature",
            "max_tokens",
            "response_format",
        ]
        response_format = step.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            fields += ["response_format.name", "response_format.schema", "sample"]
        return [*fields, "next"]
    if kind == "template":
        return [*common, "template", "next"]
    if kind == "condition":
        cases = step.get("cases") if isinstance(step.get("cases"), list) else []
        fields = [*common, "cases", "else"]
        for index in range(len(cases)):
            fields += [f"cases[{index}].{name}" for name in ("left", "op", "right", "goto")]
        return fields
    return common


def step_template_values(step: dict) -> dict[str, str]:
    values = {
        name: step[name]
        for name in ("system", "prompt", "template")
        if isinstance(step.get(name), str)
    }
    for index, case in enumerate(step.get("cases") if isinstance(step.get("cases"), list) else []):
        if isinstance(case, dict):
            for side in ("left", "right"):
                if isinstance(case.get(side), str):
                    values[f"cases[{index}].{side}"] = case[side]
    return values


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
    if state.parsed is not None:
        for step in state.parsed.steps[:index]:
            if step.type == "condition":
                continue  # its fields only record the route taken (see _json_fields)
            schema = module_for(step).output_schema(step)
            properties = schema.get("properties") if isinstance(schema, dict) else None
            fields_by_key[step.key] = list(properties) if isinstance(properties, dict) else []
    return [Variable(name, fields_by_key.get(name, [])) for name in names]


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
    return StepState(
        status=step_run.status,
        label=labels.get(step_run.status, step_run.status),
        output=preview(step_run.output) if step_run.status == StepRun.Status.SUCCEEDED else "",
        tokens=step_run.tokens_in + step_run.tokens_out,
        cost=format_usd(step_run.cost_nanousd) if step_run.type == "llm" else "",
        latency_ms=step_run.latency_ms,
        error=step_run.error,
        reused=step_run.reused,
    )


def preview(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS].rstrip() + "…"
