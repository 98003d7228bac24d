"""An answer written live: the run page under uvicorn (the async events view and
its hub, as deployed) shows an LLM step's answer, and a map item's in its row,
growing while it runs, as text, with a real worker and the fake server writing
slowly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.test import Client
from playwright.sync_api import expect

from tests.browser.test_runs import published_chain
from tests.factories import published_workflow
from tests.servers import AsgiServer, WorkerProcess
from workflows import services
from workflows.models import Run, StepItem, StepRun

HOSTILE = "<img src=x onerror=alert(1)>"
REPLY = HOSTILE + " and then" + " some more words" * 10


@pytest.fixture(scope="module")
def web(worker_env: dict[str, str]) -> Iterator[AsgiServer]:
    # Plain http on 127.0.0.1: the session cookie without Secure.
    server = AsgiServer({**worker_env, "SECURE_COOKIES": "False"})
    yield server
    server.stop()


def test_the_answer_appears_on_the_run_page_while_it_is_written(
    page, web: AsgiServer, worker: WorkerProcess, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_chain(
        personas.workspace,
        [f"[[fake:reply={REPLY}]] [[fake:token_ms=150]] {{{{ topic }}}}", "Shorten {{ s1 }}"],
    )
    # Signed in through a session the test makes (uvicorn runs the production
    # password hashers; the tests' users have the tests' fast hashes).
    session = Client()
    session.force_login(personas.alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": session.cookies["sessionid"].value, "url": web.url}]
    )
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"topic": "x"}, user=personas.alice
    )
    page.goto(f"{web.url}/w/{personas.workspace.slug}/runs/{run.id}/")
    live = page.locator("#step-s1-live")
    # The hostile markup arrives first, as text.
    expect(live).to_contain_text(HOSTILE, timeout=15_000)
    seen = []
    deadline = time.monotonic() + 15
    while len(seen) < 3:
        assert time.monotonic() < deadline, f"the answer did not grow on the page: {seen}"
        text = live.inner_text() if live.count() else ""
        running = StepRun.objects.get(run=run, key="s1").status == StepRun.Status.RUNNING
        if text and running and text not in seen:
            seen.append(text)
        time.sleep(0.1)
    # Three ever longer prefixes of the answer, each shown while the step was still running.
    assert all(REPLY.startswith(text.strip()) for text in seen), seen
    assert len(seen[0]) < len(seen[1]) < len(seen[2]) < len(REPLY)
    assert page.locator("#run-live img").count() == 0

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#step-s1 .step-output .output")).to_have_text(REPLY)
    expect(page.locator("#step-s2 .badge-succeeded")).to_be_visible()
    assert page.locator("#run-live img").count() == 0


def test_a_test_run_s_answer_is_written_live_on_its_card_in_the_editor(
    page, web: AsgiServer, worker: WorkerProcess, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = services.workflow_create(
        workspace=personas.workspace,
        definition={
            "name": "Live card",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [
                {
                    "key": "answer",
                    "type": "llm",
                    "prompt": f"[[fake:reply={REPLY}]] [[fake:token_ms=150]] {{{{ topic }}}}",
                    "max_tokens": 100,
                }
            ],
        },
        user=personas.alice,
    )
    session = Client()
    session.force_login(personas.alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": session.cookies["sessionid"].value, "url": web.url}]
    )
    page.goto(f"{web.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/")
    page.get_by_role("link", name="Test run").click()
    page.get_by_label("topic").fill("otters")
    page.get_by_role("button", name="Run", exact=True).click()
    card = page.locator("#card-run-0 .card-run-output")
    expect(card).to_contain_text(HOSTILE, timeout=15_000)
    seen = []
    deadline = time.monotonic() + 15
    while len(seen) < 3:
        assert time.monotonic() < deadline, f"the card's answer did not grow: {seen}"
        text = card.inner_text() if card.count() else ""
        run = Run.objects.filter(workflow=workflow).first()
        running = run is not None and run.steps.filter(status=StepRun.Status.RUNNING).exists()
        if text and running and text not in seen:
            seen.append(text)
        time.sleep(0.1)
    assert all(REPLY.startswith(text.strip()) for text in seen), seen
    assert len(seen[0]) < len(seen[1]) < len(seen[2])
    expect(page.locator("#card-run-0 .badge")).to_have_text("done", timeout=30_000)
    expect(page.locator("#card-run-0 .card-run-output")).to_contain_text("some more words")
    assert page.locator("#editor img").count() == 0


def test_a_map_item_s_answer_appears_in_its_row_while_it_is_written(
    page, web: AsgiServer, worker: WorkerProcess, personas
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_workflow(
        personas.workspace,
        {
            "name": "Live items",
            "inputs": [{"name": "things", "type": "json"}],
            "steps": [
                {
                    "key": "each",
                    "type": "map",
                    "over": "{{ things }}",
                    "concurrency": 2,
                    "prompt": f"[[fake:reply={REPLY}]] [[fake:token_ms=150]] {{{{ item }}}}",
                    "max_tokens": 100,
                }
            ],
        },
    )
    session = Client()
    session.force_login(personas.alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": session.cookies["sessionid"].value, "url": web.url}]
    )
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"things": ["a", "b"]}
    )
    page.goto(f"{web.url}/w/{personas.workspace.slug}/runs/{run.id}/")
    live = page.locator("#step-each-item-1-live")
    expect(live).to_contain_text(HOSTILE, timeout=15_000)
    seen = []
    deadline = time.monotonic() + 15
    while len(seen) < 3:
        assert time.monotonic() < deadline, f"the item's answer did not grow on the page: {seen}"
        text = live.inner_text() if live.count() else ""
        item = StepItem.objects.get(run=run, step_key="each", index=1)
        if text and item.status == StepItem.Status.RUNNING and text not in seen:
            seen.append(text)
        time.sleep(0.1)
    # Three ever longer prefixes of the item's answer, shown while it was still running.
    assert all(REPLY.startswith(text.strip()) for text in seen), seen
    assert len(seen[0]) < len(seen[1]) < len(seen[2]) < len(REPLY)
    assert page.locator("#run-live img").count() == 0

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    for index in (0, 1):
        row = page.locator(f"#step-each-item-{index}")
        expect(row.locator(".badge-succeeded")).to_be_visible()
        expect(row).to_contain_text(REPLY)
    assert page.locator("#step-each-item-1-live").count() == 0
    assert page.locator("#run-live img").count() == 0
