"""workflows.broker sends work by the names workflows/tasks.py registers."""

from __future__ import annotations

from celery import current_app

from workflows import broker, tasks


def test_every_name_the_broker_sends_is_a_registered_task() -> None:
    # A misnamed task would be logged as "broker unavailable" and retried forever.
    assert tasks.run_execute.name == broker.RUN_EXECUTE
    assert tasks.callback_deliver.name == broker.CALLBACK_DELIVER
    assert {broker.RUN_EXECUTE, broker.CALLBACK_DELIVER} <= set(current_app.tasks)
