"""/mcp as deployed: under uvicorn (ASGI, the SDK's handlers on the server's event loop) with a
real worker running the calls' runs, reached by the SDK's client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import Personas
from tests.factories import api_token
from tests.servers import AsgiServer, WorkerProcess
from tests.test_mcp import TRIAGE, call, exposed, tools_of
from workflows.models import Run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def web(worker_env: dict[str, str]) -> Iterator[AsgiServer]:
    # Its runs go to the session's worker (worker_env's queue).
    server = AsgiServer(worker_env)
    yield server
    server.stop()


def test_an_agent_lists_calls_and_reads_back_a_run_under_uvicorn(
    web: AsgiServer, worker: WorkerProcess, personas: Personas, fake_calls
) -> None:
    exposed(personas.workspace, TRIAGE)
    exposed(personas.other_workspace, {**TRIAGE, "name": "Theirs"})
    token = api_token(personas.workspace, personas.alice)

    assert sorted(tools_of(web.url, token)) == ["runs_get", "triage"]

    result = call(web.url, token, "triage", {"ticket": "Crash when I press save."})

    run = Run.objects.get()
    assert result.structured_content == {
        "run_id": run.id,
        "status": "succeeded",
        "output": {"category": "bug"},
    }
    assert run.trigger == Run.Trigger.MCP
    assert fake_calls("Crash when I press save.") == 1
    read = call(web.url, token, "runs_get", {"run_id": run.id})
    assert read.structured_content["output"] == {"category": "bug"}
    assert read.structured_content["steps"][0]["key"] == "triage"


def test_a_wrong_token_is_refused_under_uvicorn(web: AsgiServer, transactional_db: None) -> None:
    response = httpx2.post(
        f"{web.url}/mcp",
        headers={"Authorization": "Bearer sw_wrong", "Content-Type": "application/json"},
        content=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}',
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
