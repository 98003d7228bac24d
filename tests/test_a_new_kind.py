"""A new step kind is its package plus one line in the registry, and nothing else.

tests/kinds/echo/ is a kind that exists only here. The fixture adds it to
`KINDS` (the one line a real kind adds to workflows/steps/__init__.py) and
rebuilds what Python built from the registry at import (the `Step` union in
the definition model); then the contract holds, the editor offers, shows and
saves it, validation knows it, and a run executes it and the run page shows it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import reverse
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from tests import test_step_kinds_contract as contract
from tests.conftest import Personas
from tests.factories import client_for, run_started
from tests.kinds import echo
from tests.test_editor import url
from workflows import services
from workflows import steps as registry
from workflows.builder import definition
from workflows.builder.definition import Definition
from workflows.models import Run
from workflows.runtime import engine


def _use_step_union(union: object) -> None:
    Definition.model_fields["steps"] = FieldInfo.from_annotation(list[union])  # type: ignore[valid-type]
    Definition.model_rebuild(force=True)
    definition._STEP = TypeAdapter(union)


@pytest.fixture
def echo_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry, "KINDS", (*registry.KINDS, echo))
    monkeypatch.setitem(registry.STEP_TYPES, echo.TYPE, echo)
    _use_step_union(registry.step_union(registry.KINDS))
    try:
        yield
    finally:
        _use_step_union(registry.Step)


ECHO = {
    "name": "Echoes",
    "inputs": [{"name": "who", "type": "text"}],
    "steps": [{"key": "say", "type": "echo", "text": "Hi {{ who }}"}],
}


def test_it_meets_the_contract(echo_registered: None, personas: Personas) -> None:
    contract.test_each_kind_has_every_part(echo)
    contract.test_its_config_is_a_step_tagged_by_its_type(echo)
    contract.test_its_panel_template_is_in_its_package(echo)
    contract.test_a_new_step_parses_and_the_editor_can_read_it(personas, echo)
    contract.test_a_post_without_its_fields_changes_nothing(echo)
    contract.test_the_add_menu_lists_every_kind_in_registry_order(personas)
    contract.test_its_panel_renders_for_an_editor_and_a_viewer(personas, echo)


def test_the_editor_adds_shows_and_saves_it(echo_registered: None, personas: Personas) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={"name": "Two", "steps": [{"key": "a", "type": "template", "template": "x"}]},
        user=personas.alice,
    )
    client = client_for(personas.alice)
    response = client.post(url(personas, "workflow_step_add", workflow), {"kind": "echo"})
    assert response.status_code == 302
    workflow.refresh_from_db()
    step = workflow.definition["steps"][1]
    assert step["type"] == "echo"

    panel = client.get(url(personas, "workflow_editor", workflow) + "?panel=step&step=1")
    html = panel.content.decode()
    assert 'name="text"' in html and "Text to echo" in html
    assert "Say something to echo." in html  # its check, shown in its field's slot

    revision = workflow.draft_revision
    saved = client.post(
        url(personas, "workflow_step_save", workflow, 1),
        {"step_key": step["key"], "text": "Hello", "rev-text": str(revision)},
        headers={"HX-Request": "true"},
    )
    assert saved.status_code == 200
    workflow.refresh_from_db()
    assert workflow.definition["steps"][1]["text"] == "Hello"
    # Who changed it is recorded under the kind's own label.
    assert "steps.{}.text".format(step["key"]) in workflow.draft_changes


def test_validation_knows_it(echo_registered: None) -> None:
    assert services.definition_check(ECHO)[1] == []
    empty = {"name": "x", "steps": [{"key": "say", "type": "echo", "text": " "}]}
    _, issues = services.definition_check(empty)
    assert [(issue.step, issue.field) for issue in issues] == [("say", "text")]
    _, issues = services.definition_check(
        {"name": "x", "steps": [{"key": "say", "type": "echo", "txt": "typo"}]}
    )
    assert issues


def test_a_run_executes_it_and_the_run_page_shows_it(
    echo_registered: None, personas: Personas
) -> None:
    run = run_started(personas.workspace, ECHO, {"who": "there"})
    engine.run_execute(run.id)  # in-process: an echo calls no model
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.output == "Hi there"
    page = client_for(personas.alice).get(
        reverse("run_detail", args=[personas.workspace.slug, run.id])
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert ">Echo<" in html and "Hi there" in html


def test_it_is_gone_again_after_the_test(personas: Personas) -> None:
    assert echo not in registry.KINDS and "echo" not in registry.STEP_TYPES
    _, issues = services.definition_check(ECHO)
    assert [issue.field for issue in issues] == ["type"]
