"""Schemathesis generates requests from /api/v1/openapi.json and sends them to the app in-process
(WSGI): no operation may answer a server error, whatever the input, and every answer must be
one the document declares, with the declared shape (errors: `{"error", "details"}`).

Bounded: a few dozen examples per operation, no example database, well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.conftest import Personas
from tests.factories import api_token, published_workflow
from workflows import services
from workflows.integrations import triggers
from workflows.integrations.api import api
from workflows.models import Run


@pytest.fixture
def token(personas: Personas) -> str:
    return api_token(personas.workspace, personas.alice, "fuzz")


@pytest.fixture(autouse=True)
def objects(personas: Personas, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    # Real objects, so generated ids sometimes find something; runs never wait here (no worker).
    settings.RUN_WAIT_MAX_SECONDS = 0
    workflow = published_workflow(personas.workspace)
    triggers.trigger_create(workflow=workflow, user=personas.alice)
    services.run_start(workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"who": "Ada"})
    # As Django's test client does: the request cycle must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# The document the app serves at /api/v1/openapi.json, sent to the app itself (WSGI, in-process).
schema = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix="/api/v1/"))
schema.app = application


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_no_generated_request_gets_a_server_error_or_an_undeclared_answer(
    case: schemathesis.Case, token: str
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
