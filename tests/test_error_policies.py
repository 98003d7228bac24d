"""Error policies on every step: `retries` for failures that may pass, then
`on_error`: fail, continue with a `fallback`, or go to a later step (an error
branch reading `{{ step.error }}`); an llm step's `fallback_model`. Against the
fake OpenAI server and a local HTTP API (tests/test_http_step.py's Target)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import Personas
from tests.factories import published_workflow, steps_of
from tests.test_http_step import Target
from workflows import services
from workflows.llm.pricing import cost_nanousd
from workflows.models import Run, StepRun


@pytest.fixture
def allowed(settings) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    """A local HTTP API, allowed by the operator."""
    server = Target()
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _run(personas: Personas, definition: dict, inputs: dict | None = None) -> Run:
    workflow = published_workflow(personas.workspace, definition)
    run = services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs=inputs or {})
    run.refresh_from_db()
    return run


def _flaky(key: str, prompt: str, **policy: object) -> dict:
    return {"key": key, "type": "llm", "prompt": prompt, "max_tokens": 20, **policy}


def test_retries_then_continue_with_a_rendered_fallback(
    engine_in_process: None, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    run = _run(
        personas,
        {
            "name": "Fallback",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [
                _flaky(
                    "ask",
                    "About {{ topic }} [[fake:500 times=10]]",
                    retries=2,
                    on_error="continue",
                    fallback="No answer about {{ topic }} today.",
                ),
                {"key": "after", "type": "template", "template": "Then: {{ ask }}"},
            ],
        },
        {"topic": "otters"},
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == "Then: No answer about otters today."
    ask = steps_of(run)["ask"]
    assert ask.status == StepRun.Status.FAILED and ask.attempts == 3
    assert fake_calls("About otters") == 3
    assert "OpenAI error 500" in ask.error and "(after 3 attempts)" in ask.error
    assert ask.output == "No answer about otters today."
    assert ask.state == {"on_error": "continue"}


def test_a_json_fallback_is_used_as_it_is(engine_in_process: None, personas: Personas) -> None:
    run = _run(
        personas,
        {
            "name": "JSON fallback",
            "steps": [
                _flaky(
                    "ask",
                    "Hi [[fake:500 times=10]]",
                    retries=0,
                    on_error="continue",
                    fallback={"label": "unknown", "score": 0},
                ),
            ],
        },
    )
    assert run.status == Run.Status.SUCCEEDED and run.output == {"label": "unknown", "score": 0}


def test_an_error_branch_reads_the_error_and_skips_the_steps_between(
    engine_in_process: None, personas: Personas
) -> None:
    run = _run(
        personas,
        {
            "name": "Branch",
            "steps": [
                _flaky("ask", "Hi [[fake:insufficient_quota]]", on_error="handle"),
                {"key": "happy", "type": "template", "template": "ok: {{ ask }}", "next": "end"},
                {
                    "key": "handle",
                    "type": "template",
                    "template": (
                        "{{ ask.error.kind }} {{ ask.error.status }}: {{ ask.error.message }}"
                    ),
                },
            ],
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output.startswith("refused 429: OpenAI refused the request (429)")
    steps = steps_of(run)
    assert steps["happy"].status == StepRun.Status.SKIPPED
    assert steps["ask"].state == {"on_error": "goto", "to": "handle"}
    assert steps["ask"].output["error"]["kind"] == "refused"
    # A failure that cannot pass is not retried.
    assert steps["ask"].attempts == 1


def test_the_fallback_model_answers_once_the_retries_are_spent(
    engine_in_process: None, personas: Personas, settings, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_MODELS = {
        **settings.LLM_MODELS,
        "gpt-4.1-nano": {
            "input_nanousd": 100,
            "cached_input_nanousd": 25,
            "output_nanousd": 400,
            "context_tokens": 1_047_576,
            "max_output_tokens": 32_768,
        },
    }
    run = _run(
        personas,
        {
            "name": "Fallback model",
            "steps": [
                _flaky(
                    "ask",
                    "Summarize [[fake:429 times=2 retry_after=0]]",
                    retries=1,
                    fallback_model="gpt-4.1-nano",
                )
            ],
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    ask = steps_of(run)["ask"]
    assert ask.model == "gpt-4.1-nano" and ask.attempts == 3
    assert fake_calls("Summarize") == 3
    assert ask.cost_nanousd == cost_nanousd(
        model="gpt-4.1-nano",
        prompt_tokens=ask.tokens_in,
        cached_tokens=ask.tokens_cached,
        completion_tokens=ask.tokens_out,
    )


def test_an_http_step_retries_a_503_honouring_retry_after_then_succeeds(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    answers = iter([(503, {"Retry-After": "0"}, b"busy"), (200, {}, b"fine")])
    original = allowed.routes

    class Flaky(dict):
        def get(self, path, default=None):  # type: ignore[no-untyped-def,override]
            return next(answers) if path == "/flaky" else original.get(path, default)

    allowed.routes = Flaky()
    run = _run(
        personas,
        {
            "name": "Flaky API",
            "steps": [
                {
                    "key": "fetch",
                    "type": "http",
                    "method": "GET",
                    "url": allowed.url("/flaky"),
                    "retries": 2,
                }
            ],
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    fetch = steps_of(run)["fetch"]
    assert fetch.attempts == 2 and fetch.output["status"] == 200
    assert len([r for r in allowed.requests if r["path"] == "/flaky"]) == 2


def test_without_a_policy_a_failure_fails_the_run_as_before(
    engine_in_process: None, personas: Personas, allowed: Target
) -> None:
    run = _run(
        personas,
        {
            "name": "Plain",
            "steps": [
                {"key": "fetch", "type": "http", "method": "GET", "url": allowed.url("/fail")}
            ],
        },
    )
    assert run.status == Run.Status.FAILED and "HTTP 500" in run.error
    assert steps_of(run)["fetch"].attempts == 1  # no retries unless asked


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        ({"on_error": "nowhere"}, "on_error", 'Unknown step "nowhere"'),
        ({"on_error": "first"}, "on_error", '"first" is an earlier step'),
        ({"on_error": "end"}, "on_error", 'Use "fail" to stop the run'),
        ({"fallback": "x"}, "fallback", 'only when on_error is "continue"'),
        ({"on_error": "continue", "fallback": "{{ nope }}"}, "fallback", 'Unknown variable "nope"'),
        ({"retries": 11}, "retries", "less than or equal to 10"),
    ],
)
def test_policies_are_validated(policy: dict, field: str, message: str) -> None:
    definition = {
        "name": "Checked",
        "steps": [
            {"key": "first", "type": "template", "template": "a"},
            {"key": "second", "type": "template", "template": "b", **policy},
            {"key": "last", "type": "template", "template": "c"},
        ],
    }
    _, issues = services.definition_check(json.loads(json.dumps(definition)))
    assert any(i.field == field and message in i.message for i in issues), issues


def test_the_error_is_readable_only_in_a_step_with_an_error_branch() -> None:
    def check(on_error: str, reference: str) -> list[str]:
        definition = {
            "name": "Reads the error",
            "steps": [
                {"key": "ask", "type": "llm", "prompt": "x", "on_error": on_error},
                {"key": "mid", "type": "template", "template": "m"},
                {"key": "handle", "type": "template", "template": reference},
            ],
        }
        return [i.message for i in services.definition_check(definition)[1]]

    assert check("handle", "{{ ask.error.message }} {{ ask.error.status }}") == []
    assert check("handle", "{{ ask.error.nope }}")
    assert check("fail", "{{ ask.error.message }}")


# --- the editor and the run page ---------------------------------------------------------


def test_the_panel_sets_a_policy_and_the_card_shows_the_error_branch(personas: Personas) -> None:
    from django.urls import reverse

    from tests.factories import client_for

    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "Policies",
            "steps": [
                {"key": "ask", "type": "llm", "prompt": "Hi"},
                {"key": "handle", "type": "template", "template": "Sorry."},
            ],
        },
        user=personas.alice,
    )
    slug = personas.workspace.slug
    save = reverse("workflow_step_save", args=[slug, workflow.id, 0])
    client = client_for(personas.bob)
    page = client.get(reverse("workflow_editor", args=[slug, workflow.id]) + "?panel=step&step=0")
    html = page.content.decode()
    assert 'id="error-policy"' in html and 'name="on_error"' in html
    assert 'name="fallback_model"' in html

    headers = {"HTTP_HX_REQUEST": "true"}
    client.post(save, {"step_key": "ask", "retries": "3", "on_error": "handle"}, **headers)
    workflow.refresh_from_db()
    step = workflow.definition["steps"][0]
    assert (step["retries"], step["on_error"]) == (3, "handle")
    _, issues = services.definition_check(workflow.definition, workflow=workflow)
    assert issues == []
    page = client.get(reverse("workflow_editor", args=[slug, workflow.id]))
    assert "on error" in page.content.decode()

    # A fallback: JSON when it reads as JSON, else a template (even one starting with "{{").
    client.post(
        save, {"step_key": "ask", "on_error": "continue", "fallback": '{"a": 1}'}, **headers
    )
    workflow.refresh_from_db()
    assert workflow.definition["steps"][0]["fallback"] == {"a": 1}
    client.post(save, {"step_key": "ask", "fallback": "{{ nothing }} <b>"}, **headers)
    workflow.refresh_from_db()
    assert workflow.definition["steps"][0]["fallback"] == "{{ nothing }} <b>"
    client.post(save, {"step_key": "ask", "retries": "many"}, **headers)
    workflow.refresh_from_db()
    _, issues = services.definition_check(workflow.definition)
    assert any(i.field == "retries" for i in issues)
    # Back to the defaults: the fields leave the definition.
    client.post(
        save, {"step_key": "ask", "retries": "", "on_error": "fail", "fallback": ""}, **headers
    )
    workflow.refresh_from_db()
    assert not {"retries", "on_error", "fallback"} & set(workflow.definition["steps"][0])


def test_the_run_page_says_which_way_a_failed_step_went(
    engine_in_process: None, personas: Personas
) -> None:
    from django.urls import reverse

    from tests.factories import client_for

    payload = "<img src=x onerror=alert(1)>"
    run = _run(
        personas,
        {
            "name": "Ways",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [
                _flaky(
                    "ask",
                    "Hi [[fake:500 times=9]]",
                    retries=1,
                    on_error="continue",
                    fallback="fallback for {{ topic }}",
                ),
                _flaky("again", "Bye [[fake:insufficient_quota]]", on_error="handle"),
                {"key": "skipped", "type": "template", "template": "x"},
                {"key": "handle", "type": "template", "template": "{{ again.error.kind }}"},
            ],
        },
        {"topic": payload},
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    html = (
        client_for(personas.vera)
        .get(reverse("run_detail", args=[personas.workspace.slug, run.id]))
        .content.decode()
    )
    assert 'id="step-ask-path"' in html and "continued with its fallback" in html
    assert 'id="step-again-path"' in html and 'href="#step-handle"' in html
    assert "fallback for &lt;img src=x onerror=alert(1)&gt;" in html and payload not in html
