"""The triggers page of a workflow: its webhooks and schedules.

Every member sees a workflow's triggers page; admins and owners manage its
webhooks and schedules; only owners may switch
a webhook to unsigned. Webhook URLs are capabilities, so only admins and
owners see them. A new secret is shown once: the POST that made it
redirects to the page, which shows it on its next GET only
(workflows/integrations/shown_once.py: held encrypted in the session in between, never in
clear). These pages answer `Cache-Control: no-store`, so neither Back nor a
reload brings a secret back from a cache or posts the form again.
"""

from __future__ import annotations

import json
import zoneinfo
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from accounts.access import AuthedRequest, workflow_for
from accounts.models import Membership, Role
from config.lib.names import validate_name_direction
from config.lib.outbound import url_refusal
from config.lib.site import site_url
from workflows import selectors, services
from workflows.integrations import schedules, triggers
from workflows.integrations.mcp_exposure import workflow_mcp_expose
from workflows.integrations.shown_once import shown_once_keep, shown_once_take
from workflows.models import Schedule, Trigger, Workflow

RECENT_DELIVERIES = 25


# Forms ---------------------------------------------------------------------


class TriggerForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="For you: e.g. the system that calls it.",
        validators=[validate_name_direction],
    )
    callback_url = forms.URLField(
        max_length=2000,
        required=False,
        assume_scheme="https",
        label="Callback URL",
        help_text="Each run's result is POSTed here, signed with this webhook's secret. "
        "A request can name its own with ?callback_url=.",
    )
    rate_limit_per_minute = forms.IntegerField(
        min_value=1, max_value=100_000, initial=60, label="Rate limit (requests per minute)"
    )

    def clean_callback_url(self) -> str:
        url: str = self.cleaned_data["callback_url"]
        refusal = url_refusal(url) if url else None
        if refusal:
            raise forms.ValidationError(refusal)
        return url


class ScheduleForm(forms.Form):
    cron = forms.CharField(
        max_length=100, help_text="Five fields: minute hour day month weekday, e.g. 0 9 * * 1-5."
    )
    time_zone = forms.CharField(
        max_length=64,
        initial="UTC",
        label="Time zone",
        help_text="An IANA name such as Europe/Paris.",
    )
    inputs = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        initial="{}",
        help_text="A JSON object with the run's inputs.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_inputs(self) -> dict[str, Any]:
        raw = self.cleaned_data["inputs"].strip() or "{}"
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("This is not valid JSON.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Inputs must be a JSON object, e.g. {"topic": "otters"}.')
        return value


# Helpers -------------------------------------------------------------------


def _example_body(workflow: Workflow) -> str:
    version = services.latest_version(workflow)
    inputs = (version.definition if version else workflow.definition).get("inputs") or []
    samples = {"text": "Hello from my system", "number": 1, "boolean": True, "json": {"id": 7}}
    body = {
        item.get("name", "input"): samples.get(item.get("type", "text"), "")
        for item in inputs
        if isinstance(item, dict)
    }
    return json.dumps(body or {"message": "Hello"})


def _schedule_rows(items: list[Schedule]) -> list[dict[str, Any]]:
    rows = []
    for schedule in items:
        upcoming = []
        if schedule.enabled:
            try:
                upcoming = schedules.next_times(
                    schedule.cron, schedule.time_zone, timezone.now(), count=3
                )
            except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError):
                upcoming = []
        rows.append(
            {
                "schedule": schedule,
                (
                    "upcoming"
                ): upcoming,  # UTC; the template shows them in the schedule's own time zone
                "inputs_json": json.dumps(schedule.inputs, ensure_ascii=False),
                "form": ScheduleForm(
                    prefix=f"s{schedule.id}",
                    initial={
                        "cron": schedule.cron,
                        "time_zone": schedule.time_zone,
                        "inputs": json.dumps(schedule.inputs),
                        "enabled": schedule.enabled,
                    },
                ),
            }
        )
    return rows


def _render_triggers(
    request: HttpRequest,
    membership: Membership,
    workflow: Workflow,
    *,
    status: int = 200,
    new_secret: triggers.TriggerWithSecret | None = None,
    trigger_form: TriggerForm | None = None,
    schedule_form: ScheduleForm | None = None,
    schedule_errors: dict[int, ScheduleForm] | None = None,
) -> HttpResponse:
    manage = membership.allows(Role.ADMIN)
    trigger_list = list(workflow.triggers.all())
    rows = _schedule_rows(selectors.schedules_of(workflow))
    for row in rows:
        if schedule_errors and row["schedule"].id in schedule_errors:
            row["form"] = schedule_errors[row["schedule"].id]
            row["open"] = True
    deliveries = selectors.deliveries_recent(workflow, limit=RECENT_DELIVERIES)
    first_url = trigger_list[0].url(request) if trigger_list and manage else None
    context = {
        "membership": membership,
        "workspace": membership.workspace,
        "workflow": workflow,
        "published": services.latest_version(workflow),
        "manage": manage,
        "is_owner": membership.allows(Role.OWNER),
        "triggers": [
            {
                "trigger": t,
                "url": t.url(request) if manage else None,
                "form": TriggerForm(
                    prefix=f"t{t.id}",
                    initial={
                        "name": t.name,
                        "callback_url": t.callback_url,
                        "rate_limit_per_minute": t.rate_limit_per_minute,
                    },
                ),
            }
            for t in trigger_list
        ],
        "new_secret": new_secret,
        "trigger_form": trigger_form or TriggerForm(),
        "schedule_form": schedule_form or ScheduleForm(),
        "schedules": rows,
        "deliveries": deliveries,
        "example_url": (new_secret and new_secret.trigger.url(request))
        or first_url
        or "https://stepwise.example.com/hooks/YOUR_TRIGGER_ID",
        "example_secret": new_secret.secret if new_secret else "whsec_YOUR_SECRET",
        "example_body": _example_body(workflow),
        "now": timezone.now(),
        "mcp_url": f"{site_url(request)}/mcp",
    }
    response = render(request, "workflows/triggers.html", context, status=status)
    add_never_cache_headers(
        response
    )  # webhook URLs are capabilities, and a new secret shows here once
    return response


def _show_secret(
    request: HttpRequest, slug: str, workflow: Workflow, made: triggers.TriggerWithSecret
) -> HttpResponse:
    page = reverse("workflow_triggers", args=[slug, workflow.id])
    shown_once_keep(request, page=page, object_id=made.trigger.id, secret=made.secret)
    response = redirect(f"{page}#new-secret")
    response.status_code = 303
    return response


def _back_to_triggers(
    request: HttpRequest, slug: str, workflow: Workflow, *, success: str
) -> HttpResponse:
    messages.success(request, success)
    return redirect("workflow_triggers", slug, workflow.id)


def _trigger_of(workflow: Workflow, trigger_id: int) -> Trigger:
    trigger = selectors.trigger_of(workflow, trigger_id)
    if trigger is None:
        raise Http404("No such trigger.")
    return trigger


def _schedule_of(workflow: Workflow, schedule_id: int) -> Schedule:
    schedule = selectors.schedule_of(workflow, schedule_id)
    if schedule is None:
        raise Http404("No such schedule.")
    return schedule


# The triggers page -------------------------------------------------------------


@login_required
@require_GET
def workflow_triggers(request: AuthedRequest, slug: str, workflow_id: int) -> HttpResponse:
    membership, workflow = workflow_for(
        request, slug, workflow_id, role=Role.VIEWER, archived=False
    )
    new_secret = None
    held = shown_once_take(request, page=request.path)
    if held is not None and membership.allows(Role.ADMIN):
        trigger = selectors.trigger_of(workflow, held.object_id)
        if trigger is not None:
            new_secret = triggers.TriggerWithSecret(trigger=trigger, secret=held.secret)
    return _render_triggers(request, membership, workflow, new_secret=new_secret)


@login_required
@require_POST
def trigger_create(request: AuthedRequest, slug: str, workflow_id: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    form = TriggerForm(request.POST)
    if not form.is_valid():
        return _render_triggers(request, membership, workflow, status=422, trigger_form=form)
    made = triggers.trigger_create(workflow=workflow, user=request.user, **form.cleaned_data)
    return _show_secret(request, slug, workflow, made)


@login_required
@require_POST
def trigger_edit(
    request: AuthedRequest, slug: str, workflow_id: int, trigger_id: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    trigger = _trigger_of(workflow, trigger_id)
    form = TriggerForm(request.POST, prefix=f"t{trigger.id}")
    if not form.is_valid():
        messages.error(
            request,
            "The webhook was not changed: "
            + "; ".join(
                f"{form.fields[name].label or name}: {' '.join(map(str, errors))}"
                for name, errors in form.errors.items()
            ),
        )
        return redirect("workflow_triggers", slug, workflow.id)
    triggers.trigger_update(trigger=trigger, user=request.user, **form.cleaned_data)
    return _back_to_triggers(request, slug, workflow, success="Webhook settings saved.")


@login_required
@require_POST
def trigger_rotate(
    request: AuthedRequest, slug: str, workflow_id: int, trigger_id: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    made = triggers.trigger_rotate(trigger=_trigger_of(workflow, trigger_id), user=request.user)
    return _show_secret(request, slug, workflow, made)


@login_required
@require_POST
def trigger_delete(
    request: AuthedRequest, slug: str, workflow_id: int, trigger_id: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    triggers.trigger_delete(trigger=_trigger_of(workflow, trigger_id), user=request.user)
    return _back_to_triggers(
        request, slug, workflow, success="Webhook deleted: its URL no longer starts runs."
    )


@login_required
@require_POST
def trigger_signing(
    request: AuthedRequest, slug: str, workflow_id: int, trigger_id: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.OWNER, archived=False)
    required = request.POST.get("signing_required") == "on"
    triggers.trigger_set_signing(
        trigger=_trigger_of(workflow, trigger_id), required=required, user=request.user
    )
    if required:
        messages.success(request, "Signatures are required again.")
    else:
        messages.warning(
            request,
            "This webhook now accepts unsigned requests: anyone with its URL can start runs.",
        )
    return redirect("workflow_triggers", slug, workflow.id)


@login_required
@require_POST
def workflow_mcp(request: AuthedRequest, slug: str, workflow_id: int) -> HttpResponse:
    """Expose the workflow as an MCP tool of the workspace's API tokens, or stop."""
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    exposed = request.POST.get("mcp_exposed") == "on"
    workflow_mcp_expose(workflow=workflow, exposed=exposed, user=request.user)
    if exposed:
        messages.success(
            request,
            f"“{workflow.name}” is the MCP tool {workflow.mcp_name} of this workspace's tokens.",
        )
    else:
        messages.success(request, f"“{workflow.name}” is no longer an MCP tool.")
    return redirect("workflow_triggers", slug, workflow.id)


def _schedule_form_checked(form: ScheduleForm, workflow: Workflow) -> bool:
    """Validate the form and the schedule's own rules together, so every problem shows at once."""
    form.is_valid()
    cleaned = getattr(form, "cleaned_data", {})
    problems = schedules.schedule_problems(
        workflow=workflow,
        cron=cleaned.get("cron", form["cron"].value() or ""),
        time_zone=cleaned.get("time_zone", form["time_zone"].value() or ""),
        inputs=cleaned.get("inputs"),
    )
    for field, message in problems.items():
        if field not in form.errors:
            form.add_error(field, message)
    return not form.errors


@login_required
@require_POST
def schedule_create(request: AuthedRequest, slug: str, workflow_id: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    form = ScheduleForm(request.POST)
    if _schedule_form_checked(form, workflow):
        try:
            schedules.schedule_create(workflow=workflow, user=request.user, **form.cleaned_data)
        except schedules.ScheduleInvalid as e:
            form.add_error(e.field, e.message)
    if not form.is_valid():
        return _render_triggers(request, membership, workflow, status=422, schedule_form=form)
    return _back_to_triggers(request, slug, workflow, success="Schedule added.")


@login_required
@require_POST
def schedule_edit(
    request: AuthedRequest, slug: str, workflow_id: int, schedule_id: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    schedule = _schedule_of(workflow, schedule_id)
    form = ScheduleForm(request.POST, prefix=f"s{schedule.id}")
    if _schedule_form_checked(form, workflow):
        try:
            schedules.schedule_update(schedule=schedule, user=request.user, **form.cleaned_data)
        except schedules.ScheduleInvalid as e:
            form.add_error(e.field, e.message)
    if not form.is_valid():
        return _render_triggers(
            request, membership, workflow, status=422, schedule_errors={schedule.id: form}
        )
    return _back_to_triggers(request, slug, workflow, success="Schedule saved.")


@login_required
@require_POST
def schedule_delete(
    request: AuthedRequest, slug: str, workflow_id: int, schedule_id: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, workflow_id, role=Role.ADMIN, archived=False)
    schedules.schedule_delete(schedule=_schedule_of(workflow, schedule_id), user=request.user)
    return _back_to_triggers(request, slug, workflow, success="Schedule deleted.")
