"""Work sent to the Celery workers, by the task's registered name and an id.

Whatever starts work (run_start, dispatch, the engine, budget wake-ups, the
callback sweep, an admin deleting a workflow's runs) sends it from here, so
nothing below workflows.tasks imports it: the tasks are thin wrappers around
the engine and the integrations, and import them. The names are the ones
workflows/tasks.py registers with `name=` (the app registers them when it is
ready: workflows/apps.py); a task is looked up by name and sent as
`task.delay` would, so Celery's settings and eager mode apply as they do to
any call of the task.

A send that fails (the broker is down) is logged and dropped: what it would
have started is still in the database, and the reaper or the callback sweep
sends it again later.

Runs that had already started and are sent again (the reaper's re-sends
after a worker died or a message was lost, runs woken after waiting for
budget) go to the recovery queue beside the queue they would go to
(`<queue>.recovery`), so they do not wait behind a backlog of new runs; so
do beat's tasks, the reaper's own message first (config/settings.py). Every
worker consumes the recovery queue of each queue it consumes (added below
when the worker starts, whatever `-Q` it was given); the broker takes from
the two in turn, so a re-sent run waits behind at most as many new runs as
recovered runs are ahead of it, not behind the whole backlog.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from celery.signals import celeryd_after_setup

from workflows.models import RunCallback

log = logging.getLogger(__name__)

RUN_EXECUTE = "workflows.run_execute"
CALLBACK_DELIVER = "workflows.callback_deliver"
EVAL_ADVANCE = "workflows.eval_advance"
WORKFLOW_RUNS_DELETE = "workflows.workflow_runs_delete"


RECOVERY_SUFFIX = ".recovery"


def recovery_queue(queue: str) -> str:
    """The queue that runs re-sent to the workers of `queue` go to."""
    return queue + RECOVERY_SUFFIX


@celeryd_after_setup.connect
def _consume_recovery_queues(sender: str, instance: Any, **kwargs: object) -> None:
    """A starting worker consumes, beside each queue it was given, its recovery queue."""
    queues = instance.app.amqp.queues
    for name in list(queues.consume_from):
        if not name.endswith(RECOVERY_SUFFIX):
            queues.select_add(recovery_queue(name))


def run_send(run_id: int, *, recovering: bool = False) -> None:
    """Send the run's id to the workers (callers mark it sent: `enqueued_at`);
    `recovering`: a run that had started, sent ahead of new runs (see above).

    If the broker is down the run stays
    queued in the database, and the reaper sends it again later: never lost."""
    task = current_app.tasks[RUN_EXECUTE]  # a missing task is a bug, not a broker outage
    try:
        if recovering:
            task.apply_async((run_id,), queue=recovery_queue(current_app.conf.task_default_queue))
        else:
            task.delay(run_id)
    except Exception:  # kombu raises many kinds; all mean "not sent now"
        log.warning("Run %s: broker unavailable; the reaper will enqueue it", run_id, exc_info=True)


def callback_send(callback_id: int, countdown: float = 0) -> None:
    """Send one delivery attempt of the callback, after `countdown` seconds."""
    task = current_app.tasks[CALLBACK_DELIVER]
    try:
        # None is no delay to Celery; celery-types only knows float.
        task.apply_async(
            (callback_id,),
            countdown=countdown or None,  # type: ignore[arg-type]
        )
    except Exception:  # the broker is down: the sweep sends it later
        log.warning("Callback %s: could not enqueue; the sweep will", callback_id, exc_info=True)


def callback_send_for_run(run_id: int) -> None:
    """Called when a run finishes: send its callback, if it has one."""
    pending = RunCallback.objects.filter(run_id=run_id, status=RunCallback.Status.PENDING)
    callback_id = pending.values_list("id", flat=True).first()
    if callback_id is not None:
        callback_send(callback_id)


def eval_send(eval_id: int, countdown: float = 0) -> None:
    """Send `eval_advance` for the eval, after `countdown` seconds. In eager mode (tests,
    commands) a later look is not sent, as it would run at once, within this one: the eval's
    page or API sends it when read (workflows/evals/execution.py, `eval_nudge`)."""
    if countdown and current_app.conf.task_always_eager:
        return
    task = current_app.tasks[EVAL_ADVANCE]
    try:
        task.apply_async((eval_id,), countdown=countdown or None)  # type: ignore[arg-type]
    except Exception:  # the broker is down: the next read of the eval sends it again
        log.warning("Eval %s: could not enqueue", eval_id, exc_info=True)


def workflow_runs_delete_send(workflow_id: int, requested_by_id: int | None) -> None:
    """Send the deletion of the workflow's finished runs that member `requested_by_id` asked for."""
    task = current_app.tasks[WORKFLOW_RUNS_DELETE]
    try:
        task.delay(workflow_id, requested_by_id)
    except Exception:  # the broker is down: asking again once the request is stale sends it
        log.warning("Workflow %s: could not enqueue its runs' deletion", workflow_id, exc_info=True)
