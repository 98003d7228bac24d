"""The runs pages: the list (filters, pagination), the
detail (timeline, steps, polling) and the actions."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import Personas
from tests.factories import chain, run_row, workflow_with_versions
from tests.polling import wait_for_run
from tests.servers import WorkerProcess
from workflows import services
from workflows.llm.pricing import format_usd
from workflows.models import Run, StepRun, Workflow, WorkflowVersion

CHAIN = {
    "name": "Chain",
    "inputs": [{"name": "topic", "type": "text"}],
    "steps": [
        {
            "key": "s1",
            "title": "Facts",
            "type": "llm",
            "system": "You list facts.",
            "prompt": "Facts about {{ topic }}.",
        },
        {"key": "s2", "type": "llm", "prompt": "Summarise:\n{{ s1 }}"},
    ],
}


# What the run detail's poll sends: htmx asks for #run-live.
POLL = {"HX-Request": "true", "HX-Target": "run-live"}


def list_url(personas: Personas) -> str:
    return reverse("run_list", args=[personas.workspace.slug])


def detail_url(run: Run) -> str:
    return reverse("run_detail", args=[run.workspace.slug, run.id])


def action_url(name: str, run: Run) -> str:
    return reverse(name, args=[run.workspace.slug, run.id])


# The list ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_shows_each_run_with_its_status_version_trigger_tokens_and_cost(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(
        workflow,
        version,
        status=Run.Status.FAILED,
        trigger=Run.Trigger.WEBHOOK,
        tokens_in=1200,
        tokens_out=34,
        cost_nanousd=534_400,
    )
    draft = run_row(workflow, None, status=Run.Status.SUCCEEDED)
    client.force_login(personas.bob)
    page = client.get(list_url(personas)).content.decode()
    assert f'href="{detail_url(run)}"' in page and f'href="{detail_url(draft)}"' in page
    assert 'class="badge badge-failed"' in page
    assert "Webhook" in page
    assert "v1" in page and ">Draft<" in page
    assert "1,234" in page  # tokens in + out
    assert "$0.000534" in page
    assert "3.0 s" in page


@pytest.mark.django_db
def test_the_list_shows_only_this_workspaces_runs(client: Client, personas: Personas) -> None:
    mine, version = workflow_with_versions(personas.workspace, CHAIN)
    theirs, their_version = workflow_with_versions(personas.other_workspace, CHAIN)
    run_row(mine, version)
    other = run_row(theirs, their_version)
    client.force_login(personas.alice)
    page = client.get(list_url(personas)).content.decode()
    assert f"#{other.id}<" not in page
    assert "1 run" in page


@pytest.mark.django_db
def test_it_filters_by_status_trigger_workflow_and_version(
    client: Client, personas: Personas
) -> None:
    a, a_v2 = workflow_with_versions(personas.workspace, CHAIN, versions=2)
    a_v1 = a.versions.get(number=1)
    b, b_v1 = workflow_with_versions(personas.workspace, {**CHAIN, "name": "Other"})
    failed = run_row(a, a_v1, status=Run.Status.FAILED)
    api = run_row(a, a_v2, trigger=Run.Trigger.API)
    draft = run_row(a, None)
    other = run_row(b, b_v1)
    client.force_login(personas.alice)

    def shown(query: str) -> set[int]:
        response = client.get(list_url(personas) + query)
        assert response.status_code == 200
        return {run.id for run in response.context["page"].object_list}

    assert shown("") == {failed.id, api.id, draft.id, other.id}
    assert shown("?status=failed") == {failed.id}
    assert shown("?trigger=api") == {api.id}
    assert shown(f"?workflow={b.id}") == {other.id}
    assert shown("?version=draft") == {draft.id}
    assert shown("?version=2") == {api.id}
    assert shown(f"?workflow={a.id}&version=1") == {failed.id}
    assert shown(f"?workflow={a.id}&status=succeeded&trigger=manual") == {draft.id}


@pytest.mark.django_db
def test_a_workflow_filter_offers_that_workflows_versions(
    client: Client, personas: Personas
) -> None:
    a, _ = workflow_with_versions(personas.workspace, CHAIN, versions=3)
    workflow_with_versions(personas.workspace, {**CHAIN, "name": "Other"})
    client.force_login(personas.alice)
    form = client.get(list_url(personas) + f"?workflow={a.id}").context["form"]
    assert [value for value, _ in form.fields["version"].choices] == ["", "draft", "1", "2", "3"]
    assert form["workflow"].value() == str(a.id)


@pytest.mark.django_db
def test_unknown_filter_values_are_ignored_not_an_error(client: Client, personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, version)
    client.force_login(personas.alice)
    response = client.get(
        list_url(personas) + "?status=exploded&trigger=x&workflow=abc&version=99&page=zz"
    )
    assert response.status_code == 200
    assert [r.id for r in response.context["page"].object_list] == [run.id]


@pytest.mark.django_db
def test_it_paginates_25_a_page_and_keeps_the_filters_in_the_page_links(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    runs = [run_row(workflow, version, status=Run.Status.FAILED) for _ in range(30)]
    run_row(workflow, version, status=Run.Status.SUCCEEDED)
    client.force_login(personas.alice)

    first = client.get(list_url(personas) + "?status=failed")
    assert len(first.context["page"].object_list) == 25
    assert first.context["page"].object_list[0].id == runs[-1].id  # newest first
    page = first.content.decode()
    assert "Page 1 of 2" in page
    assert 'href="?status=failed&amp;page=2"' in page
    assert "1–25 of 30 runs" in page

    second = client.get(list_url(personas) + "?status=failed&page=2")
    assert {r.id for r in second.context["page"].object_list} == {r.id for r in runs[:5]}
    assert 'href="?status=failed&amp;page=1"' in second.content.decode()


@pytest.mark.django_db
def test_an_htmx_request_gets_the_results_partial_and_a_history_restore_the_page(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run_row(workflow, version)
    client.force_login(personas.alice)

    partial = client.get(
        list_url(personas) + "?status=succeeded",
        headers={"HX-Request": "true", "HX-Target": "run-results"},
    )
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="run-results"')
    assert "<html" not in body
    assert 'hx-swap-oob="true"' in body  # the version choices follow the workflow filter
    assert "HX-Request" in partial["Vary"] and "HX-Target" in partial["Vary"]
    # Another target (a boosted link elsewhere) gets the whole page.
    other = client.get(list_url(personas), headers={"HX-Request": "true", "HX-Target": "main"})
    assert "<html" in other.content.decode()

    restore = client.get(
        list_url(personas),
        headers={
            "HX-Request": "true",
            "HX-Target": "run-results",
            "HX-History-Restore-Request": "true",
        },
    )
    assert "<html" in restore.content.decode()


@pytest.mark.django_db
def test_the_address_pushed_for_filtered_results_leaves_out_the_filters_left_at_any(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    htmx = {"HX-Request": "true", "HX-Target": "run-results"}
    filtered = client.get(
        list_url(personas) + "?status=failed&trigger=&workflow=&version=", headers=htmx
    )
    assert filtered["HX-Push-Url"] == list_url(personas) + "?status=failed"
    every = client.get(list_url(personas) + "?status=&trigger=", headers=htmx)
    assert every["HX-Push-Url"] == list_url(personas)


@pytest.mark.django_db
def test_an_empty_workspace_explains_where_runs_come_from(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.alice)
    page = client.get(list_url(personas)).content.decode()
    assert "No runs yet" in page


def queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def of_workflows(sql: list[str]) -> list[str]:
    """The queries of the runs pages themselves (the header's own are counted in the total)."""
    return [q for q in sql if '"workflows_' in q]


@pytest.mark.django_db
def test_the_list_takes_the_same_queries_for_3_runs_or_60(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    other, other_version = workflow_with_versions(personas.workspace, {**CHAIN, "name": "Other"})
    for _ in range(3):
        run_row(workflow, version)
    client.force_login(personas.alice)
    few = queries(client, list_url(personas))
    for i in range(57):
        run_row(other if i % 2 else workflow, other_version if i % 2 else None)
    many = queries(client, list_url(personas) + "?page=2&status=succeeded")
    assert len(many) == len(few)
    # workflows (for the filter), version numbers, the
    # count, the page's rows with their workflow and version
    assert len(of_workflows(many)) == 4


# The detail ----------------------------------------------------------------------


def recorded_run(workflow: Workflow, version: WorkflowVersion, **fields: object) -> Run:
    """A finished two-step run with its StepRuns, as the engine records them."""
    start = timezone.now() - timedelta(seconds=5)
    run = run_row(
        workflow,
        version,
        started_at=start,
        finished_at=start + timedelta(seconds=3),
        tokens_in=30,
        tokens_out=20,
        cost_nanousd=44_000,
        **fields,
    )
    StepRun.objects.create(
        run=run,
        key="s1",
        position=0,
        type="llm",
        status=StepRun.Status.SUCCEEDED,
        messages=[
            {"role": "system", "content": "You list facts."},
            {"role": "user", "content": "Facts about otters."},
        ],
        output={"facts": ["Otters hold hands", "They use tools"]},
        model="gpt-4.1-mini",
        tokens_in=12,
        tokens_cached=0,
        tokens_out=9,
        cost_nanousd=19_200,
        latency_ms=1_000,
        attempts=1,
        started_at=start,
        finished_at=start + timedelta(seconds=1),
    )
    StepRun.objects.create(
        run=run,
        key="s2",
        position=1,
        type="llm",
        status=StepRun.Status.SUCCEEDED,
        messages=[{"role": "user", "content": "Summarise: …"}],
        output="Otters are clever.",
        model="gpt-4.1-mini",
        tokens_in=18,
        tokens_cached=0,
        tokens_out=11,
        cost_nanousd=24_800,
        latency_ms=2_000,
        attempts=2,
        started_at=start + timedelta(seconds=1),
        finished_at=start + timedelta(seconds=3),
    )
    return run


@pytest.mark.django_db
def test_the_detail_shows_each_steps_messages_output_tokens_cost_and_timeline(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = recorded_run(workflow, version, created_by=personas.bob, output="Otters are clever.")
    client.force_login(personas.alice)
    page = client.get(detail_url(run)).content.decode()
    assert f"Run #{run.id}" in page
    assert "by Bob" in page
    assert "$0.000044" in page  # the run's total
    assert "$0.000019" in page and "$0.000025" in page  # each step's cost
    assert "12 in · 0 cached · 9 out" in page
    assert "30 in · 0 cached · 20 out" in page
    assert "System message" in page and "You list facts." in page
    assert "&quot;facts&quot;: [" in page  # JSON output, pretty-printed
    assert "Otters are clever." in page
    assert "Facts" in page and "s2" in page  # a step's title, else its key
    # The timeline: step 1 from 0 for a third of the run, step 2 from a third to the end.
    assert 'x="0.00%" y="3" width="33.33%"' in page
    assert 'x="33.33%" y="3" width="66.67%"' in page
    assert "style=" not in page
    assert "hx-trigger" not in page  # finished: no polling
    assert (
        f'href="{reverse("workflow_editor", args=[personas.workspace.slug, workflow.id])}"' in page
    )


@pytest.mark.django_db
def test_a_failed_run_shows_the_error_and_offers_resume(client: Client, personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = recorded_run(workflow, version, status=Run.Status.FAILED, error="Step “s2” failed: boom")
    run.steps.filter(key="s2").update(
        status=StepRun.Status.FAILED, error="OpenAI error 500 (after 5 attempts)", output=None
    )
    client.force_login(personas.vera)
    page = client.get(detail_url(run)).content.decode()
    assert "This run failed" in page and "Step “s2” failed: boom" in page
    assert "OpenAI error 500 (after 5 attempts)" in page
    assert action_url("run_resume", run) in page
    assert action_url("run_rerun", run) in page
    assert action_url("run_cancel", run) not in page


@pytest.mark.django_db
def test_a_resumed_run_marks_its_reused_steps(client: Client, personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    first = recorded_run(workflow, version, status=Run.Status.FAILED)
    resumed = run_row(workflow, version, resumed_from=first)
    StepRun.objects.create(
        run=resumed,
        key="s1",
        position=0,
        type="llm",
        status=StepRun.Status.SUCCEEDED,
        output="x",
        reused=True,
        started_at=first.started_at,
        finished_at=first.started_at,
    )
    client.force_login(personas.alice)
    page = client.get(detail_url(resumed)).content.decode()
    assert "Reused · not paid again" in page
    assert f'resumes <a href="{detail_url(first)}">run #{first.id}</a>' in page


@pytest.mark.django_db
def test_a_running_run_polls_itself_and_stops_once_finished(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, version, status=Run.Status.RUNNING, finished_at=None)
    StepRun.objects.create(
        run=run,
        key="s1",
        position=0,
        type="llm",
        status=StepRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=1),
        attempts=1,
    )
    client.force_login(personas.alice)

    page = client.get(detail_url(run)).content.decode()
    assert 'hx-trigger="sse:changed, every 10s"' in page
    assert f'sse-connect="/w/{personas.workspace.slug}/runs/{run.id}/events/"' in page
    assert "Waiting for the model’s answer" in page
    assert "Not reached yet." in page  # s2

    polled = client.get(detail_url(run), headers=POLL)
    assert polled.status_code == 200
    assert polled.content.decode().lstrip().startswith('<div id="run-live"')
    assert 'hx-trigger="sse:changed, every 10s"' in polled.content.decode()

    Run.objects.filter(id=run.id).update(status=Run.Status.SUCCEEDED, finished_at=timezone.now())
    done = client.get(detail_url(run), headers=POLL)
    assert done.status_code == 286  # htmx stops polling
    assert "hx-trigger" not in done.content.decode()
    assert 'class="badge badge-succeeded run-status"' in done.content.decode()


@pytest.mark.django_db
def test_the_detail_takes_the_same_queries_for_2_steps_or_40(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = recorded_run(workflow, version, created_by=personas.alice)
    client.force_login(personas.alice)
    few = queries(client, detail_url(run))
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            key=f"x{i}",
            position=i + 2,
            type="template",
            status=StepRun.Status.SUCCEEDED,
            output="ok",
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        for i in range(38)
    )
    many = queries(client, detail_url(run))
    assert len(many) == len(few)
    # the run (with its workflow, version and author in one join), its steps
    assert len(of_workflows(many)) == 2


@pytest.mark.django_db
def test_another_workspaces_run_is_404_even_through_my_workspace(
    client: Client, personas: Personas
) -> None:
    theirs, version = workflow_with_versions(personas.other_workspace, CHAIN)
    run = run_row(theirs, version)
    client.force_login(personas.alice)
    mine = personas.workspace.slug
    assert client.get(reverse("run_detail", args=[mine, run.id])).status_code == 404
    for name in ("run_rerun", "run_resume", "run_cancel"):
        assert client.post(reverse(name, args=[mine, run.id])).status_code == 404
    assert Run.objects.count() == 1


# Access --------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_outsider_gets_404_on_the_list_the_detail_and_every_action(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, version, status=Run.Status.RUNNING, finished_at=None)
    client.force_login(personas.charlie)
    assert client.get(list_url(personas)).status_code == 404
    assert client.get(detail_url(run)).status_code == 404
    for name in ("run_rerun", "run_resume", "run_cancel"):
        assert client.post(action_url(name, run)).status_code == 404
    assert Run.objects.get(id=run.id).status == Run.Status.RUNNING
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client: Client, personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, version)
    for response in (
        client.get(list_url(personas)),
        client.get(detail_url(run)),
        client.post(action_url("run_rerun", run)),
    ):
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_actions_only_accept_a_post_with_a_csrf_token(personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, version, status=Run.Status.FAILED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    for name in ("run_rerun", "run_resume", "run_cancel"):
        response = client.get(action_url(name, run))  # sent to the run's page, nothing done
        assert (response.status_code, response["Location"]) == (
            303,
            f"/w/{personas.workspace.slug}/runs/{run.id}/",
        )
        assert client.post(action_url(name, run)).status_code == 403
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_a_viewer_cannot_cancel_someone_elses_run_and_sees_no_cancel_button(
    client: Client, personas: Personas
) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(
        workflow, version, status=Run.Status.RUNNING, finished_at=None, created_by=personas.alice
    )
    client.force_login(personas.vera)
    assert action_url("run_cancel", run) not in client.get(detail_url(run)).content.decode()
    assert client.post(action_url("run_cancel", run)).status_code == 403
    assert Run.objects.get(id=run.id).status == Run.Status.RUNNING


@pytest.mark.django_db
def test_a_viewer_can_cancel_their_own_run(client: Client, personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(
        workflow,
        version,
        status=Run.Status.QUEUED,
        started_at=None,
        finished_at=None,
        created_by=personas.vera,
    )
    client.force_login(personas.vera)
    assert action_url("run_cancel", run) in client.get(detail_url(run)).content.decode()
    response = client.post(action_url("run_cancel", run))
    assert response.status_code == 302
    assert Run.objects.get(id=run.id).status == Run.Status.CANCELED


@pytest.mark.django_db
def test_resume_is_refused_for_a_run_that_did_not_fail(client: Client, personas: Personas) -> None:
    workflow, version = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, version, status=Run.Status.SUCCEEDED)
    client.force_login(personas.alice)
    response = client.post(action_url("run_resume", run), follow=True)
    assert "Only a failed or canceled run can be resumed." in response.content.decode()
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_run_again_of_a_draft_run_whose_draft_is_now_broken_explains_why(
    client: Client, personas: Personas
) -> None:
    workflow, _ = workflow_with_versions(personas.workspace, CHAIN)
    run = run_row(workflow, None)
    broken = {**CHAIN, "steps": [{**CHAIN["steps"][0], "prompt": "Facts about {{ tpoic }}."}]}
    services.workflow_save_draft(workflow=workflow, definition=broken, user=None)
    client.force_login(personas.alice)
    response = client.post(action_url("run_rerun", run), follow=True)
    assert "The draft has errors" in response.content.decode()
    assert Run.objects.count() == 1


# The actions, on the engine (a real worker where a cancel meets a step in flight) ---------


def test_run_again_starts_the_same_version_with_the_same_inputs(
    engine_in_process: None, personas: Personas, client: Client
) -> None:
    workflow, v1 = workflow_with_versions(
        personas.workspace, chain("Again", ["Describe {{ topic }}."])
    )
    first = wait_for_run(
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "herons"}).id
    )
    services.workflow_publish(workflow=workflow, user=None)  # v2 exists now; "again" still means v1
    client.force_login(personas.vera)  # a viewer may run
    response = client.post(action_url("run_rerun", first))
    again = Run.objects.exclude(id=first.id).get()
    assert response["Location"] == detail_url(again)
    assert (again.version_id, again.inputs, again.trigger, again.created_by) == (
        v1.id,
        {"topic": "herons"},
        "manual",
        personas.vera,
    )
    assert wait_for_run(again.id).status == Run.Status.SUCCEEDED


def test_run_again_of_a_draft_run_runs_the_current_draft(
    engine_in_process: None, personas: Personas, client: Client
) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=chain("Draft", ["Old {{ topic }}"]), user=None
    )
    first = wait_for_run(
        services.run_start(
            workflow=workflow, trigger="manual", inputs={"topic": "x"}, draft=True
        ).id
    )
    services.workflow_save_draft(
        workflow=workflow, definition=chain("Draft", ["New {{ topic }}"]), user=None
    )
    client.force_login(personas.bob)
    client.post(action_url("run_rerun", first))
    again = wait_for_run(Run.objects.exclude(id=first.id).get().id)
    assert again.version is None
    assert "New x" in again.steps.get(key="s1").messages[-1]["content"]


def test_resume_reuses_the_finished_steps_without_calling_them_again(
    engine_in_process: None, personas: Personas, client: Client, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    # The worker gives up after 5 attempts; the 6th call (the resumed run's) succeeds.
    workflow, _ = workflow_with_versions(
        personas.workspace,
        chain("Resume", ["Draft on {{ topic }}", "Fail on {{ s1 }} [[fake:500 times=5]]"]),
    )
    failed = wait_for_run(
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "kelp"}).id
    )
    assert failed.status == Run.Status.FAILED
    client.force_login(personas.vera)
    response = client.post(action_url("run_resume", failed))
    resumed = wait_for_run(Run.objects.get(resumed_from=failed).id)
    assert response["Location"] == detail_url(resumed)
    assert resumed.status == Run.Status.SUCCEEDED, resumed.error
    assert (
        fake_calls("Draft on") - fake_calls("Fail on") == 1
    )  # s1 was called once, by the first run
    s1 = resumed.steps.get(key="s1")
    assert s1.reused and s1.cost_nanousd == 0
    assert resumed.cost_nanousd == resumed.steps.get(key="s2").cost_nanousd
    page = client.get(detail_url(resumed)).content.decode()
    assert "Reused · not paid again" in page


@pytest.mark.integration
def test_cancel_stops_a_running_run_after_the_step_in_flight(
    worker: WorkerProcess, personas: Personas, client: Client, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    workflow, _ = workflow_with_versions(
        personas.workspace,
        chain("Cancel", ["Slow on {{ topic }} [[fake:latency=1500]]", "Never {{ s1 }}"]),
    )
    run = services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "reeds"})
    deadline = time.monotonic() + 20
    while not StepRun.objects.filter(run=run, key="s1", status=StepRun.Status.RUNNING).exists():
        assert time.monotonic() < deadline, "s1 never started"
        time.sleep(0.05)
    client.force_login(personas.bob)
    logged = len(worker.log)
    assert client.post(action_url("run_cancel", run))["Location"] == detail_url(run)
    # The worker records the step in flight, then stops at the next step.
    worker.wait_for_log(f"Run {run.id}: lease lost or run canceled; stopping", since=logged)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELED
    assert fake_calls("Never") == 0
    polled = client.get(detail_url(run), headers=POLL)
    assert polled.status_code == 286
    assert "This run was canceled" in polled.content.decode()


def test_a_real_run_shows_each_steps_cost_summing_to_the_total(
    engine_in_process: None, personas: Personas, client: Client
) -> None:
    workflow, _ = workflow_with_versions(
        personas.workspace, chain("Costs", ["Describe {{ topic }}.", "Shorten:\n{{ s1 }}"])
    )
    run = wait_for_run(
        services.run_start(workflow=workflow, trigger="manual", inputs={"topic": "tides"}).id
    )
    client.force_login(personas.alice)
    page = client.get(detail_url(run)).content.decode()
    steps = list(run.steps.all())
    assert sum(s.cost_nanousd for s in steps) == run.cost_nanousd > 0
    for step in steps:
        assert format_usd(step.cost_nanousd) in page
    assert format_usd(run.cost_nanousd) in page
