from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        # Django's idiom: what registers itself (signal receivers, Celery tasks) is imported
        # once the apps are loaded. The tasks are sent by name (workflows/broker.py), so
        # every process that sends one must have them registered.
        from config.lib.log_scrub import connect_axes_scrubbing
        from workflows import tasks  # noqa: F401  (registers the Celery tasks)

        # axes keeps request paths and queries in its rows: no invitation or reset token there.
        connect_axes_scrubbing()
