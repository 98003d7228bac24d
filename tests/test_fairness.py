"""Fair sharing: one workspace's flood does not queue ahead of another's run."""

from __future__ import annotations

import time

import pytest

from accounts.services import user_signup
from tests.conftest import Personas
from tests.factories import chain, run_started
from tests.polling import wait_for_run
from tests.servers import WorkerProcess
from workflows import services
from workflows.models import Run
from workflows.runtime import dispatch, engine

pytestmark = pytest.mark.integration


def test_a_flooding_workspace_does_not_delay_another_workspaces_run(
    worker: WorkerProcess, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE = 4  # as the worker's (tests/conftest.py)
    flood = chain("Flood", ["Flood {{ topic }} [[fake:latency=1000]]"])
    first = run_started(personas.workspace, flood, {"topic": "0"})
    flood_ids = [first.id]
    workflow = first.workflow

    for i in range(1, 40):
        flood_ids.append(
            services.run_start(
                workflow=workflow, trigger=Run.Trigger.API, inputs={"topic": str(i)}
            ).id
        )
    # Only 4 are sent to the workers at a time; the rest wait in the database. Past
    # the first 4, a run is sent only in the slot a finished one freed (counted in
    # that order, so runs finishing meanwhile cannot break it on a slow machine).
    assert dispatch.in_flight(personas.workspace.id) <= 4
    sent = Run.objects.filter(id__in=flood_ids, enqueued_at__isnull=False).count()
    finished = Run.objects.filter(id__in=flood_ids, status__in=Run.FINISHED).count()
    assert sent <= 4 + finished

    _, other = user_signup(email="olga@example.com", password="a long enough passphrase")
    started = time.monotonic()
    single = wait_for_run(
        run_started(other, chain("Single", ["Just one {{ topic }}"]), {"topic": "x"}).id, timeout=10
    )
    waited = time.monotonic() - started
    assert single.status == Run.Status.SUCCEEDED
    assert waited < 5, f"the other workspace's run took {waited:.1f} s behind the flood"
    assert Run.objects.filter(id__in=flood_ids).exclude(status__in=Run.FINISHED).exists()

    for run_id in flood_ids:
        assert wait_for_run(run_id, timeout=60).status == Run.Status.SUCCEEDED
    # Each went to the workers through a slot (marked sent), none behind the count's back.
    assert not Run.objects.filter(id__in=flood_ids, enqueued_at__isnull=True).exists()


def test_waiting_runs_are_sent_by_the_reaper_when_a_slot_is_free(
    worker: WorkerProcess, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE = 0  # nothing is sent at start
    run = run_started(personas.workspace, chain("Later", ["Later {{ topic }}"]), {"topic": "y"})
    # Not sent to the broker (no `enqueued_at`), so no worker can have started it.
    run.refresh_from_db()
    assert (run.enqueued_at, run.status) == (None, Run.Status.QUEUED)
    settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE = 4
    assert engine.reap() == [run.id]
    assert wait_for_run(run.id).status == Run.Status.SUCCEEDED
    assert dispatch.in_flight(personas.workspace.id) == 0


def test_a_new_run_does_not_take_the_slot_a_finishing_run_hands_to_the_oldest_waiting(
    db, personas: Personas, settings
) -> None:  # type: ignore[no-untyped-def]
    # A run finishes in one statement and hands its slot over in the next: in
    # between, a run started by someone else must not count the slot as free
    # (it would jump the queue, and the hand-over would make it one too many).
    settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE = 1
    running = run_started(personas.workspace, chain("Slots", ["One {{ topic }}"]), {"topic": "a"})
    waiting = services.run_start(
        workflow=running.workflow, trigger=Run.Trigger.API, inputs={"topic": "b"}
    )
    Run.objects.filter(id=running.id).update(
        status=Run.Status.SUCCEEDED
    )  # finished, not handed over

    newcomer = services.run_start(
        workflow=running.workflow, trigger=Run.Trigger.API, inputs={"topic": "c"}
    )

    newcomer.refresh_from_db()
    assert newcomer.enqueued_at is None
    assert dispatch.hand_over_slot(personas.workspace.id) == waiting.id
    assert dispatch.in_flight(personas.workspace.id) == 1
