"""`manage.py fake_openai`: run the fake OpenAI server for demos and benchmarks.

Point the app at it with OPENAI_BASE_URL=http://HOST:PORT/v1 (any API key).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dev.fake_openai import FakeConfig, serve


class Command(BaseCommand):
    help = "Run the fake OpenAI-compatible server (the project's only test double)."
    # It uses neither the database nor the models: starting it must not wait on checks.
    requires_system_checks: ClassVar[list[str]] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--latency-ms", type=int, default=0, help="Delay before each answer.")
        parser.add_argument(
            "--jitter-ms",
            type=int,
            default=0,
            help="Up to this much extra delay, drawn per answer.",
        )
        parser.add_argument(
            "--fail-rate", type=float, default=0.0, help="Fraction of requests that fail (0-1)."
        )
        parser.add_argument(
            "--fail-status", type=int, default=500, help="HTTP status of those failures."
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Makes jitter and failures reproducible."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        server_options = {
            "latency_ms": options["latency_ms"],
            "jitter_ms": options["jitter_ms"],
            "fail_rate": options["fail_rate"],
            "fail_status": options["fail_status"],
            "seed": options["seed"],
        }
        try:
            FakeConfig(**server_options)
        except ValueError as error:
            raise CommandError(str(error)) from error
        serve(host=options["host"], port=options["port"], **server_options)
