"""Server-side render time of the editor for a 50-step workflow (issue 4).

Renders the editor page through Django's test client (the full middleware
stack, templates and queries, no network) against PostgreSQL, 200 times after
a warm-up, and reports percentiles and the number of queries per render.

    python -m bench.editor_render [--steps 50] [--renders 200]
"""

from __future__ import annotations

import argparse
import time

from bench.harness import Stack, summary, workspace_and_workflow, write_result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--renders", type=int, default=200)
    args = parser.parse_args()
    steps = []
    for i in range(1, args.steps + 1):
        previous = f"{{{{ s{i - 1} }}}}" if i > 1 else "{{ topic }}"
        steps.append(
            {
                "key": f"s{i}",
                "type": "llm",
                "title": f"Step {i}",
                "prompt": f"Improve this text, pass {i}:\n{previous}",
                "max_tokens": 400,
            }
        )
    definition = {
        "name": "Fifty steps",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": steps,
    }
    with Stack(workers=0):
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        settings.ALLOWED_HOSTS = ["*"]
        workspace, workflow, _ = workspace_and_workflow(definition)
        user = workspace.memberships.get().user
        client = Client()
        client.force_login(user)
        url = reverse("workflow_editor", args=[workspace.slug, workflow.id])
        for _ in range(10):
            assert client.get(url).status_code == 200
        timings = []
        for _ in range(args.renders):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        write_result(
            "editor_render",
            {
                "steps": args.steps,
                "renders": args.renders,
                "render_ms": summary(timings),
                "queries_per_render": len(queries),
            },
        )


if __name__ == "__main__":
    main()
