"""The workflow definition: its format, its static validation, and its inputs.

The same JSON is what the editor saves, what import/export exchange and what
the API accepts. `validate_definition` is the gate: pydantic alone checks the
shape, the semantic checks below make sure a definition that validates never
fails at run time for a structural reason (unknown variable, jump backwards,
unknown model, a schema OpenAI would refuse, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from accounts.models import SECRET_NAME_RE
from config.lib.json_storable import unstorable_value
from config.lib.names import DirectionSafe
from workflows import steps as step_kinds
from workflows.rendering import Reference, invalid_references, references, to_text
from workflows.steps import Step, module_for
from workflows.steps.base import END, ON_ERROR_CONTINUE, ON_ERROR_FAIL

PAYLOAD = "payload"
# `{{ secrets.NAME }}`: a workspace secret, only in the templates of a kind with SECRETS.
SECRETS = "secrets"
NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,63}", re.IGNORECASE)
RESERVED_NAMES = frozenset({PAYLOAD, SECRETS, END, "input", "inputs", "run", "workflow"})
# Objects and arrays inside one another, counting the definition itself as
# level 1 (a step's response schema starts at level 5). Deeper input is
# refused before any check walks it: those walks recurse (pydantic,
# jsonschema), and a 300-level schema used to exhaust Python's stack.
MAX_DEPTH = 64

InputType = Literal["text", "number", "boolean", "json"]


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: InputType = "text"
    required: bool = True
    # None means "no default"; a json input cannot default to null.
    default: Any = None
    description: str = ""


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        DirectionSafe,
    ]
    description: str = ""
    inputs: list[InputSpec] = []
    steps: list[Step]
    # None: the run's result is the output of the last step that ran.
    output: str | None = None


@dataclass
class Issue:
    step: str | None
    field: str
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def __str__(self) -> str:
        where = ".".join(part for part in (self.step, self.field) if part)
        return f"{where}: {self.message}" if where else self.message


def validate_definition(
    data: object,
    *,
    models: Mapping[str, int],
    called_schemas: Mapping[int, dict[str, Any] | None] | None = None,
) -> tuple[Definition | None, list[Issue]]:
    """Parse and check a definition, reporting every problem at once.

    `models` maps each allowed model to its maximum output tokens. When pydantic
    refuses part of the definition, the parts it accepts are still checked, so
    one typo does not hide the other problems. `called_schemas` maps the
    workflows its steps call to the schemas of their outputs (None: text), so
    that a later step's `{{ call.field }}` is checked against what it will get.
    """
    if not isinstance(data, Mapping):
        return None, [Issue(None, "", "A workflow definition must be a JSON object.")]
    too_deep = _too_deep(data)
    if too_deep is not None:
        return None, [too_deep]
    definition: Definition | None
    try:
        definition = Definition.model_validate(data)
    except ValidationError as error:
        definition = None
        issues = [_issue_from_pydantic(detail, data) for detail in error.errors()]
        outline = _Outline.salvage(data)
    else:
        issues = []
        outline = _Outline.of(definition)
    if called_schemas:
        outline.called_schemas.update(called_schemas)
    issues += _semantic_issues(outline, models)
    return definition, issues


def run_output_schema(definition: Definition) -> dict[str, Any] | None:
    """The schema of a run's output, when the definition fixes it: no `output`
    template (which renders text), the last step answers JSON with a schema,
    and no step ends the run before it."""
    if definition.output is not None or not definition.steps:
        return None
    *earlier, last = definition.steps
    for step in earlier:
        if any(target == END for _, target in module_for(step).targets(step)):
            return None
    schema = module_for(last).output_schema(last)
    return schema if isinstance(schema, dict) and schema.get("type") == "object" else None


def variables_at(definition: Definition, index: int) -> list[str]:
    """Names a template of the step at `index` may use (for the variable picker)."""
    return [
        *(spec.name for spec in definition.inputs),
        *(step.key for step in definition.steps[:index]),
        PAYLOAD,
    ]


def item_variables_at(definition: Definition, index: int) -> dict[str, list[str]]:
    """The item variables of the step at `index`, if it runs something per
    item (a map), each with its known fields (for the variable picker)."""
    if index >= len(definition.steps):
        return {}
    step = definition.steps[index]
    module = module_for(step)
    if not hasattr(module, "item_source"):
        return {}
    _, item = _list_source(module.item_source(step)[1], _Outline.of(definition), index)
    item_name, index_name = module.ITEM_VARIABLES
    fields = _field_names(item.schema, item.root) if item.schema and item.root else []
    return {item_name: fields, index_name: []}


# --- Inputs ------------------------------------------------------------------

REQUIRED_MESSAGE = "This input is required."
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER_RE = re.compile(r"[+-]?\d+")
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class InputError(Exception):
    def __init__(self, details: dict[str, str]) -> None:
        self.details = details
        missing = [name for name, message in details.items() if message == REQUIRED_MESSAGE]
        invalid = [f"{name}: {message}" for name, message in details.items() if name not in missing]
        parts = []
        if missing:
            parts.append("Missing required inputs: " + ", ".join(missing) + ".")
        if invalid:
            parts.append("Invalid inputs: " + " ".join(invalid))
        super().__init__(" ".join(parts))


def coerce_inputs(definition: Definition, raw: Mapping[str, object]) -> dict[str, object]:
    """The run's input values, typed; raises InputError naming every bad input.

    Form fields arrive as strings and webhooks as JSON, so both are accepted.
    Blank values count as absent (an empty form field), and keys that are not
    inputs are ignored (a webhook body carries more than we ask for).
    """
    values: dict[str, object] = {}
    details: dict[str, str] = {}
    for spec in definition.inputs:
        value = raw.get(spec.name)
        if _is_blank(value):
            value = spec.default
        if _is_blank(value):
            if spec.required:
                details[spec.name] = REQUIRED_MESSAGE
            values[spec.name] = None
            continue
        try:
            values[spec.name] = coerce_value(spec.type, value)
        except ValueError as error:
            details[spec.name] = str(error)
    if details:
        raise InputError(details)
    return values


def coerce_value(kind: InputType, value: object) -> object:
    if kind == "text":
        if isinstance(value, (dict, list)):
            raise ValueError("Expected text.")
        text = value if isinstance(value, str) else to_text(value)
        if why := unstorable_value(text):
            raise ValueError(f"The text {why}.")
        return text
    if kind == "number":
        return _coerce_number(value)
    if kind == "boolean":
        return _coerce_boolean(value)
    if isinstance(value, str):  # json
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ValueError(f"Expected JSON: {error}.") from None
        except RecursionError:
            raise ValueError("Expected JSON: it is nested too deeply.") from None
    if why := unstorable_value(value):
        raise ValueError(f"The value {why}.")
    return value


def _coerce_number(value: object) -> int | float:
    if isinstance(value, bool):  # bool is an int, but True is not a number here
        raise ValueError("Expected a number.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if _INTEGER_RE.fullmatch(text):
                return int(text)
            if _DECIMAL_RE.fullmatch(text):
                number = float(text)
                if math.isfinite(number):
                    return number
        except ValueError:  # an integer with more digits than Python converts
            pass
    raise ValueError("Expected a number.")


def _coerce_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("Expected true or false.")


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- Pydantic errors as issues ----------------------------------------------

_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
}


def _issue_from_pydantic(detail: ErrorDetails, data: Mapping[str, Any]) -> Issue:
    location = list(detail["loc"])
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
        location.append("type")
    parts = _without_union_tags(location, data)
    step: str | None = None
    if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
        step = _raw_name(_item(data.get("steps"), parts[1]), "key") or f"steps[{parts[1]}]"
        parts = parts[2:]
    return Issue(step, _field_path(parts), _pydantic_message(detail))


def _too_deep(data: Mapping[str, Any]) -> Issue | None:
    """An issue naming where `data` nests deeper than MAX_DEPTH, or None.

    Iterative, so that it cannot itself run out of stack."""
    pending: list[tuple[object, int, tuple[Any, ...]]] = [(data, 1, ())]
    while pending:
        node, depth, path = pending.pop()
        if isinstance(node, Mapping):
            children: Any = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth > MAX_DEPTH:
            return _too_deep_issue(data, list(path))
        pending.extend((child, depth + 1, (*path, key)) for key, child in children)
    return None


def _too_deep_issue(data: Mapping[str, Any], parts: list[Any]) -> Issue:
    message = (
        f"Nested too deeply: a workflow definition may hold objects and arrays at most "
        f"{MAX_DEPTH} levels deep (a response schema at most {MAX_DEPTH - 4})."
    )
    if len(parts) >= 3 and parts[0] == "steps" and isinstance(parts[1], int):
        step = _raw_name(_item(data.get("steps"), parts[1]), "key") or f"steps[{parts[1]}]"
        rest = parts[2:]
        # Inside a union field (the llm kind's response_format) the member's field is named too.
        return Issue(
            step, _field_path(rest[:2] if rest[0] in _union_fields() else rest[:1]), message
        )
    return Issue(None, _field_path(parts[:3]), message)


def _without_union_tags(location: list[Any], data: object) -> list[Any]:
    # Discriminated unions put the tag ("llm", "json_schema") in the
    # location; users never wrote it, so it is dropped.
    unions = _union_fields()
    parts: list[Any] = []
    node = data
    tag_may_follow = False
    for part in location:
        if tag_may_follow and isinstance(node, Mapping) and part == node.get("type"):
            tag_may_follow = False
            continue
        parts.append(part)
        node = _item(node, part)
        # The unions are a step (after its index) and its kind's union fields (a response_format).
        tag_may_follow = (len(parts) == 2 and parts[0] == "steps") or part in unions
    return parts


def _union_fields() -> set[str]:
    """The kinds' fields that are discriminated unions themselves (the llm kind's
    response_format: text or json_schema), read from their config models."""
    return {
        name
        for kind in step_kinds.KINDS
        for name, field in kind.Config.model_fields.items()
        if field.discriminator
    }


def _pydantic_message(detail: ErrorDetails) -> str:
    context: dict[str, Any] = detail.get("ctx") or {}
    if detail["type"] == "union_tag_invalid":
        return f'Unknown type "{context.get("tag")}" (expected {context.get("expected_tags")}).'
    if detail["type"] == "union_tag_not_found":
        return "This field is required."
    message = detail["msg"]  # pydantic's own end without a period; our validators' with one
    return _MESSAGES.get(detail["type"], message if message.endswith(".") else f"{message}.")


def _field_path(parts: Sequence[Any]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _item(node: object, part: object) -> object:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _raw_name(node: object, field: str) -> str | None:
    value = _item(node, field)
    return value if isinstance(value, str) else None


# --- Semantic checks ---------------------------------------------------------

_STEP = TypeAdapter(Step)


@dataclass(frozen=True)
class _Outline:
    """What the checks need: every name, and each item pydantic accepted (or None)."""

    inputs: list[tuple[str | None, InputSpec | None]]
    steps: list[tuple[str | None, Any]] | None  # None: "steps" is not a list
    output: str | None
    # The output schemas of the workflows its steps call, when known.
    called_schemas: dict[int, dict[str, Any] | None] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, definition: Definition) -> _Outline:
        return cls(
            inputs=[(spec.name, spec) for spec in definition.inputs],
            steps=[(step.key, step) for step in definition.steps],
            output=definition.output,
        )

    @classmethod
    def salvage(cls, data: Mapping[str, Any]) -> _Outline:
        raw_inputs = data.get("inputs")
        raw_steps = data.get("steps")
        output = data.get("output")
        return cls(
            inputs=[
                (_raw_name(item, "name"), _parsed(InputSpec.model_validate, item))
                for item in (raw_inputs if isinstance(raw_inputs, list) else [])
            ],
            steps=[
                (_raw_name(item, "key"), _parsed(_STEP.validate_python, item)) for item in raw_steps
            ]
            if isinstance(raw_steps, list)
            else None,
            output=output if isinstance(output, str) else None,
        )

    @property
    def step_keys(self) -> list[str | None]:
        return [key for key, _ in self.steps or []]


def _parsed(parse: Any, item: object) -> Any:
    try:
        return parse(item)
    except ValidationError:
        return None


def _semantic_issues(outline: _Outline, models: Mapping[str, int]) -> list[Issue]:
    issues = _name_issues(outline)
    for position, (_, spec) in enumerate(outline.inputs):
        if spec is not None and spec.default is not None:
            try:
                coerce_value(spec.type, spec.default)
            except ValueError as error:
                issues.append(
                    Issue(
                        None,
                        f"inputs[{position}].default",
                        f"Not a valid {spec.type} default: {error}",
                    )
                )
    if outline.steps == []:
        issues.append(Issue(None, "steps", "A workflow needs at least one step."))
    for position, (_, step) in enumerate(outline.steps or []):
        if step is None:
            continue  # pydantic has already said what is wrong with it
        module = module_for(step)
        problems = module.check(step, models=models)
        problems += _target_problems(outline, position, module.targets(step))
        problems += _error_policy_problems(outline, position, step)
        secrets_allowed = getattr(module, "SECRETS", False)
        local: dict[str, _Local] = {}
        item_fields: set[str] = set()
        if hasattr(module, "item_source"):
            # A kind that runs something per item of a list (a map): its
            # item templates may use the item and its index too.
            source_field, source = module.item_source(step)
            problem, item = _list_source(source, outline, position)
            if problem:
                problems.append((source_field, problem))
            item_name, index_name = module.ITEM_VARIABLES
            local = {item_name: item, index_name: _INDEX}
            item_fields = set(module.item_templates(step))
        for field, template in module.templates(step):
            problems += [
                (field, message)
                for message in _template_problems(
                    template,
                    outline,
                    position,
                    local if field in item_fields else None,
                    secrets_allowed=secrets_allowed,
                )
            ]
        issues += [Issue(step.key, field, message) for field, message in problems]
    if outline.output is not None and outline.steps is not None:
        issues += [
            Issue(None, "output", message)
            for message in _template_problems(outline.output, outline, position=None)
        ]
    return issues


def _name_issues(outline: _Outline) -> list[Issue]:
    issues: list[Issue] = []
    owners: dict[str, str] = {}  # lower-cased name -> who uses it

    def claim(name: str, owner: str, step: str | None, field: str) -> None:
        if not NAME_RE.fullmatch(name):
            message = (
                f'"{name}" is not a valid name: use letters, digits and underscores, '
                "starting with a letter or underscore, at most 64 characters."
            )
        elif name.lower() in RESERVED_NAMES:
            message = f'"{name}" is reserved; choose another name.'
        elif name.lower() in owners:
            message = f'"{name}" is already used by {owners[name.lower()]}.'
        else:
            owners[name.lower()] = owner
            return
        issues.append(Issue(step, field, message))

    for position, (name, _) in enumerate(outline.inputs):
        if name is not None:
            claim(name, f'input "{name}"', None, f"inputs[{position}].name")
    for key in outline.step_keys:
        if key is not None:
            claim(key, f'step "{key}"', key, "key")
    return issues


def _error_policy_problems(outline: _Outline, position: int, step: Any) -> list[tuple[str, str]]:
    """`on_error` is fail, continue or a later step; `fallback` only with continue."""
    problems: list[tuple[str, str]] = []
    if step.on_error not in (ON_ERROR_FAIL, ON_ERROR_CONTINUE):
        if step.on_error == END:
            problems.append(("on_error", f'Use "{ON_ERROR_FAIL}" to stop the run on an error.'))
        else:
            problems += _target_problems(outline, position, [("on_error", step.on_error)])
    if step.fallback is not None:
        if step.on_error != ON_ERROR_CONTINUE:
            problems.append(("fallback", 'A fallback is used only when on_error is "continue".'))
        elif isinstance(step.fallback, str):
            problems += [
                ("fallback", message)
                for message in _template_problems(step.fallback, outline, position)
            ]
    return problems


def _target_problems(
    outline: _Outline, position: int, targets: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    keys = outline.step_keys
    later = [key for key in keys[position + 1 :] if key is not None]
    problems = []
    for field, target in targets:
        if target == END or target in later:
            continue
        if target == keys[position]:
            message = f'A step cannot go to itself; use a later step or "{END}".'
        elif target in keys[:position]:
            message = (
                f'"{target}" is an earlier step; a step can only go to a later step '
                f'or "{END}", so that every run ends.'
            )
        else:
            message = f'Unknown step "{target}".' + _did_you_mean(target, [*later, END])
        problems.append((field, message))
    return problems


@dataclass(frozen=True)
class _Local:
    """A variable only an item template sees: the item (its schema, found
    inside `root`; None when its shape is unknown) or the index."""

    schema: dict[str, Any] | None
    root: dict[str, Any] | None
    is_index: bool = False


_INDEX = _Local(schema=None, root=None, is_index=True)
_ANY_ITEM = _Local(schema=None, root=None)


def _template_problems(
    template: str,
    outline: _Outline,
    position: int | None,
    local: Mapping[str, _Local] | None = None,
    *,
    secrets_allowed: bool = False,
) -> list[str]:
    """Problems of the references in a step's template; position None: the workflow output.
    `local`: the item variables of a map's item template."""
    messages = [
        f'Invalid variable reference "{text}": use {{{{ name }}}} or {{{{ step.field }}}}, '
        "optionally followed by | json."
        for text in invalid_references(template)
    ]
    for reference in references(template):
        if local and reference.name in local:
            message = _local_problem(reference, local[reference.name])
        elif reference.name == SECRETS:
            message = _secret_problem(reference, allowed=secrets_allowed)
        else:
            message = _reference_problem(reference, outline, position)
        if message:
            messages.append(message)
    return list(dict.fromkeys(messages))


def _secret_problem(reference: Reference, *, allowed: bool) -> str | None:
    if not allowed:
        return (
            f'"{reference.text}": secrets can be used only in an http step\'s URL, query, '
            "headers and body, so that they never reach the model or a run's output."
        )
    if len(reference.path) != 1 or not SECRET_NAME_RE.fullmatch(reference.path[0]):
        return f'"{reference.text}": name one secret, as {{{{ secrets.NAME }}}}.'
    return None


def secrets_used(definition: Mapping[str, Any]) -> list[str]:
    """The names of the workspace secrets a (raw) definition references, sorted: what an
    export needs besides the file, and what an import checks for."""
    names: set[str] = set()
    steps = definition.get("steps")
    for step in steps if isinstance(steps, list) else []:
        kind = step_kinds.kind_of(step)
        if kind is None or not getattr(kind, "SECRETS", False):
            continue
        for template in kind.template_values(step).values():
            for reference in references(template):
                if reference.name == SECRETS and len(reference.path) == 1:
                    names.add(reference.path[0])
    return sorted(names)


def _reference_problem(reference: Reference, outline: _Outline, position: int | None) -> str | None:
    name = reference.name
    if name == PAYLOAD:
        return None  # the webhook body: any shape, possibly absent
    inputs = {input_name: spec for input_name, spec in outline.inputs if input_name is not None}
    if name in inputs:
        spec = inputs[name]
        if reference.path and spec is not None and spec.type != "json":
            return (
                f'Input "{name}" is {spec.type}, so "{reference.dotted}" does not exist; '
                "only json inputs have fields."
            )
        return None
    keys = outline.step_keys
    if name not in keys:
        visible = [*inputs, *(key for key in keys[:position] if key is not None), PAYLOAD]
        return f'Unknown variable "{name}".' + _did_you_mean(name, visible)
    index = keys.index(name)
    if position is not None and index == position:
        return f'A step cannot use its own output ("{name}").'
    if position is not None and index > position:
        return f'"{name}" is a later step; a step can only use inputs and earlier steps.'
    step = (outline.steps or [])[index][1]
    if not reference.path or step is None:
        return None
    if reference.path[0] == "error" and step.on_error not in (ON_ERROR_FAIL, ON_ERROR_CONTINUE):
        # An error branch reads why the step failed.
        return _path_problem(reference, _ERROR_SCHEMA)
    schema = module_for(step).output_schema(step)
    called = getattr(step, "workflow", None)
    if schema is None and hasattr(module_for(step), "calls") and called in outline.called_schemas:
        # A step that outputs what the workflow it calls outputs.
        schema = outline.called_schemas[called]
    if schema is None:
        return (
            f'Step "{name}" outputs text, so "{reference.dotted}" does not exist; '
            "give it a JSON response format to use fields."
        )
    return _path_problem(reference, schema)


# What `{{ step.error }}` holds in a failed step's error branch.
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "kind": {"type": "string"},
                "status": {"type": ["integer", "null"]},
            },
        }
    },
}


def _local_problem(reference: Reference, local: _Local) -> str | None:
    if local.is_index:
        if reference.path:
            return f'"{reference.name}" is the item\'s position (0, 1, …): it has no fields.'
        return None
    if not reference.path or local.schema is None or local.root is None:
        return None
    return _path_problem(reference, local.schema, local.root)


def _list_source(template: str, outline: _Outline, position: int) -> tuple[str | None, _Local]:
    """Whether `template` (a map's `over`) gives a list: one reference to a
    json input, a step output whose schema is an array (or unknown), or the
    payload. Returns the problem, if any, and what an item is."""
    found = references(template)
    if len(found) != 1 or found[0].text != template.strip() or found[0].filter:
        if not template.strip():
            return None, _ANY_ITEM  # the kind's check says it is missing
        return (
            "Give one reference to a list and nothing else, e.g. {{ extract.items }}.",
            _ANY_ITEM,
        )
    reference = found[0]
    name = reference.name
    inputs = {input_name: spec for input_name, spec in outline.inputs if input_name is not None}
    if name == PAYLOAD:
        return None, _ANY_ITEM  # the webhook body: its shape is checked at run time
    if name in inputs:
        spec = inputs[name]
        if spec is not None and spec.type != "json":
            return (
                f'Input "{name}" is {spec.type}, not a list: a map goes over a json input '
                "or a step output that is a list.",
                _ANY_ITEM,
            )
        return None, _ANY_ITEM
    keys = outline.step_keys
    if name not in keys or keys.index(name) >= position:
        return None, _ANY_ITEM  # unknown or later: the template checks say so
    step = (outline.steps or [])[keys.index(name)][1]
    if step is None:
        return None, _ANY_ITEM
    root = module_for(step).output_schema(step)
    if root is None:
        return (
            f'Step "{name}" outputs text, not a list: give it a JSON answer format with a '
            "list field, and go over that field.",
            _ANY_ITEM,
        )
    node: dict[str, Any] = root
    for segment in reference.path:
        child = _child_schema(node, segment, root)
        if child is None:
            return None, _ANY_ITEM  # the template checks say the field does not exist
        node = child
    alternatives = _alternatives(node, root)
    lists = [alt for alt in alternatives if _is_array(alt)]
    if lists:
        items = lists[0].get("items")
        return None, _Local(schema=items if isinstance(items, dict) else None, root=root)
    if any(_SHAPE_KEYWORDS & alt.keys() for alt in alternatives):
        return (
            f'"{reference.dotted}" is not a list (its schema says {_schema_type(node, root)}); '
            "a map goes over a list.",
            _ANY_ITEM,
        )
    return None, _ANY_ITEM  # a schema that says nothing of its shape: checked at run time


def _is_array(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "array" or (isinstance(kind, list) and "array" in kind)


def _schema_type(node: dict[str, Any], root: dict[str, Any]) -> str:
    kinds = [str(alt.get("type")) for alt in _alternatives(node, root) if "type" in alt]
    return " or ".join(dict.fromkeys(kinds)) or "another shape"


def _path_problem(
    reference: Reference, schema: dict[str, Any], root: dict[str, Any] | None = None
) -> str | None:
    if root is None:
        root = schema
    node: dict[str, Any] = schema
    for depth, segment in enumerate(reference.path):
        child = _child_schema(node, segment, root)
        if child is None:
            parent = ".".join((reference.name, *reference.path[:depth]))
            fields = _field_names(node, root)
            hint = _did_you_mean(segment, fields) or (
                f" Its fields: {', '.join(fields)}." if fields else ""
            )
            return f'"{reference.dotted}" does not exist: {parent} has no field "{segment}".{hint}'
        node = child
    return None


def _child_schema(
    node: dict[str, Any], segment: str, root: dict[str, Any]
) -> dict[str, Any] | None:
    """The schema at `segment` below `node`, or None when the schema rules it out."""
    children: list[dict[str, Any]] = []
    for alternative in _alternatives(node, root):
        properties = alternative.get("properties")
        items = alternative.get("items")
        if isinstance(properties, dict) and segment in properties:
            child = properties[segment]
            children.append(child if isinstance(child, dict) else {})
        elif segment.isdigit() and isinstance(items, dict):
            children.append(items)
        elif not (_SHAPE_KEYWORDS & alternative.keys()):
            children.append({})  # a schema that says nothing about its shape allows any field
    if not children:
        return None
    return children[0] if len(children) == 1 else {"anyOf": children}


def _field_names(node: dict[str, Any], root: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for alternative in _alternatives(node, root):
        properties = alternative.get("properties")
        if isinstance(properties, dict):
            names += properties
    return list(dict.fromkeys(names))


_SHAPE_KEYWORDS = frozenset({"type", "properties", "items", "anyOf", "oneOf", "enum", "const"})


def _alternatives(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas `node` may stand for: $refs resolved, anyOf/oneOf branches expanded.

    Each schema is visited once, so a recursive schema cannot loop forever.
    """
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    pending = [node]
    while pending:
        current = _resolve(pending.pop(0), root)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        for keyword in ("anyOf", "oneOf"):
            branches = current.get(keyword)
            if isinstance(branches, list):
                pending += [branch for branch in branches if isinstance(branch, dict)]
    return found


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    # Only local references ("#/$defs/address"), the kind OpenAI accepts.
    for _ in range(32):  # a reference cycle must not loop forever
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node
        target: object = root
        for part in filter(None, ref[1:].split("/")):
            target = _item(target, part.replace("~1", "/").replace("~0", "~"))
        if not isinstance(target, dict):
            return node
        node = target
    return node


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(f'"{candidate}"' for candidate in close) + "?"
