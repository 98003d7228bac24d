"""Values PostgreSQL's JSON cannot store (the NUL character) or nested past what SQLite's JSON
reads are refused where they come in, with a 422 naming them, instead of a 500 when the run
is written (found walking issue 16 with hostile input, on PostgreSQL)."""

from __future__ import annotations

import json

from django.test import Client

from tests.conftest import Personas
from tests.factories import api_token, hook_path, published_workflow, signed
from workflows.integrations import triggers
from workflows.models import Run


def test_the_api_refuses_a_run_whose_input_holds_a_nul_character(personas: Personas) -> None:
    workflow = published_workflow(personas.workspace)
    api = Client(
        headers={"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    )
    answer = api.post(
        f"/api/v1/workflows/{workflow.id}/runs",
        {"inputs": {"who": "a\x00b", "times": 1}},
        content_type="application/json",
    )
    assert answer.status_code == 422
    assert "NUL character" in answer.json()["details"]["who"]
    assert not Run.objects.exists()


def test_a_webhook_body_holding_a_nul_character_or_nested_too_deep_is_refused(
    client: Client, personas: Personas
) -> None:
    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    for body, why in [
        (json.dumps({"who": "Ada", "note": "a\x00b"}), "NUL character"),
        (json.dumps({"who": "Ada", "deep": json.loads("[" * 100 + "]" * 100)}), "nested"),
    ]:
        answer = client.post(
            hook_path(made.trigger.url()),
            data=body,
            content_type="application/json",
            headers=signed(made.secret, body),
        )
        assert answer.status_code == 422, answer.content
        assert why in answer.json()["error"]
    assert not Run.objects.exists()


def test_a_webhook_body_holding_nan_or_infinity_is_refused(
    client: Client, personas: Personas
) -> None:
    """Python's json reads NaN and Infinity; PostgreSQL's JSON refuses them."""
    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    for body in ['{"who": "Ada", "score": NaN}', '{"who": "Ada", "scores": [1, -Infinity]}']:
        answer = client.post(
            hook_path(made.trigger.url()),
            data=body,
            content_type="application/json",
            headers=signed(made.secret, body),
        )
        assert answer.status_code == 422, answer.content
        assert "NaN or Infinity" in answer.json()["error"]
    assert not Run.objects.exists()


def test_the_api_refuses_a_json_input_holding_nan(personas: Personas) -> None:
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Takes JSON",
            "inputs": [{"name": "data", "type": "json"}],
            "steps": [{"key": "say", "type": "template", "template": "{{ data }}"}],
        },
    )
    api = Client(
        headers={"Authorization": f"Bearer {api_token(personas.workspace, personas.alice)}"}
    )
    answer = api.post(
        f"/api/v1/workflows/{workflow.id}/runs",
        data='{"inputs": {"data": {"a": NaN}}}',
        content_type="application/json",
    )
    assert answer.status_code == 422, answer.content
    assert not Run.objects.exists()
