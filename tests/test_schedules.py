"""Cron schedules: validation, time zones, and a tick that starts each due time exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEntry
from tests.conftest import Personas
from tests.factories import GREETING, published_workflow
from workflows import services
from workflows.integrations import schedules
from workflows.models import Run, Schedule
from workflows.tasks import callbacks_sweep, schedules_tick


def make(personas: Personas, cron: str = "*/5 * * * *", **kwargs: object) -> Schedule:
    workflow = kwargs.pop("workflow", None) or published_workflow(personas.workspace)
    return schedules.schedule_create(
        workflow=workflow,
        cron=cron,
        time_zone=kwargs.pop("time_zone", "UTC"),
        inputs=kwargs.pop("inputs", {"who": "Ada"}),
        user=personas.alice,
    )


def make_due(schedule: Schedule, ago: timedelta = timedelta(seconds=1)) -> datetime:
    due = timezone.now() - ago
    Schedule.objects.filter(id=schedule.id).update(next_run_at=due)
    return due


@pytest.mark.parametrize(
    "cron", ["* * * *", "0 0 * * * *", "61 * * * *", "every day", "", "0 9 * * mon-fri extra"]
)
def test_a_bad_cron_expression_is_refused(personas: Personas, cron: str) -> None:
    with pytest.raises(schedules.ScheduleInvalid) as e:
        make(personas, cron)
    assert e.value.field == "cron"


def test_an_unknown_time_zone_is_refused(personas: Personas) -> None:
    with pytest.raises(schedules.ScheduleInvalid) as e:
        make(personas, time_zone="Mars/Olympus")
    assert e.value.field == "time_zone"


def test_inputs_are_checked_against_the_published_version(personas: Personas) -> None:
    with pytest.raises(schedules.ScheduleInvalid) as e:
        make(personas, inputs={"times": "x"})
    assert e.value.field == "inputs" and "who" in e.value.message


def test_cron_is_read_in_the_schedules_time_zone() -> None:
    winter = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 10, 0, 0, tzinfo=UTC)
    assert schedules.next_times("0 9 * * *", "Europe/Paris", winter)[0] == datetime(
        2026, 1, 10, 8, 0, tzinfo=UTC
    )
    assert schedules.next_times("0 9 * * *", "Europe/Paris", summer)[0] == datetime(
        2026, 7, 10, 7, 0, tzinfo=UTC
    )
    assert schedules.next_times("30 9 * * *", "UTC", winter, count=2) == [
        datetime(2026, 1, 10, 9, 30, tzinfo=UTC),
        datetime(2026, 1, 11, 9, 30, tzinfo=UTC),
    ]


def test_creating_a_schedule_sets_its_next_run_and_is_audited(personas: Personas) -> None:
    schedule = make(personas, "0 * * * *")
    assert schedule.next_run_at > timezone.now()
    assert schedule.next_run_at.minute == 0
    assert AuditEntry.objects.filter(action="schedule.create").exists()


def test_a_due_schedule_starts_one_run_with_the_schedule_trigger(personas: Personas) -> None:
    schedule = make(personas)
    due = make_due(schedule)
    started = schedules.tick()
    assert len(started) == 1
    run = Run.objects.get(id=started[0])
    assert run.trigger == Run.Trigger.SCHEDULE
    assert run.inputs == {"who": "Ada", "times": 1}
    assert run.idempotency_key == f"schedule:{schedule.id}:{due.isoformat()}"
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()
    assert schedule.last_run_id == run.id and schedule.last_error == ""
    assert schedules.tick() == []


def test_a_due_time_claimed_by_another_tick_is_not_started_again(personas: Personas) -> None:
    schedule = make(personas)
    due = make_due(schedule)
    following = schedules.next_times(schedule.cron, "UTC", timezone.now())[0]
    assert schedules._fire(schedule.id, due, following) is not None
    # A second tick that read the same due time finds it moved on.
    assert schedules._fire(schedule.id, due, following) is None
    assert Run.objects.count() == 1


def test_concurrent_ticks_start_each_due_time_once(
    transactional_db: None, personas: Personas
) -> None:
    schedule = make(personas)
    make_due(schedule)
    barrier = threading.Barrier(8)
    results: list[list[int]] = []

    def tick() -> None:
        try:
            barrier.wait(10)
            results.append(schedules.tick())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(len(r) for r in results) == 1
    assert Run.objects.count() == 1


def test_after_downtime_a_schedule_fires_once_then_continues_from_now(personas: Personas) -> None:
    schedule = make(personas, "0 * * * *")
    make_due(schedule, ago=timedelta(days=3))
    assert len(schedules.tick()) == 1
    schedule.refresh_from_db()
    assert timezone.now() < schedule.next_run_at <= timezone.now() + timedelta(hours=1)
    assert schedules.tick() == []


def test_an_unpublished_workflow_records_the_error_and_moves_on(personas: Personas) -> None:
    workflow = services.workflow_create(
        workspace=personas.workspace, definition=GREETING, user=None
    )
    schedule = make(personas, workflow=workflow)
    make_due(schedule)
    assert schedules.tick() == []
    schedule.refresh_from_db()
    assert "Publish" in schedule.last_error
    assert schedule.next_run_at > timezone.now()
    assert not Run.objects.exists()


def test_disabled_schedules_do_not_fire(personas: Personas) -> None:
    schedule = make(personas)
    schedules.schedule_update(
        schedule=schedule,
        cron=schedule.cron,
        time_zone="UTC",
        inputs={"who": "Bo"},
        enabled=False,
        user=personas.alice,
    )
    make_due(schedule)
    assert schedules.tick() == []
    assert AuditEntry.objects.filter(action="schedule.edit").exists()


def test_deleting_a_schedule_is_audited(personas: Personas) -> None:
    schedule = make(personas)
    schedules.schedule_delete(schedule=schedule, user=personas.alice)
    assert not Schedule.objects.exists()
    assert AuditEntry.objects.filter(action="schedule.delete").exists()


def test_beat_runs_the_tick_and_the_callback_sweep() -> None:
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedules_tick.name in entries
    assert callbacks_sweep.name in entries
    assert settings.CELERY_BEAT_SCHEDULE["schedules-tick"]["schedule"] <= 30
