"""REST API v1 (django-ninja), mounted at /api/v1/.

Every request carries a workspace token (`Authorization: Bearer sw_…`,
workflows/api_auth.py) and sees only that workspace: another workspace's
ids answer 404, exactly like ids that do not exist. Every error is JSON
`{"error": message, "details": ...}` with a 4xx status (the handlers at the
end), never an HTML page. Writes call the same services as the web pages.

The OpenAPI document is /api/v1/openapi.json; /api/v1/docs is Swagger UI,
served from django-ninja's own static files (no CDN, our strict CSP).
"""

from __future__ import annotations

import logging
from datetime import datetime
from inspect import iscoroutinefunction
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt
from ninja import Body, Field, Header, NinjaAPI, Path, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from config.lib.body_limit import size_label
from workflows import services, triggers
from workflows.api_auth import WorkspaceToken
from workflows.definition import InputError
from workflows.models import ApiToken, Run, Trigger, Workflow
from workflows.selectors import run_json
from workflows.webhooks import MAX_KEY_LENGTH, MAX_WAIT_SECONDS, run_answer

log = logging.getLogger(__name__)

# Ids are 64-bit; larger numbers are refused as invalid rather than overflowing the database.
MAX_ID = 2**63 - 1
Id = Path(..., ge=1, le=MAX_ID)


class StepwiseAPI(NinjaAPI):
    """NinjaAPI whose own non-operation answers are JSON too: a method an
    endpoint does not have (ninja answers a plain-text 405) and the bare
    /api/v1/ (ninja raises an HTML 404)."""

    def _get_urls(self) -> list[Any]:
        patterns = super()._get_urls()
        for pattern in patterns:
            if not isinstance(pattern, URLPattern):
                continue
            if pattern.name == "api-root":
                pattern.callback = not_found
            else:
                pattern.callback = _json_not_allowed(pattern.callback)
        return patterns


api = StepwiseAPI(
    title="Stepwise API",
    version="1",
    description=(
        "Run and manage a workspace's workflows. Authenticate with a workspace token: "
        "`Authorization: Bearer sw_…` (Settings → API tokens, or `manage.py create_api_token`). "
        'Errors are JSON `{"error": message, "details": ...}`.'
    ),
    auth=WorkspaceToken(),
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


# Schemas ---------------------------------------------------------------------


class ErrorOut(Schema):
    error: str
    details: Any = None


class IssueOut(Schema):
    step: str | None
    field: str
    message: str


class ValidationOut(Schema):
    valid: bool
    issues: list[IssueOut]


class VersionOut(Schema):
    number: int
    summary: str
    created_at: datetime


class WorkflowOut(Schema):
    id: int
    name: str
    description: str
    published_version: int | None
    created_at: datetime
    updated_at: datetime


class WorkflowDetailOut(WorkflowOut):
    definition: dict[str, Any]
    versions: list[VersionOut]


class PublishIn(Schema):
    summary: str = Field("", max_length=2000)


class TriggerIn(Schema):
    name: str = Field("", max_length=100)
    callback_url: str = Field(
        "", max_length=2000, description="Where to POST each run's result (optional)."
    )
    rate_limit_per_minute: int = Field(60, ge=1, le=100_000)


class TriggerOut(Schema):
    id: int
    url: str
    name: str
    signing_required: bool
    callback_url: str
    rate_limit_per_minute: int
    created_at: datetime
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None


class TriggerSecretOut(TriggerOut):
    secret: str = Field(
        description="The Standard Webhooks secret (whsec_…). Shown only in this answer."
    )


class RunIn(Schema):
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: int = Field(
        0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description=(
            "Seconds to wait for the result: 200 with the run if it finishes in time, else 202."
        ),
    )


class RunAccepted(Schema):
    run_id: int
    status: str
    status_url: str


class StepOut(Schema):
    key: str
    type: str
    status: str
    output: Any
    tokens_in: int
    tokens_cached: int
    tokens_out: int
    cost_usd: str
    latency_ms: int | None
    attempts: int
    reused: bool
    error: str


class RunOut(Schema):
    id: int
    workflow_id: int
    version: int | None
    trigger: str
    status: str
    waiting_for: str = Field(
        description='While the status is "waiting": what for ("budget"); else empty.'
    )
    inputs: dict[str, Any]
    output: Any
    error: str
    cost_usd: str
    cost_nanousd: int
    tokens_in: int
    tokens_cached: int
    tokens_out: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    steps: list[StepOut]


class RunListOut(Schema):
    items: list[RunOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class RunFilters(Schema):
    workflow_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: Literal["queued", "running", "waiting", "succeeded", "failed", "canceled"] | None = None
    trigger: Literal["manual", "api", "webhook", "schedule", "cli"] | None = None
    before: int | None = Field(None, ge=1, le=MAX_ID, description="Only runs with a smaller id.")
    limit: int = Field(20, ge=1, le=100)


# Every operation declares every error it can answer, all of them `{"error", "details"}`:
# 413 is a body over MAX_REQUEST_BODY_BYTES (config/lib/body_limit.py).
ERRORS: dict[int, type[Schema]] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    413: ErrorOut,
    422: ErrorOut,
}


# Helpers -------------------------------------------------------------------


def _token(request: HttpRequest) -> ApiToken:
    return request.auth  # type: ignore[attr-defined,return-value]


def _workflow(request: HttpRequest, workflow_id: int) -> Workflow:
    workflow = Workflow.objects.filter(
        id=workflow_id, workspace_id=_token(request).workspace_id, archived_at__isnull=True
    ).first()
    if workflow is None:
        raise Http404("No such workflow.")
    return workflow


def _trigger(request: HttpRequest, workflow_id: int, trigger_id: int) -> Trigger:
    trigger = Trigger.objects.filter(
        id=trigger_id, workflow=_workflow(request, workflow_id)
    ).first()
    if trigger is None:
        raise Http404("No such trigger.")
    return trigger


def _run(request: HttpRequest, run_id: int) -> Run:
    run = (
        Run.objects.select_related("version")
        .filter(id=run_id, workspace_id=_token(request).workspace_id)
        .first()
    )
    if run is None:
        raise Http404("No such run.")
    return run


def _workflow_out(workflow: Workflow, detail: bool = False) -> dict[str, Any]:
    versions = list(workflow.versions.order_by("-number")) if detail else []
    latest = (versions[0] if versions else None) if detail else services.latest_version(workflow)
    data: dict[str, Any] = {
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "published_version": latest.number if latest else None,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
    }
    if detail:
        data["definition"] = workflow.definition
        data["versions"] = [
            {"number": v.number, "summary": v.summary, "created_at": v.created_at} for v in versions
        ]
    return data


def _trigger_out(trigger: Trigger, secret: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": trigger.id,
        "url": triggers.trigger_url(trigger),
        "name": trigger.name,
        "signing_required": trigger.signing_required,
        "callback_url": trigger.callback_url,
        "rate_limit_per_minute": trigger.rate_limit_per_minute,
        "created_at": trigger.created_at,
        "rotated_at": trigger.rotated_at,
        "previous_secret_expires_at": trigger.previous_expires_at,
    }
    if secret is not None:
        data["secret"] = secret
    return data


def _check_callback_url(url: str) -> None:
    from config.lib.outbound import url_refusal

    refusal = url_refusal(url) if url else None
    if refusal:
        raise HttpError(400, f"callback_url is refused: {refusal}")


# Workflows -----------------------------------------------------------------


@api.get(
    "/workflows",
    response={200: list[WorkflowOut], **ERRORS},
    tags=["workflows"],
    operation_id="workflows_list",
)
def workflows_list(request: HttpRequest) -> list[dict[str, Any]]:
    workflows = Workflow.objects.filter(
        workspace_id=_token(request).workspace_id, archived_at__isnull=True
    )
    return [_workflow_out(workflow) for workflow in workflows.order_by("name")]


@api.post(
    "/workflows",
    response={201: WorkflowDetailOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_create",
    summary="Create a workflow from a definition (the workflow format, docs/workflow-format.md)",
)
def workflows_create(
    request: HttpRequest, definition: Body[dict[str, Any]]
) -> Status[dict[str, Any]]:
    token = _token(request)
    parsed = services.definition_parse(definition)
    if Workflow.objects.filter(workspace_id=token.workspace_id, name=parsed.name).exists():
        raise HttpError(409, f"A workflow named “{parsed.name}” already exists in this workspace.")
    workflow = services.workflow_create(
        workspace=token.workspace, definition=definition, user=token.created_by
    )
    return Status(201, _workflow_out(workflow, detail=True))


@api.post(
    "/workflows/validate",
    response={200: ValidationOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_validate",
    summary="Check a definition without saving it",
)
def workflows_validate(request: HttpRequest, definition: Body[dict[str, Any]]) -> dict[str, Any]:
    _, issues = services.definition_check(definition)
    return {"valid": not issues, "issues": [issue.to_dict() for issue in issues]}


@api.get(
    "/workflows/{workflow_id}",
    response={200: WorkflowDetailOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_get",
)
def workflows_get(request: HttpRequest, workflow_id: int = Id) -> dict[str, Any]:
    return _workflow_out(_workflow(request, workflow_id), detail=True)


@api.put(
    "/workflows/{workflow_id}",
    response={200: WorkflowDetailOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_replace",
    summary="Replace the draft (refused unless it validates)",
)
def workflows_replace(
    request: HttpRequest, definition: Body[dict[str, Any]], workflow_id: int = Id
) -> dict[str, Any]:
    workflow = _workflow(request, workflow_id)
    parsed = services.definition_parse(definition)
    if (
        Workflow.objects.filter(workspace_id=workflow.workspace_id, name=parsed.name)
        .exclude(id=workflow.id)
        .exists()
    ):
        raise HttpError(409, f"A workflow named “{parsed.name}” already exists in this workspace.")
    services.workflow_save_draft(
        workflow=workflow, definition=definition, user=_token(request).created_by
    )
    return _workflow_out(workflow, detail=True)


@api.delete(
    "/workflows/{workflow_id}",
    response={204: None, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_delete",
    summary="Delete a workflow with its versions, runs and triggers",
)
def workflows_delete(request: HttpRequest, workflow_id: int = Id) -> Status[None]:
    services.workflow_delete(
        workflow=_workflow(request, workflow_id), user=_token(request).created_by
    )
    return Status(204, None)


@api.post(
    "/workflows/{workflow_id}/validate",
    response={200: ValidationOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_validate_draft",
    summary="Check the stored draft",
)
def workflows_validate_draft(request: HttpRequest, workflow_id: int = Id) -> dict[str, Any]:
    _, issues = services.definition_check(_workflow(request, workflow_id).definition)
    return {"valid": not issues, "issues": [issue.to_dict() for issue in issues]}


@api.post(
    "/workflows/{workflow_id}/publish",
    response={201: VersionOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_publish",
    summary="Publish the draft as the next version",
)
def workflows_publish(
    request: HttpRequest, workflow_id: int = Id, body: PublishIn | None = None
) -> Status[dict[str, Any]]:
    version = services.workflow_publish(
        workflow=_workflow(request, workflow_id),
        user=_token(request).created_by,
        summary=body.summary if body else "",
    )
    return Status(
        201,
        {"number": version.number, "summary": version.summary, "created_at": version.created_at},
    )


@api.get(
    "/workflows/{workflow_id}/export",
    response={200: dict[str, Any], **ERRORS},
    tags=["workflows"],
    operation_id="workflows_export",
    summary="The definition as a file to import: the draft, or a published `version`",
)
def workflows_export(
    request: HttpRequest, workflow_id: int = Id, version: int | None = Query(None, ge=1, le=2**31)
) -> HttpResponse:
    workflow = _workflow(request, workflow_id)
    if version is None:
        definition = workflow.definition
    else:
        found = workflow.versions.filter(number=version).first()
        if found is None:
            raise Http404("No such version.")
        definition = found.definition
    response = JsonResponse(definition, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.id}.json"'
    return response


# Triggers ----------------------------------------------------------------


@api.get(
    "/workflows/{workflow_id}/triggers",
    response={200: list[TriggerOut], **ERRORS},
    tags=["triggers"],
    operation_id="triggers_list",
)
def triggers_list(request: HttpRequest, workflow_id: int = Id) -> list[dict[str, Any]]:
    return [_trigger_out(trigger) for trigger in _workflow(request, workflow_id).triggers.all()]


@api.post(
    "/workflows/{workflow_id}/triggers",
    response={201: TriggerSecretOut, **ERRORS},
    tags=["triggers"],
    operation_id="triggers_create",
    summary="A new signed webhook trigger; its secret is shown once",
)
def triggers_create(
    request: HttpRequest, workflow_id: int = Id, body: TriggerIn | None = None
) -> Status[dict[str, Any]]:
    workflow = _workflow(request, workflow_id)
    body = body or TriggerIn()
    _check_callback_url(body.callback_url)
    made = triggers.trigger_create(
        workflow=workflow,
        user=_token(request).created_by,
        name=body.name,
        callback_url=body.callback_url,
        rate_limit_per_minute=body.rate_limit_per_minute,
    )
    return Status(201, _trigger_out(made.trigger, made.secret))


@api.post(
    "/workflows/{workflow_id}/triggers/{trigger_id}/rotate",
    response={200: TriggerSecretOut, **ERRORS},
    tags=["triggers"],
    operation_id="triggers_rotate",
    summary="A new secret; the previous one keeps working for 24 hours",
)
def triggers_rotate(
    request: HttpRequest, workflow_id: int = Id, trigger_id: int = Id
) -> dict[str, Any]:
    made = triggers.trigger_rotate(
        trigger=_trigger(request, workflow_id, trigger_id), user=_token(request).created_by
    )
    return _trigger_out(made.trigger, made.secret)


@api.delete(
    "/workflows/{workflow_id}/triggers/{trigger_id}",
    response={204: None, **ERRORS},
    tags=["triggers"],
    operation_id="triggers_delete",
)
def triggers_delete(
    request: HttpRequest, workflow_id: int = Id, trigger_id: int = Id
) -> Status[None]:
    triggers.trigger_delete(
        trigger=_trigger(request, workflow_id, trigger_id), user=_token(request).created_by
    )
    return Status(204, None)


# Runs ----------------------------------------------------------------------


def _api_run_start(
    request: HttpRequest, workflow_id: int, inputs: dict[str, Any], key: str | None
) -> Run:
    workflow = _workflow(request, workflow_id)
    token = _token(request)
    with transaction.atomic():
        return services.run_start(
            workflow=workflow,
            trigger=Run.Trigger.API,
            inputs=inputs,
            user=token.created_by,
            api_token=token,
            idempotency_key=f"api:{key}" if key else None,
        )


@api.post(
    "/workflows/{workflow_id}/runs",
    response={200: RunOut, 202: RunAccepted, **ERRORS},
    tags=["runs"],
    operation_id="runs_start",
    summary="Start a run of the latest published version (optionally waiting for its result)",
)
async def runs_start(
    request: HttpRequest,
    body: RunIn,
    workflow_id: int = Id,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        max_length=MAX_KEY_LENGTH,
        description="The same key returns the same run.",
    ),
) -> HttpResponse:
    run = await sync_to_async(_api_run_start)(
        request, workflow_id, body.inputs, idempotency_key or None
    )
    return await run_answer(run, body.wait)


@api.get(
    "/runs",
    response={200: RunListOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_list",
    summary="Runs of the workspace, newest first (without their steps)",
)
def runs_list(request: HttpRequest, filters: Query[RunFilters]) -> dict[str, Any]:
    runs = Run.objects.select_related("version").filter(workspace_id=_token(request).workspace_id)
    if filters.workflow_id:
        runs = runs.filter(workflow_id=filters.workflow_id)
    if filters.status:
        runs = runs.filter(status=filters.status)
    if filters.trigger:
        runs = runs.filter(trigger=filters.trigger)
    if filters.before:
        runs = runs.filter(id__lt=filters.before)
    page = list(runs.order_by("-id")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [run_json(run, steps=[]) for run in page],
        "next_before": page[-1].id if more and page else None,
    }


@api.get(
    "/runs/{run_id}",
    response={200: RunOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_get",
    summary="A run with its steps (the shape `run_workflow` prints)",
)
def runs_get(request: HttpRequest, run_id: int = Id) -> HttpResponse:
    return JsonResponse(run_json(_run(request, run_id)))


@api.post(
    "/runs/{run_id}/cancel",
    response={200: RunOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_cancel",
    summary="Cancel a queued, running or waiting run (409 if it already finished)",
)
def runs_cancel(request: HttpRequest, run_id: int = Id) -> HttpResponse:
    run = _run(request, run_id)
    if not services.run_cancel(run=run):
        raise HttpError(409, f"The run already finished ({Run.objects.get(id=run.id).status}).")
    run.refresh_from_db()
    return JsonResponse(run_json(run))


# Errors: always JSON {"error", "details"} ----------------------------------------


def _error(
    request: HttpRequest, status: int, error: str, details: object = None, **headers: str
) -> HttpResponse:
    response = api.create_response(request, {"error": error, "details": details}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@api.exception_handler(AuthenticationError)
def _on_unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(
        request,
        401,
        "A valid API token is required: Authorization: Bearer sw_…",
        WWW_Authenticate="Bearer",
    )


@api.exception_handler(ValidationError)
def _on_invalid_request(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _error(request, 422, "The request is not valid.", exc.errors)


@api.exception_handler(HttpError)
def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, str(exc))


@api.exception_handler(Http404)
def _on_not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 404, str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def _on_forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 403, str(exc) or "Not allowed.")


@api.exception_handler(services.WorkflowInvalid)
def _on_workflow_invalid(request: HttpRequest, exc: services.WorkflowInvalid) -> HttpResponse:
    return _error(
        request,
        422,
        "The workflow definition is not valid.",
        [issue.to_dict() for issue in exc.issues],
    )


@api.exception_handler(InputError)
def _on_input_error(request: HttpRequest, exc: InputError) -> HttpResponse:
    return _error(request, 422, str(exc), exc.details)


@api.exception_handler(services.NotPublished)
def _on_not_published(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 409, str(exc))


@api.exception_handler(IntegrityError)
def _on_conflict(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(
        request, 409, "This conflicts with existing data (e.g. a workflow of the same name)."
    )


@api.exception_handler(RequestDataTooBig)
def _on_body_too_large(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Under uvicorn the ASGI limit (config/asgi.py) answers before Django reads
    # anything; this is the same answer where Django itself refuses (WSGI, tests).
    return _error(
        request,
        413,
        f"The request body is larger than {size_label(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}.",
        {"limit_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
    )


@api.exception_handler(Exception)
def _on_internal_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("API error on %s %s", request.method, request.path)
    return _error(request, 500, "Internal error in Stepwise; it was logged.")


# Exempt: the API authenticates with tokens, not cookies, so no CSRF token
# exists; without this a POST to an unknown path got Django's HTML 403 page.
@csrf_exempt
def not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Any other path under /api/v1/: a JSON 404, like the API's own."""
    return JsonResponse({"error": "No such API endpoint.", "details": None}, status=404)


def _as_json_405(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if not isinstance(response, HttpResponseNotAllowed):
        return response
    answer = JsonResponse(
        {
            "error": f"{request.method} is not allowed here (allowed: {response['Allow']}).",
            "details": None,
        },
        status=405,
    )
    answer["Allow"] = response["Allow"]
    return answer


def _json_not_allowed(view: Any) -> Any:
    """`view` (one of ninja's path views) with its plain-text 405 turned into JSON."""
    if iscoroutinefunction(view):

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return _as_json_405(request, await view(request, *args, **kwargs))

        wrapped = async_view
    else:

        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return _as_json_405(request, view(request, *args, **kwargs))

        wrapped = sync_view
    return csrf_exempt(wrapped)
