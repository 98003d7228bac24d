"""The step kinds. `KINDS` below is the only list of them.

Each kind is a package, `workflows/steps/<kind>/`, whose `__init__` exposes:

- `TYPE`, the `type` its steps carry, and `Config`, their pydantic model
  (a `StepBase` with `type: Literal[TYPE]`); `DEFAULTS`, the values a new
  step starts with;
- `templates(step) -> list[tuple[str, str]]`: fields that contain variables;
- `targets(step) -> list[tuple[str, str]]`: fields that name the next step;
- `output_schema(step) -> dict | None`: JSON schema of the output, None for text;
- `next_key(step, output) -> str | None`: where the run goes after the step,
  None for the usual way on (the following step);
- `check(step, *, models) -> list[tuple[str, str]]`: kind-specific validation
  as (field, message) pairs;
- `execute(step, variables)`: run it. A kind with `PAID = True` instead has
  `prepare(step, variables)`, which returns a call carrying `hold_nanousd`
  (its worst-case cost, held in the budget by the engine), and
  `execute(step, call, context)`. A kind with `WAITS = True` (a
  step that may park its run: workflows/runtime/engine.py, "Waiting step
  kinds") instead has `begin(step, context)` and `resume(step, state,
  context)`, each returning a StepResult or a Wait, and may have
  `parked(step, state, run_id)`, called once after the run first parks
  there (an approval emails its approvers then); one that runs other
  workflows also has `calls(step) -> list[tuple[int, int | None]]` (the
  workflows and pinned versions, for the call-graph checks). A kind that
  runs something per item of a list (a map) has `item_source(step) ->
  (field, template)` (the list: validation checks it gives one),
  `item_templates(step)` (the fields rendered per item) and
  `ITEM_VARIABLES` (the names of the item and its index there). A free kind
  that waits on the network has `NETWORK = True` and `execute(step, context)
  -> StepResult`: it gets the run's context (its workspace, its deadline),
  releases its database connection before it waits, and its result's
  `messages` are its record;

optionally `SECRETS = True` (only `http`): its templates may use
`{{ secrets.NAME }}`, which validation refuses in every other kind's templates
and in the workflow's output, so that a secret never reaches a model or an output;

and, for the editor (`editor.py` in the package): `LABEL`, `HINT` (the "add
step" menu), `SHORT_LABEL` (the run page), `TONE` (its badge's colour),
`BLURB` (the panel),
`EMPTY_SUMMARY`, `FIELD_LABELS`, `LIST_FIELDS`, `PANEL` (its panel template,
in the package's `templates/`: `edit` and `readonly` partials), `new_step`,
`summary`, `branches`, `json_properties`, `fields`, `template_values`,
`rename`, `from_post`, `apply_action`, `panel_context(step, slots, *, workflow)`
(extra context for its panel; `workflow` is the one being edited), and for editing
together `posted_path`, `form_name`, `action_path`.

The `Step` union, validation, the engine, the "add step" menu, the cards,
the panel, conflict detection, field labels, the history's diff and the run
page derive from `KINDS`; tests/test_step_kinds_contract.py checks that each
kind has every part, and tests/test_a_new_kind.py that a kind outside this
package works with one more line here.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from workflows.steps import approval, condition, http, llm, map, template, wait, workflow
from workflows.steps.base import StepBase

# In the editor's "add step" menu in this order.
KINDS: tuple[ModuleType, ...] = (
    llm,
    template,
    condition,
    workflow,
    map,
    wait,
    http,
    approval,
)


def by_type(kinds: tuple[ModuleType, ...]) -> dict[str, ModuleType]:
    return {kind.TYPE: kind for kind in kinds}


def step_union(kinds: tuple[ModuleType, ...]) -> object:
    """The pydantic discriminated union of the kinds' configs, tagged by `type`."""
    return Annotated[Union[tuple(kind.Config for kind in kinds)], Field(discriminator="type")]  # noqa: UP007


STEP_TYPES: dict[str, ModuleType] = by_type(KINDS)

if TYPE_CHECKING:
    Step = StepBase
else:
    Step = step_union(KINDS)


def module_for(step: StepBase) -> ModuleType:
    return STEP_TYPES[step.type]


def kind_of(step: object) -> ModuleType | None:
    """The kind of a step of a raw draft (which may not validate); None for an unknown type."""
    return STEP_TYPES.get(str(step.get("type"))) if isinstance(step, dict) else None


def starts_runs(definition: object) -> bool:
    """Whether a raw definition has a step that can start runs (one with
    `calls`): the pages and the API ask for a run's children only then."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return any(hasattr(kind_of(step), "calls") for step in steps or [])


def runs_items(definition: object) -> bool:
    """Whether a raw definition has a step that goes over a list (one with
    `item_source`): the pages and the API ask for its items only then."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return any(hasattr(kind_of(step), "item_source") for step in steps or [])
