"""Run a workflow file end to end: validate, import, publish, run on a worker, print the run.

A stable interface that scripts and checks depend on: exit 0 when the run
succeeded, 1 when it failed (or timed out), 2 when the file is invalid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from workflows import services
from workflows.builder.definition import InputError
from workflows.models import Run
from workflows.schemas import workflow_detail_out
from workflows.selectors import run_json


class Command(BaseCommand):
    help = (
        "Validate, import, publish and run a workflow JSON file on a Celery worker; print the "
        "run as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The workflow definition (JSON).")
        parser.add_argument("--workspace", required=True, help="The workspace slug.")
        parser.add_argument(
            "--input",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="An input value; NAME=@path reads the value from a file. Repeatable.",
        )
        parser.add_argument(
            "--timeout", type=float, default=300, help="Seconds to wait for the run."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = json.loads(Path(options["file"]).read_text())
        except OSError as e:
            raise CommandError(f"Cannot read {options['file']}: {e}") from e
        except json.JSONDecodeError as e:
            self._exit_invalid([{"step": None, "field": "", "message": f"Not valid JSON: {e}"}])
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"No workspace with the slug {options['workspace']!r}.")
        inputs: dict[str, object] = dict(self._parse_input(item) for item in options["input"])

        try:
            workflow = services.workflow_import(workspace=workspace, definition=data, user=None)
            missing = workflow_detail_out(workflow).missing_secrets
            if missing:
                self.stderr.write(
                    f"Secrets this workflow uses that {workspace.slug} does not have: "
                    f"{', '.join(missing)} (create them in Settings → Secrets); "
                    "its http steps that use them will fail."
                )
            version = services.workflow_publish(
                workflow=workflow, user=None, summary="Published by run_workflow"
            )
            run = services.run_start(
                workflow=workflow, version=version, trigger=Run.Trigger.CLI, inputs=inputs
            )
        except services.WorkflowInvalid as e:
            self._exit_invalid([issue.to_dict() for issue in e.issues])
        except InputError as e:
            self._exit_invalid(
                [
                    {"step": None, "field": f"inputs.{name}", "message": message}
                    for name, message in e.details.items()
                ]
            )

        deadline = time.monotonic() + options["timeout"]
        while not run.is_finished and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()
        result = run_json(run)
        if not run.is_finished:
            result["error"] = (
                f"Timed out after {options['timeout']:g} s waiting for a worker (is one running?)."
            )
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
        raise SystemExit(0 if run.status == Run.Status.SUCCEEDED else 1)

    def _parse_input(self, item: str) -> tuple[str, str]:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--input must look like NAME=VALUE, not {item!r}.")
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text()
            except OSError as e:
                raise CommandError(f"Cannot read the input file {value[1:]!r}: {e}") from e
        return name.strip(), value

    def _exit_invalid(self, errors: Sequence[Mapping[str, object]]) -> None:
        self.stdout.write(
            json.dumps({"valid": False, "errors": errors}, indent=2, ensure_ascii=False)
        )
        raise SystemExit(2)
