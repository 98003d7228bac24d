"""Celery tasks: thin, id-only; the engine and the integrations hold the logic.

Nothing in the product imports this module: work is sent by task name
(workflows/broker.py), so the tasks may import what they run."""

from celery import shared_task
from celery.signals import worker_ready

from workflows import retention
from workflows.evals import execution as evals
from workflows.integrations import callbacks, failure_alerts, schedules, webhooks
from workflows.llm import tokens
from workflows.runtime import engine


@worker_ready.connect
def _warm_up(**kwargs: object) -> None:
    # Load the tokenizer before the first run needs it.
    tokens.warm_up()


@shared_task(name="workflows.run_execute", ignore_result=True)
def run_execute(run_id: int) -> None:
    engine.run_execute(run_id)


@shared_task(name="workflows.eval_advance", ignore_result=True)
def eval_advance(eval_id: int) -> None:
    evals.eval_advance(eval_id)


@shared_task(name="workflows.reap_runs", ignore_result=True)
def reap_runs() -> None:
    engine.reap()
    evals.evals_nudge_stalled()


@shared_task(name="workflows.callback_deliver", ignore_result=True)
def callback_deliver(callback_id: int) -> None:
    callbacks.callback_deliver(callback_id)


@shared_task(name="workflows.callbacks_sweep", ignore_result=True)
def callbacks_sweep() -> None:
    callbacks.callbacks_sweep()


@shared_task(name="workflows.schedules_tick", ignore_result=True)
def schedules_tick() -> None:
    schedules.tick()


@shared_task(name="workflows.deliveries_prune", ignore_result=True)
def deliveries_prune() -> None:
    webhooks.deliveries_prune()


@shared_task(name="workflows.runs_prune", ignore_result=True)
def runs_prune() -> None:
    retention.runs_prune()


@shared_task(name="workflows.workflow_runs_delete", ignore_result=True)
def workflow_runs_delete(workflow_id: int, requested_by_id: int | None) -> None:
    retention.workflow_runs_delete(workflow_id=workflow_id, requested_by_id=requested_by_id)


@shared_task(name="workflows.failures_notify", ignore_result=True)
def failures_notify() -> None:
    failure_alerts.failures_notify()
