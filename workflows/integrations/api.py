"""REST API v1 (django-ninja), mounted at /api/v1/.

Every request carries a workspace token (`Authorization: Bearer sw_…`,
workflows/integrations/api_auth.py) and sees only that workspace: another workspace's
ids answer 404, exactly like ids that do not exist. Every error is JSON
`{"error": message, "details": ...}` with a 4xx status (the handlers at the
end), never an HTML page. Writes call the same services as the web pages.

The OpenAPI document is /api/v1/openapi.json; /api/v1/docs is Swagger UI,
served from django-ninja's own static files (no CDN, our strict CSP).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import IntegrityError, OperationalError, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt
from ninja import Body, Header, NinjaAPI, Path, Query, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.access import dataset_in, eval_in, run_in, workflow_in
from config.lib.body_limit import size_label
from config.lib.outbound import url_refusal
from workflows import retention, selectors, services, sql
from workflows.builder.definition import InputError
from workflows.evals import datasets, execution
from workflows.evals.results import eval_result
from workflows.integrations import stream_slots, triggers
from workflows.integrations.api_auth import WorkspaceToken
from workflows.integrations.run_events import ApiFeed, event_response
from workflows.integrations.webhooks import (
    OVERLOADED_MESSAGE,
    OVERLOADED_RETRY_AFTER_SECONDS,
    wait_for_finish,
)
from workflows.llm.pricing import usd_text
from workflows.models import ApiToken, Run, Trigger, Workflow
from workflows.schemas import (
    ERRORS,
    MAX_ID,
    MAX_KEY_LENGTH,
    DatasetIn,
    DatasetOut,
    DecisionIn,
    ErrorOut,
    EvalAccepted,
    EvalIn,
    EvalOut,
    PublishIn,
    RunAccepted,
    RunExportFilters,
    RunFilters,
    RunIn,
    RunListOut,
    RunOut,
    TriggerIn,
    TriggerOut,
    TriggerSecretOut,
    ValidationOut,
    VersionOut,
    WorkflowDetailOut,
    WorkflowFileOut,
    WorkflowOut,
    dataset_out,
    eval_out,
    run_accepted,
    run_out,
    trigger_out,
    trigger_secret_out,
    validation_out,
    version_out,
    workflow_detail_out,
    workflow_file_out,
    workflow_out,
)

log = logging.getLogger(__name__)

Id = Path(..., ge=1, le=MAX_ID)
JSONL = "application/x-ndjson"


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


# Helpers -------------------------------------------------------------------


def _token(request: HttpRequest) -> ApiToken:
    # ninja sets request.auth to what the authenticator (api_auth) returned: the token.
    token: ApiToken = request.auth  # type: ignore[attr-defined]
    return token


def _workflow(request: HttpRequest, workflow_id: int) -> Workflow:
    return workflow_in(_token(request).workspace_id, workflow_id, archived=False)


def _trigger(request: HttpRequest, workflow_id: int, trigger_id: int) -> Trigger:
    trigger = selectors.trigger_of(_workflow(request, workflow_id), trigger_id)
    if trigger is None:
        raise Http404("No such trigger.")
    return trigger


def _run(request: HttpRequest, run_id: int) -> Run:
    return run_in(_token(request).workspace_id, run_id)


def _check_callback_url(url: str) -> None:
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
def workflows_list(request: HttpRequest) -> list[WorkflowOut]:
    return [
        workflow_out(workflow, services.latest_version(workflow))
        for workflow in selectors.workflows_active(_token(request).workspace_id)
    ]


@api.post(
    "/workflows",
    response={201: WorkflowDetailOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_create",
    summary="Create a workflow from a definition (the workflow format, docs/workflow-format.md)",
)
def workflows_create(
    request: HttpRequest, definition: Body[dict[str, Any]]
) -> Status[WorkflowDetailOut]:
    token = _token(request)
    workflow = services.workflow_create(
        workspace=token.workspace, definition=definition, user=token.created_by
    )
    return Status(201, workflow_detail_out(workflow))


@api.post(
    "/workflows/validate",
    response={200: ValidationOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_validate",
    summary="Check a definition without saving it",
)
def workflows_validate(request: HttpRequest, definition: Body[dict[str, Any]]) -> ValidationOut:
    _, issues = services.definition_check(definition, workspace_id=_token(request).workspace_id)
    return validation_out(issues)


@api.get(
    "/workflows/{workflow_id}",
    response={200: WorkflowDetailOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_get",
)
def workflows_get(request: HttpRequest, workflow_id: int = Id) -> WorkflowDetailOut:
    return workflow_detail_out(_workflow(request, workflow_id))


@api.put(
    "/workflows/{workflow_id}",
    response={200: WorkflowDetailOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_replace",
    summary="Replace the draft (refused unless it validates; `issues` says what keeps it from "
    "being published)",
)
def workflows_replace(
    request: HttpRequest, definition: Body[dict[str, Any]], workflow_id: int = Id
) -> WorkflowDetailOut:
    workflow = _workflow(request, workflow_id)
    # An invalid definition is refused, not stored; what its steps call is in the answer's issues.
    services.definition_parse(definition, workspace_id=workflow.workspace_id)
    services.workflow_save_draft(
        workflow=workflow, definition=definition, user=_token(request).created_by
    )
    return workflow_detail_out(workflow)


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
def workflows_validate_draft(request: HttpRequest, workflow_id: int = Id) -> ValidationOut:
    workflow = _workflow(request, workflow_id)
    _, issues = services.definition_check(workflow.definition, workflow=workflow)
    return validation_out(issues)


@api.post(
    "/workflows/{workflow_id}/publish",
    response={201: VersionOut, **ERRORS},
    tags=["workflows"],
    operation_id="workflows_publish",
    summary="Publish the draft as the next version",
)
def workflows_publish(
    request: HttpRequest, workflow_id: int = Id, body: PublishIn | None = None
) -> Status[VersionOut]:
    version = services.workflow_publish(
        workflow=_workflow(request, workflow_id),
        user=_token(request).created_by,
        summary=body.summary if body else "",
    )
    return Status(201, version_out(version))


@api.get(
    "/workflows/{workflow_id}/export",
    response={200: WorkflowFileOut, **ERRORS},
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
        found = selectors.version_of(workflow, version)
        if found is None:
            raise Http404("No such version.")
        definition = found.definition
    # Returned as a file (indented, attached) rather than through ninja's compact renderer.
    response = JsonResponse(
        workflow_file_out(definition).model_dump(mode="json"),
        json_dumps_params={"indent": 2, "ensure_ascii": False},
    )
    response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.id}.json"'
    return response


# Triggers ----------------------------------------------------------------


@api.get(
    "/workflows/{workflow_id}/triggers",
    response={200: list[TriggerOut], **ERRORS},
    tags=["triggers"],
    operation_id="triggers_list",
)
def triggers_list(request: HttpRequest, workflow_id: int = Id) -> list[TriggerOut]:
    return [trigger_out(trigger) for trigger in _workflow(request, workflow_id).triggers.all()]


@api.post(
    "/workflows/{workflow_id}/triggers",
    response={201: TriggerSecretOut, **ERRORS},
    tags=["triggers"],
    operation_id="triggers_create",
    summary="A new signed webhook trigger; its secret is shown once",
)
def triggers_create(
    request: HttpRequest, workflow_id: int = Id, body: TriggerIn | None = None
) -> Status[TriggerSecretOut]:
    workflow = _workflow(request, workflow_id)
    body = body or TriggerIn.model_validate({})  # the plugin misses ninja Field's defaults
    _check_callback_url(body.callback_url)
    made = triggers.trigger_create(
        workflow=workflow,
        user=_token(request).created_by,
        name=body.name,
        callback_url=body.callback_url,
        rate_limit_per_minute=body.rate_limit_per_minute,
    )
    return Status(201, trigger_secret_out(made.trigger, made.secret))


@api.post(
    "/workflows/{workflow_id}/triggers/{trigger_id}/rotate",
    response={200: TriggerSecretOut, **ERRORS},
    tags=["triggers"],
    operation_id="triggers_rotate",
    summary="A new secret; the previous one keeps working for 24 hours",
)
def triggers_rotate(
    request: HttpRequest, workflow_id: int = Id, trigger_id: int = Id
) -> TriggerSecretOut:
    made = triggers.trigger_rotate(
        trigger=_trigger(request, workflow_id, trigger_id), user=_token(request).created_by
    )
    return trigger_secret_out(made.trigger, made.secret)


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
) -> Status[RunOut] | Status[RunAccepted]:
    run = await sync_to_async(_api_run_start)(
        request, workflow_id, body.inputs, idempotency_key or None
    )
    if body.wait:
        run = await wait_for_finish(run, min(body.wait, settings.RUN_WAIT_MAX_SECONDS))
        if run.is_finished:
            try:
                return Status(200, await sync_to_async(run_out)(run))
            except OperationalError:  # started and finished; no connection to read it: 202
                pass
    return Status(202, run_accepted(run))


@api.get(
    "/runs",
    response={200: RunListOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_list",
    summary="Runs of the workspace, newest first (without their steps)",
)
def runs_list(request: HttpRequest, filters: Query[RunFilters]) -> RunListOut:
    page = selectors.runs_before(
        _token(request).workspace_id,
        workflow_id=filters.workflow_id,
        status=filters.status or "",
        trigger=filters.trigger or "",
        before=filters.before,
        limit=filters.limit + 1,
    )
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return RunListOut(
        items=[run_out(run, steps=[]) for run in page],
        next_before=page[-1].id if more and page else None,
    )


@api.get(
    "/runs/export",
    response={200: None, **ERRORS},
    tags=["runs"],
    operation_id="runs_export",
    summary="Runs of the workspace as JSONL, newest first, with their steps (streamed)",
    description=(
        "One run per line, each the shape `runs_get` answers (a run whose details the "
        "workspace's retention removed says so in `details_removed`), filtered as `runs_list` "
        "is. Served as `application/x-ndjson`, as an attachment: keep runs before the "
        "workspace's retention removes their details."
    ),
    openapi_extra={
        "responses": {
            "200": {
                "description": "One RunOut per line.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            }
        }
    },
)
def runs_export(request: HttpRequest, filters: Query[RunExportFilters]) -> StreamingHttpResponse:
    workspace = _token(request).workspace
    runs = selectors.runs_filtered(
        workspace,
        status=filters.status or "",
        trigger=filters.trigger or "",
        workflow_id=filters.workflow_id,
    )
    response = StreamingHttpResponse(selectors.runs_jsonl(runs), content_type=JSONL)
    response["Content-Disposition"] = f'attachment; filename="runs-{workspace.slug}.jsonl"'
    return response


@api.get(
    "/runs/{run_id}",
    response={200: RunOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_get",
    summary="A run with its steps (the shape `run_workflow` prints)",
)
def runs_get(request: HttpRequest, run_id: int = Id) -> RunOut:
    return run_out(_run(request, run_id))


@api.delete(
    "/runs/{run_id}",
    response={204: None, **ERRORS},
    tags=["runs"],
    operation_id="runs_delete",
    summary="Delete a finished run (409 if it has not finished: cancel it first)",
    description=(
        "Its details (inputs, payload, messages, outputs) are removed for good and it answers "
        "404 from then on; its cost and tokens stay in the workspace's usage and budget. "
        "Audit-logged as the token's creator."
    ),
)
def runs_delete(request: HttpRequest, run_id: int = Id) -> Status[None]:
    run = _run(request, run_id)
    membership = selectors.token_membership(_token(request))
    if membership is None:
        raise PermissionDenied("This token's creator is no longer a member of the workspace.")
    try:
        retention.run_delete(run=run, membership=membership)
    except retention.NotAllowedToDelete as e:
        raise PermissionDenied(str(e)) from None
    except retention.RunNotDeletable as e:
        raise HttpError(409, str(e)) from None
    return Status(204, None)


@api.get(
    "/runs/{run_id}/events",
    response={200: None, **ERRORS, 429: ErrorOut},
    tags=["runs"],
    operation_id="runs_events",
    summary="The run's progress as server-sent events (step.started, token, item.token, "
    "step.finished, run.finished), resumable with Last-Event-ID",
    openapi_extra={
        "responses": {
            "200": {
                "description": '`text/event-stream`: see the README, "Run events"',
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    },
)
async def runs_events(
    request: HttpRequest,
    run_id: int = Id,
    last_event_id: str = Header(
        "",
        alias="Last-Event-ID",
        max_length=40,
        description="The id of the last event received: the stream goes on after it.",
    ),
) -> StreamingHttpResponse:
    run = await sync_to_async(_run)(request, run_id)
    holder = stream_slots.token_holder(_token(request))
    slot = await sync_to_async(stream_slots.take)(holder)
    await sync_to_async(sql.connection_release)(keep_unpooled=False)
    if slot is None:
        raise StreamsExhausted
    return event_response(request, run.id, ApiFeed(last_event_id), slot)


@api.post(
    "/runs/{run_id}/cancel",
    response={200: RunOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_cancel",
    summary="Cancel a queued, running or waiting run (409 if it already finished)",
)
def runs_cancel(request: HttpRequest, run_id: int = Id) -> RunOut:
    run = _run(request, run_id)
    if not services.run_cancel(run=run):
        run.refresh_from_db(fields=["status"])
        raise HttpError(409, f"The run already finished ({run.status}).")
    run.refresh_from_db()
    return run_out(run)


@api.post(
    "/runs/{run_id}/decision",
    response={200: RunOut, **ERRORS},
    tags=["runs"],
    operation_id="runs_decide",
    summary="Approve or reject a run waiting for a decision (an approval step)",
    description=(
        "Decided as the member who created the token, who must have the editor role or above "
        "(and be one of the step's approvers, when it names some): else 403. 409 when the run "
        "does not wait for a decision (someone decided first, it timed out, it finished)."
    ),
)
def runs_decide(request: HttpRequest, body: DecisionIn, run_id: int = Id) -> RunOut:
    run = _run(request, run_id)
    token = _token(request)
    membership = selectors.token_membership(token)
    if membership is None:
        raise PermissionDenied(
            "This token's creator is no longer a member of the workspace, so it cannot decide."
        )
    try:
        services.run_decide(
            run=run, membership=membership, approve=body.approve, comment=body.comment, via="api"
        )
    except services.NotAllowedToDecide as e:
        raise PermissionDenied(str(e)) from None
    except (services.NotWaitingForDecision, services.AlreadyDecided) as e:
        raise HttpError(409, str(e)) from None
    except services.DecisionInvalid as e:
        raise HttpError(422, str(e)) from None
    run.refresh_from_db()
    return run_out(run)


# Datasets and evals (workflows/evals/) ----------------------------------------------


@api.get(
    "/workflows/{workflow_id}/datasets",
    response={200: list[DatasetOut], **ERRORS},
    tags=["evals"],
    operation_id="datasets_list",
)
def datasets_list(request: HttpRequest, workflow_id: int = Id) -> list[DatasetOut]:
    workflow = _workflow(request, workflow_id)
    return [dataset_out(dataset, rows) for dataset, rows in selectors.datasets_of(workflow)]


@api.post(
    "/workflows/{workflow_id}/datasets",
    response={201: DatasetOut, **ERRORS},
    tags=["evals"],
    operation_id="datasets_create",
    summary="Make a dataset from rows or from past runs (all rows stored, or none: 422)",
)
def datasets_create(
    request: HttpRequest, body: DatasetIn, workflow_id: int = Id
) -> Status[DatasetOut]:
    workflow = _workflow(request, workflow_id)
    user = _token(request).created_by
    if (body.rows is None) == (body.from_runs is None):
        raise HttpError(422, 'Give either "rows" or "from_runs".')
    if body.from_runs is not None:
        ids = set(body.from_runs)
        runs = list(
            Run.objects.filter(
                workspace_id=workflow.workspace_id,
                workflow=workflow,
                id__in=ids,
                deleted_at__isnull=True,
            )
        )
        missing = sorted(ids - {run.id for run in runs})
        if missing:
            raise Http404(f"No such runs of this workflow: {missing[:20]}")
        dataset = datasets.dataset_create_from_runs(
            workflow=workflow, name=body.name, runs=runs, user=user, keep_outputs=True
        )
    else:
        rows = [datasets.NewRow(row.inputs, row.expected) for row in body.rows or []]
        dataset = datasets.dataset_create(workflow=workflow, name=body.name, rows=rows, user=user)
    return Status(201, dataset_out(dataset, dataset.rows.count()))


@api.post(
    "/workflows/{workflow_id}/evals",
    response={202: EvalAccepted, **ERRORS},
    tags=["evals"],
    operation_id="evals_start",
    summary="Run the draft and/or versions over a dataset with the workflow's checks",
    description="409 when the estimate exceeds what is left of the month's budget.",
)
def evals_start(request: HttpRequest, body: EvalIn, workflow_id: int = Id) -> Status[EvalAccepted]:
    workflow = _workflow(request, workflow_id)
    dataset = dataset_in(workflow.workspace_id, body.dataset_id)
    if dataset.workflow_id != workflow.id:
        raise Http404("No such dataset of this workflow.")
    evaluation = execution.eval_start(
        workflow=workflow,
        dataset=dataset,
        versions=list(body.versions),
        concurrency=min(body.concurrency, settings.EVAL_MAX_CONCURRENCY),
        user=_token(request).created_by,
    )
    return Status(
        202,
        EvalAccepted(
            id=evaluation.id,
            status=evaluation.status,
            estimate_usd=usd_text(evaluation.estimate_nanousd),
        ),
    )


@api.get(
    "/evals/{eval_id}",
    response={200: EvalOut, **ERRORS},
    tags=["evals"],
    operation_id="evals_get",
    summary="An eval: per target its pass rate, cost and latency, and every row",
)
def evals_get(request: HttpRequest, eval_id: int = Id) -> EvalOut:
    evaluation = eval_in(_token(request).workspace_id, eval_id)
    execution.eval_nudge(evaluation)
    return eval_out(eval_result(evaluation))


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


class StreamsExhausted(Exception):
    """The token holds STREAMS_PER_USER event streams open already: 429."""


@api.exception_handler(StreamsExhausted)
def _on_streams_exhausted(request: HttpRequest, exc: Exception) -> HttpResponse:
    cap = settings.STREAMS_PER_USER
    return _error(
        request,
        429,
        f"This token has {cap} event streams open already: close one first.",
        {"limit": cap, "setting": "STREAMS_PER_USER"},
        Retry_After="10",
    )


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


@api.exception_handler(services.WorkflowNameTaken)
def _on_name_taken(request: HttpRequest, exc: services.WorkflowNameTaken) -> HttpResponse:
    return _error(request, 409, str(exc))


@api.exception_handler(datasets.DatasetInvalid)
def _on_dataset_invalid(request: HttpRequest, exc: datasets.DatasetInvalid) -> HttpResponse:
    return _error(request, 422, exc.message, exc.details())


@api.exception_handler(execution.EvalInvalid)
def _on_eval_invalid(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 422, str(exc))


@api.exception_handler(execution.EvalOverBudget)
def _on_eval_over_budget(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 409, str(exc))


@api.exception_handler(services.EvalRequired)
def _on_eval_required(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 409, str(exc))


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


@api.exception_handler(OperationalError)
def _on_overloaded(request: HttpRequest, exc: Exception) -> HttpResponse:
    # No pooled connection within DB_POOL_WEB_TIMEOUT (or the database is out of
    # reach): nothing was committed; answered as the webhook answers it.
    log.warning("API answered 503 on %s %s: %s", request.method, request.path, exc)
    return _error(
        request,
        503,
        OVERLOADED_MESSAGE.format(seconds=OVERLOADED_RETRY_AFTER_SECONDS),
        Retry_After=str(OVERLOADED_RETRY_AFTER_SECONDS),
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
    wrapped: Callable[..., Any]
    if iscoroutinefunction(view):

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return _as_json_405(request, await view(request, *args, **kwargs))

        wrapped = async_view
    else:

        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return _as_json_405(request, view(request, *args, **kwargs))

        wrapped = sync_view
    return csrf_exempt(wrapped)
