"""The evals pages of a workflow: its datasets, checks and evals; a dataset's rows (edited as a
table); an eval's result (polling itself while it runs) and its CSV export.

Editors and above make datasets and checks and start evals; viewers read (docs/permissions.md).
"""

from __future__ import annotations

import csv
import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.validators import MaxValueValidator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from accounts.access import AuthedRequest, dataset_for, eval_for, workflow_for, workspace_for
from accounts.models import Role
from config.lib.names import validate_name_direction
from workflows import selectors, services
from workflows.billing.usage import month_budget
from workflows.evals import datasets, execution
from workflows.evals.checks import KINDS, CheckInvalid
from workflows.evals.results import eval_result
from workflows.evals.services import check_add, check_delete
from workflows.llm.pricing import format_usd
from workflows.models import Eval, Run

RUN_TRIGGERS = [(t.value, t.label) for t in Run.Trigger if t != Run.Trigger.EVAL]


class FromRunsForm(forms.Form):
    name = forms.CharField(max_length=200, validators=[validate_name_direction])
    trigger = forms.ChoiceField(choices=[("", "Any trigger"), *RUN_TRIGGERS], required=False)
    status = forms.ChoiceField(
        choices=[("", "Any status"), *[(s.value, s.label) for s in Run.Status]], required=False
    )
    count = forms.IntegerField(min_value=1, max_value=1000, initial=50)
    keep_outputs = forms.BooleanField(required=False, initial=True)


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200, validators=[validate_name_direction])
    file = forms.FileField()


class CheckForm(forms.Form):
    name = forms.CharField(max_length=100, validators=[validate_name_direction])
    kind = forms.ChoiceField(choices=list(KINDS.items()))
    # The kind's settings as JSON, e.g. {"pattern": "^yes"} or {"rubric": "..."}.
    config = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class EvalForm(forms.Form):
    dataset = forms.TypedChoiceField(coerce=int)
    targets = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    concurrency = forms.IntegerField(min_value=1, initial=4)
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, workflow: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        dataset_field: Any = self.fields["dataset"]
        dataset_field.choices = [(d.id, d.name) for d in workflow.datasets.all()]
        numbers = list(workflow.versions.order_by("-number").values_list("number", flat=True))
        choices = [(execution.DRAFT, "Draft")] + [
            (str(n), f"Version {n}" + (" (live)" if i == 0 else "")) for i, n in enumerate(numbers)
        ]
        targets_field: Any = self.fields["targets"]
        targets_field.choices = choices
        self.fields["targets"].initial = [execution.DRAFT] + [str(n) for n in numbers[:1]]
        # Refused before the estimate, not after it (the input's max says it too).
        concurrency: Any = self.fields["concurrency"]
        concurrency.max_value = settings.EVAL_MAX_CONCURRENCY
        concurrency.validators.append(MaxValueValidator(settings.EVAL_MAX_CONCURRENCY))
        concurrency.widget.attrs["max"] = settings.EVAL_MAX_CONCURRENCY


def _errors(form: forms.Form) -> list[str]:
    """A form's errors as sentences naming their field (shown at the top of the page)."""
    return [
        str(message) if name == "__all__" else f"{form[name].label}: {message}"
        for name, messages_ in form.errors.items()
        for message in messages_
    ]


def _refilled(form: forms.Form, **kwargs: Any) -> forms.Form:
    """The form again, unbound, holding what was typed: a typo in a check's settings or a
    dataset's name costs a correction, not the whole form (a file cannot be given back)."""
    initial: dict[str, object] = {}
    data: Any = form.data  # the request's QueryDict
    for name, field in form.fields.items():
        if isinstance(field.widget, forms.HiddenInput) or isinstance(field, forms.FileField):
            continue
        if isinstance(field, forms.MultipleChoiceField):
            initial[name] = data.getlist(name)
        elif isinstance(field, forms.BooleanField):
            initial[name] = bool(data.get(name))
        else:
            initial[name] = data.get(name, "")
    return type(form)(initial=initial, auto_id=form.auto_id, **kwargs)


def _from_runs_initial(query: Any) -> dict[str, object]:
    """The runs list's filters carried over by its "Make a dataset of these runs" link."""
    trigger = query.get("trigger", "") if query.get("trigger") in dict(RUN_TRIGGERS) else ""
    status = query.get("status", "") if query.get("status") in Run.Status.values else ""
    label = dict(RUN_TRIGGERS).get(trigger, "").lower()
    return {
        "name": f"Last 50 {label + ' ' if label else ''}runs",
        "trigger": trigger,
        "status": status,
        "count": 50,
        "keep_outputs": True,
    }


def _page(request: AuthedRequest, slug: str, pk: int, **extra: Any) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.VIEWER)
    context = {
        "membership": membership,
        "workspace": membership.workspace,
        "workflow": workflow,
        "can_edit": membership.allows(Role.EDITOR),
        "datasets": list(workflow.datasets.all()),
        "checks": [
            {"check": c, "label": KINDS.get(c.kind, c.kind), "config": json.dumps(c.config)}
            for c in workflow.eval_checks.all()
        ],
        "max_rows": settings.DATASET_MAX_ROWS,
        "evals": list(workflow.evals.all()[:20]),
        # Four forms on one page: each its own ids (the fields' names stay plain).
        "from_runs_form": FromRunsForm(initial=_from_runs_initial(request.GET), auto_id="runs_%s"),
        "upload_form": UploadForm(auto_id="upload_%s"),
        "check_form": CheckForm(auto_id="check_%s"),
        "eval_form": EvalForm(workflow=workflow, auto_id="eval_%s"),
        **extra,
    }
    status = 422 if extra.get("errors") else 200
    return render(request, "workflows/evals/evals.html", context, status=status)


@require_GET
@login_required
def workflow_evals(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    return _page(request, slug, pk)


@require_POST
@login_required
def dataset_from_runs(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    form = FromRunsForm(request.POST, auto_id="runs_%s")
    if not form.is_valid():
        return _page(request, slug, pk, errors=_errors(form), from_runs_form=_refilled(form))
    runs = list(
        selectors.runs_filtered(
            membership.workspace,
            workflow_id=workflow.id,
            trigger=form.cleaned_data["trigger"],
            status=form.cleaned_data["status"],
        ).exclude(trigger=Run.Trigger.EVAL)[: form.cleaned_data["count"]]
    )
    runs = list(Run.objects.filter(id__in=[r.id for r in runs]))  # with inputs and outputs
    try:
        dataset = datasets.dataset_create_from_runs(
            workflow=workflow,
            name=form.cleaned_data["name"],
            runs=runs,
            user=request.user,
            keep_outputs=form.cleaned_data["keep_outputs"],
        )
    except datasets.DatasetInvalid as e:
        return _page(request, slug, pk, errors=[e.message], from_runs_form=_refilled(form))
    messages.success(request, f"Dataset made from {len(runs)} runs.")
    return redirect("dataset_detail", slug, dataset.id)


@require_POST
@login_required
def dataset_upload(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    _, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    form = UploadForm(request.POST, request.FILES, auto_id="upload_%s")
    if not form.is_valid():
        return _page(request, slug, pk, errors=_errors(form), upload_form=_refilled(form))
    upload = form.cleaned_data["file"]
    try:
        dataset = datasets.dataset_import(
            workflow=workflow,
            name=form.cleaned_data["name"],
            filename=upload.name or "",
            data=upload.read(settings.DATASET_MAX_UPLOAD_BYTES + 1),
            user=request.user,
        )
    except datasets.DatasetInvalid as e:
        problems = [e.message, *[str(p) for p in e.problems]]
        return _page(request, slug, pk, errors=problems, upload_form=_refilled(form))
    messages.success(request, "Dataset imported.")
    return redirect("dataset_detail", slug, dataset.id)


@require_POST
@login_required
def eval_check_add(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    _, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    form = CheckForm(request.POST, auto_id="check_%s")
    if not form.is_valid():
        return _page(request, slug, pk, errors=_errors(form), check_form=_refilled(form))
    try:
        config = json.loads(form.cleaned_data["config"] or "{}")
        if not isinstance(config, dict):
            raise CheckInvalid("The settings must be a JSON object.")
        check_add(
            workflow=workflow,
            name=form.cleaned_data["name"],
            kind=form.cleaned_data["kind"],
            config=config,
        )
    except (ValueError, RecursionError):
        refill = _refilled(form)
        return _page(
            request, slug, pk, errors=["The settings are not valid JSON."], check_form=refill
        )
    except CheckInvalid as e:
        return _page(request, slug, pk, errors=[str(e)], check_form=_refilled(form))
    return redirect("workflow_evals", slug, pk)


@require_POST
@login_required
def eval_check_delete(request: AuthedRequest, slug: str, pk: int, check_id: int) -> HttpResponse:
    _, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    check = workflow.eval_checks.filter(id=check_id).first()
    if check is None:
        raise Http404("No such check.")
    check_delete(check=check)
    return redirect("workflow_evals", slug, pk)


@require_POST
@login_required
def eval_start(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    """First the estimate (a confirmation), then, confirmed, the eval."""
    _, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    form = EvalForm(request.POST, workflow=workflow, auto_id="eval_%s")
    if not form.is_valid():
        refill = _refilled(form, workflow=workflow)
        return _page(request, slug, pk, errors=_errors(form), eval_form=refill)
    dataset = workflow.datasets.get(id=form.cleaned_data["dataset"])
    wanted: list[str | int] = list(form.cleaned_data["targets"])
    try:
        if not form.cleaned_data["confirmed"]:
            if execution.DRAFT in wanted:  # said now, not after the estimate
                services.definition_parse(workflow.definition, workflow=workflow)
            targets = execution.targets_of(workflow, wanted)
            cost = execution.estimate(workflow=workflow, dataset=dataset, targets=targets)
            # Said with the estimate, not after "Start" (the start is what refuses it).
            left = month_budget(workflow.workspace).free_nanousd
            return _page(
                request,
                slug,
                pk,
                confirm={
                    "dataset": dataset,
                    "targets": targets,
                    "values": wanted,
                    "concurrency": form.cleaned_data["concurrency"],
                    "runs": cost.rows * len(targets),
                    "estimate": cost,
                    "total": format_usd(cost.total_nanousd),
                    "judge": format_usd(cost.judge_nanousd),
                    "over_budget": left is not None and cost.total_nanousd > left,
                    "left": format_usd(left or 0),
                },
            )
        evaluation = execution.eval_start(
            workflow=workflow,
            dataset=dataset,
            versions=wanted,
            concurrency=form.cleaned_data["concurrency"],
            user=request.user,
        )
    except (execution.EvalInvalid, execution.EvalOverBudget) as e:
        return _page(request, slug, pk, errors=[str(e)])
    except services.WorkflowInvalid as e:
        return _page(
            request,
            slug,
            pk,
            errors=[
                "The draft has problems: fix them in the editor first.",
                *map(str, e.issues[:8]),
            ],
        )
    return redirect("eval_detail", slug, evaluation.id)


@require_http_methods(["GET", "POST"])
@login_required
def dataset_detail(request: AuthedRequest, slug: str, dataset_id: int) -> HttpResponse:
    """The rows as a table; editors save it whole (a row left blank is dropped)."""
    membership = workspace_for(request, slug, role=Role.VIEWER)
    dataset = dataset_for(membership, dataset_id)
    workflow = dataset.workflow
    names = [i["name"] for i in workflow.definition.get("inputs", []) if isinstance(i, dict)]
    errors: list[str] = []
    if request.method == "POST":
        workflow_for(request, slug, workflow.id, role=Role.EDITOR)
        try:
            datasets.dataset_rows_save(dataset=dataset, rows=_rows_from_post(request.POST, names))
        except datasets.DatasetInvalid as e:
            errors = [e.message, *[str(p) for p in e.problems]]
        else:
            messages.success(request, "Rows saved.")
            return redirect("dataset_detail", slug, dataset.id)
    rows = [
        {
            "cells": [(name, _cell(row.inputs.get(name))) for name in names],
            "expected": _cell(row.expected),
            "run_id": row.source_run_id,
        }
        for row in dataset.rows.all()
    ]
    return render(
        request,
        "workflows/evals/dataset.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "workflow": workflow,
            "dataset": dataset,
            "names": names,
            "rows": rows,
            "errors": errors,
            "can_edit": membership.allows(Role.EDITOR),
        },
        status=422 if errors else 200,
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _rows_from_post(post: Any, names: list[str]) -> list[datasets.NewRow]:
    rows: list[datasets.NewRow] = []
    try:
        count = min(int(post.get("row_count") or 0), 10_000)
    except ValueError:  # not the page's form: its hidden field holds a number
        count = 0
    for n in range(count + 1):
        inputs = {name: post.get(f"r{n}-{name}", "") for name in names}
        expected = post.get(f"r{n}-expected", "")
        if post.get(f"r{n}-delete") or not any([*inputs.values(), expected]):
            continue
        rows.append(datasets.NewRow(inputs, datasets.expected_cell(expected)))
    return rows


@require_POST
@login_required
def dataset_delete(request: AuthedRequest, slug: str, dataset_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.EDITOR)
    dataset = dataset_for(membership, dataset_id)
    datasets.dataset_delete(dataset=dataset)
    return redirect("workflow_evals", slug, dataset.workflow_id)


@require_GET
@login_required
def eval_detail(request: AuthedRequest, slug: str, eval_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    evaluation = eval_for(membership, eval_id)
    execution.eval_nudge(evaluation)
    result = eval_result(evaluation)
    context = {
        "membership": membership,
        "workspace": membership.workspace,
        "workflow": evaluation.workflow,
        "evaluation": evaluation,
        "result": result,
        "can_edit": membership.allows(Role.EDITOR),
        "running": evaluation.status == Eval.Status.RUNNING,
    }
    if request.htmx and request.htmx.target == "eval-live":
        if not context["running"]:
            return HttpResponseStopPolling(
                render(request, "workflows/evals/eval.html#eval_live", context).content
            )
        return render(request, "workflows/evals/eval.html#eval_live", context)
    return render(request, "workflows/evals/eval.html", context)


@require_POST
@login_required
def eval_cancel(request: AuthedRequest, slug: str, eval_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.EDITOR)
    evaluation = eval_for(membership, eval_id)
    execution.eval_cancel(evaluation=evaluation)
    return redirect("eval_detail", slug, evaluation.id)


def csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab or a carriage
    return) gets a leading apostrophe (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@require_GET
@login_required
def eval_export(request: AuthedRequest, slug: str, eval_id: int) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    evaluation = eval_for(membership, eval_id)
    result = eval_result(evaluation)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="eval-{evaluation.id}.csv"'
    writer = csv.writer(response)
    check_names = [c["name"] for c in evaluation.checks]
    writer.writerow(
        [
            "row",
            "target",
            "inputs",
            "expected",
            "output",
            "passed",
            *(csv_safe(name) for name in check_names),  # an editor names checks
            "cost_usd",
            "judge_cost_usd",
            "tokens_in",
            "tokens_out",
            "latency_ms",
            "run_id",
        ]
    )
    for row in result.rows:
        for cell in row.cells:
            verdicts = {r["name"]: r for r in cell.results}
            writer.writerow(
                [
                    csv_safe(v)
                    for v in [
                        row.position,
                        cell.target,
                        json.dumps(row.inputs, ensure_ascii=False),
                        _cell(row.expected),
                        cell.output,
                        "" if cell.passed is None else ("pass" if cell.passed else "fail"),
                        *[
                            (
                                ("pass: " if verdicts[n]["passed"] else "fail: ")
                                + str(verdicts[n]["reason"])
                            )
                            if n in verdicts
                            else ""
                            for n in check_names
                        ],
                        format_usd(cell.cost_nanousd),
                        format_usd(cell.judge_cost_nanousd),
                        cell.tokens_in,
                        cell.tokens_out,
                        "" if cell.latency_ms is None else cell.latency_ms,
                        cell.run_id or "",
                    ]
                ]
            )
    return response
