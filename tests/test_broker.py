"""workflows.broker sends work by the names workflows/tasks.py registers."""

from __future__ import annotations

from celery import current_app

from workflows import broker, tasks


def test_every_name_the_broker_sends_is_a_registered_task() -> None:
    # A misnamed task would be logged as "broker unavailable" and retried forever.
    assert tasks.run_execute.name == broker.RUN_EXECUTE
    assert tasks.callback_deliver.name == broker.CALLBACK_DELIVER
    assert {broker.RUN_EXECUTE, broker.CALLBACK_DELIVER} <= set(current_app.tasks)


def test_beats_tasks_go_to_the_recovery_queue_ahead_of_a_backlog_of_new_runs(settings) -> None:  # type: ignore[no-untyped-def]
    # Behind a backlog on the main queue, the reaper's message expired before a worker
    # reached it, and a dead worker's runs waited for the whole backlog.
    recovery = broker.recovery_queue(settings.CELERY_TASK_DEFAULT_QUEUE)
    assert {
        name: entry["options"]["queue"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    } == dict.fromkeys(settings.CELERY_BEAT_SCHEDULE, recovery)
