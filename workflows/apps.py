from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        from config.lib.log_scrub import connect_axes_scrubbing

        # axes keeps request paths and queries in its rows: no invitation or reset token there.
        connect_axes_scrubbing()
