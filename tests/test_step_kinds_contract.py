"""Every step kind in the registry has every part, and the rest of the product derives from it.

A kind is a package, workflows/steps/<kind>/, listed once in
workflows/steps/__init__.py (KINDS). These tests walk that list: a new kind
that lacks a part fails here, not in production.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest
from django.conf import settings
from django.http import QueryDict
from django.template.loader import get_template
from pydantic import BaseModel

from tests.conftest import Personas
from tests.factories import client_for
from tests.test_editor import url
from workflows import services
from workflows import steps as registry
from workflows.builder import editing
from workflows.builder.definition import Definition
from workflows.pages.editor import slots_for, step_fields
from workflows.pages.views import STEP_FIELDS
from workflows.steps import KINDS, STEP_TYPES, Step
from workflows.steps.base import StepBase
from workflows.steps.form import Parsed

KIND_IDS = [kind.TYPE for kind in KINDS]
PARTS = {
    # what a definition check and the engine need
    "TYPE": str,
    "DEFAULTS": dict,
    "templates": callable,
    "targets": callable,
    "output_schema": callable,
    "next_key": callable,
    "check": callable,
    "execute": callable,
    # what the editor needs
    "LABEL": str,
    "HINT": str,
    "BLURB": str,
    "EMPTY_SUMMARY": str,
    "FIELD_LABELS": dict,
    "new_step": callable,
    "summary": callable,
    "branches": callable,
    "json_properties": callable,
    "fields": callable,
    "template_values": callable,
    "rename": callable,
    "from_post": callable,
    "apply_action": callable,
    "panel_context": callable,
    "PANEL": str,
    "SHORT_LABEL": str,
    "TONE": str,
    "LIST_FIELDS": dict,
    # what conflict detection needs: which field a posted name or a button writes, and back
    "posted_path": callable,
    "form_name": callable,
    "action_path": callable,
}


def new_step(kind: object) -> dict:
    return kind.new_step(key="fresh", previous=None, previous_json={}, following=None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_each_kind_has_every_part(kind: object) -> None:
    parts = dict(PARTS)
    if getattr(kind, "WAITS", False):
        # A step that may park its run begins and resumes instead of executing.
        del parts["execute"]
        parts.update(begin=callable, resume=callable)
    missing = [name for name in parts if not hasattr(kind, name)]
    assert missing == [], f"{kind.__name__} lacks {missing}"  # type: ignore[attr-defined]
    for name, expected in parts.items():
        value = getattr(kind, name)
        if expected is callable:
            assert callable(value), f"{kind.__name__}.{name} is not a function"  # type: ignore[attr-defined]
        else:
            assert isinstance(value, expected), f"{kind.__name__}.{name} is not a {expected}"  # type: ignore[attr-defined]
    assert kind.LABEL and kind.HINT and kind.BLURB  # type: ignore[attr-defined]
    if getattr(kind, "PAID", False):
        assert callable(getattr(kind, "prepare", None)), "a paid kind prices its call first"


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_its_config_is_a_step_tagged_by_its_type(kind: object) -> None:
    config = kind.Config  # type: ignore[attr-defined]
    assert isinstance(config, type) and issubclass(config, StepBase)
    assert get_args(config.model_fields["type"].annotation) == (kind.TYPE,)  # type: ignore[attr-defined]
    assert config.model_fields["type"].default == kind.TYPE  # type: ignore[attr-defined]
    for name, value in kind.DEFAULTS.items():  # type: ignore[attr-defined]
        assert config.model_fields[name].default == value, f"{name}: the model's default differs"


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_its_panel_template_is_in_its_package(kind: object) -> None:
    package = Path(kind.__file__).parent  # type: ignore[attr-defined]
    for part in ("edit", "readonly"):
        template = get_template(f"{kind.PANEL}#{part}")  # type: ignore[attr-defined]
        assert Path(template.origin.name).is_relative_to(package / "templates")


def test_the_step_union_and_the_lookup_are_the_registry() -> None:
    union = get_args(get_args(Step)[0])
    assert list(union) == [kind.Config for kind in KINDS]
    assert list(STEP_TYPES) == KIND_IDS
    assert len(set(KIND_IDS)) == len(KIND_IDS), "two kinds share a type"


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_a_new_step_parses_and_the_editor_can_read_it(personas: Personas, kind: object) -> None:
    step = new_step(kind)
    assert step["type"] == kind.TYPE and step["key"] == "fresh"  # type: ignore[attr-defined]
    parsed = Definition.model_validate({"name": "x", "steps": [step]}).steps[0]
    assert isinstance(parsed, kind.Config)  # type: ignore[attr-defined]
    assert isinstance(kind.summary(step), str)  # type: ignore[attr-defined]
    assert all(len(branch) == 3 for branch in kind.branches(step))  # type: ignore[attr-defined]
    assert isinstance(kind.json_properties(step), dict)  # type: ignore[attr-defined]
    fields = step_fields(step)
    assert set(kind.template_values(step)) <= set(fields)  # type: ignore[attr-defined]
    assert isinstance(kind.templates(parsed), list)  # type: ignore[attr-defined]
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": f"Panel of {step['type']}",
            "steps": [{"key": "a", "type": "template", "template": "x"}],
        },
        user=personas.alice,
    )
    context = kind.panel_context(step, slots_for(fields, []), workflow=workflow)  # type: ignore[attr-defined]
    assert isinstance(context, dict)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_a_post_without_its_fields_changes_nothing(kind: object) -> None:
    step = new_step(kind)
    copy = json.loads(json.dumps(step))
    parsed = Parsed(copy)
    kind.from_post(copy, step, QueryDict(""), parsed)  # type: ignore[attr-defined]
    assert parsed.errors == {} and copy == step
    assert kind.apply_action(copy, "refresh", QueryDict(""), previous=None, errors={}) == step  # type: ignore[attr-defined]


def test_the_add_menu_lists_every_kind_in_registry_order(personas: Personas) -> None:
    definition, _ = editing.step_insert({"name": "Menu", "steps": []}, position=0, kind="template")
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=definition, user=personas.alice
    )
    html = (
        client_for(personas.alice).get(url(personas, "workflow_editor", workflow)).content.decode()
    )
    for kind in registry.KINDS:  # read now: tests/test_a_new_kind.py registers one more
        assert f'name="kind" value="{kind.TYPE}"' in html
        assert kind.LABEL in html and kind.HINT in html
    positions = [html.index(f'name="kind" value="{kind.TYPE}"') for kind in registry.KINDS]
    assert positions == sorted(positions)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_its_panel_renders_for_an_editor_and_a_viewer(personas: Personas, kind: object) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "One kind",
            "steps": [{"key": "a", "type": "template", "template": "x"}],
        },
        user=personas.alice,
    )
    # A new step as the editor adds it: an empty prompt is a problem shown, not a refusal.
    definition, index = editing.step_insert(workflow.definition, position=1, kind=kind.TYPE)  # type: ignore[attr-defined]
    services.workflow_save_draft(workflow=workflow, definition=definition, user=personas.alice)
    address = url(personas, "workflow_editor", workflow) + f"?panel=step&step={index}"
    for user in (personas.alice, personas.vera):
        response = client_for(user).get(address)
        assert response.status_code == 200
        html = response.content.decode()
        assert kind.BLURB in html and kind.LABEL in html  # type: ignore[attr-defined]
        if user == personas.alice:
            _its_autosaved_fields_are_known_to_conflict_detection(kind, html)


AUTOSAVED = re.compile(
    r"<(?:input|textarea|select)\b[^>]*\bname=\"([^\"]+)\"[^>]*\bdata-autosave-field"
)


def _its_autosaved_fields_are_known_to_conflict_detection(kind: object, html: str) -> None:
    """Each field its panel autosaves writes a path the kind names (so a write is checked for
    conflicts), and a change to that path refreshes that field (or the whole panel)."""
    # Fields every step has (its names, its error policy) are the editor's, not its kind's.
    names = set(AUTOSAVED.findall(html)) - set(STEP_FIELDS)
    assert names, "its panel autosaves no field of its own"
    for name in names:
        path = kind.posted_path(name)  # type: ignore[attr-defined]
        assert path is not None, f"{name} is saved, but posted_path does not know it"
        assert kind.form_name(path) in (name, None), f"{path} refreshes another field than {name}"  # type: ignore[attr-defined]


def test_a_kind_not_in_the_registry_is_refused_by_validation_and_the_editor() -> None:
    with pytest.raises(editing.EditError):
        editing.step_insert({"steps": []}, position=0, kind="email")
    _, issues = services.definition_check({"name": "x", "steps": [{"key": "a", "type": "email"}]})
    assert [issue.field for issue in issues] == ["type"]
    assert "email" in issues[0].message


def test_every_config_model_is_pydantic() -> None:
    assert all(issubclass(kind.Config, BaseModel) for kind in KINDS)


ROOT = Path(settings.BASE_DIR)


def product_files() -> list[Path]:
    return [
        *(
            path
            for package in ("config", "accounts", "workflows")
            for path in (ROOT / package).rglob("*.py")
        ),
        *(ROOT / "workflows").rglob("*.html"),
        *(ROOT / "templates").rglob("*.html"),
        *(ROOT / "static" / "js").glob("*.js"),
    ]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_no_code_outside_its_package_names_it(kind: object) -> None:
    """Nothing but its package (and the registry's one line) imports it or tests for its type;
    the starter workflows are content, written with the kinds like any workflow."""
    package = Path(kind.__file__).parent  # type: ignore[attr-defined]
    name = kind.TYPE  # type: ignore[attr-defined]
    # An ASGI scope ("type": "http", "asgi": {...}, as the MCP endpoint builds one) is not the
    # http kind.
    naming = re.compile(
        rf"""(\btype\s*==\s*|"type":\s*)["']{name}["'](?!,\s*["']asgi["'])"""
        rf"|workflows\.steps\.{name}\b|from workflows\.steps import [^\n]*\b{name}\b"
    )
    allowed = {package.parent / "__init__.py", ROOT / "workflows" / "builder" / "starters.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in product_files()
        if not path.is_relative_to(package)
        and path not in allowed
        and "migrations" not in path.parts
        and naming.search(path.read_text())
    ]
    assert offenders == []
