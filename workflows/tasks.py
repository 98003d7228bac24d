"""Celery tasks: thin, id-only; the engine holds the logic."""

from celery import shared_task

from workflows import engine


@shared_task(name="workflows.run_execute", ignore_result=True)
def run_execute(run_id: int) -> None:
    engine.run_execute(run_id)


@shared_task(name="workflows.reap_runs", ignore_result=True)
def reap_runs() -> None:
    engine.reap()
