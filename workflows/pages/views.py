"""The workflows page and the editor.

Every view reaches the workspace through `workspace_for` and fetches the
workflow filtered by it (another workspace's id is a 404). Viewers see
everything and may test-run; editing needs the editor role, and the server
refuses it (403) whatever the page showed.

The editor page is one template, workflows/editor.html, whose partials
answer htmx: selecting a card swaps `#panel`; an edit that changes the shape
of the chain (add, move, delete, undo…) swaps the whole `#editor`; autosave
answers with out-of-band pieces only (cards, problems next to each field,
"Saved"), so the field being typed in is never replaced.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import replace_url, trigger_client_event

from accounts.access import AuthedRequest, run_for, workflow_for, workspace_for
from accounts.models import Membership, Role
from workflows import selectors, services
from workflows import steps as step_kinds
from workflows.builder import draft_changes, editing, starters
from workflows.builder.definition import InputError
from workflows.builder.versions import change_summary, definition_diff
from workflows.evals import results as eval_results
from workflows.llm.pricing import format_usd
from workflows.models import Run, Workflow, WorkflowVersion
from workflows.pages import forms
from workflows.pages.editor import (
    EditorState,
    editor_state,
    input_fields,
    picker_variables,
    slots_for,
    step_fields,
    step_template_values,
)

UNDO_SALT = "stepwise.editor.undo"
UNDO_MAX_AGE = 60 * 60
PANELS = ("step", "inputs", "output", "settings", "run", "publish")
EDITOR = "workflows/editor.html"


# --- The workflows page -----------------------------------------------------------


@require_GET
@login_required
def workspace_home(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.VIEWER)
    workspace = membership.workspace
    archived = request.GET.get("archived") == "1"
    return render(
        request,
        "workflows/workflow_list.html",
        {
            "membership": membership,
            "workspace": workspace,
            "workflows": selectors.workflow_rows(workspace, archived=archived),
            "archived": archived,
            "counts": selectors.workflow_counts(workspace),
            "can_edit": membership.allows(Role.EDITOR),
            "blank": starters.BLANK,
            "starters": starters.STARTERS,
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def workflow_new(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = workspace_for(request, slug, role=Role.EDITOR)
    workspace = membership.workspace
    if request.method == "POST":
        starter = starters.starter_for(request.POST.get("starter", ""))
        if starter is None:
            messages.error(
                request, "Choose how to start: a blank workflow or one of the templates."
            )
            return redirect("workflow_new", slug=slug)
        definition = starter.fresh_definition()
        definition["name"] = services.workflow_unique_name(workspace=workspace, name=starter.name)
        workflow = services.workflow_create(
            workspace=workspace, definition=definition, user=request.user
        )
        return redirect(_editor_url(slug, workflow, panel="step", index=0))
    return render(
        request,
        "workflows/workflow_new.html",
        {
            "membership": membership,
            "workspace": workspace,
            "blank": starters.BLANK,
            "starters": starters.STARTERS,
        },
    )


@require_POST
@login_required
def workflow_duplicate(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    copy = services.workflow_duplicate(workflow=workflow, user=request.user)
    messages.success(request, f"Duplicated as “{copy.name}”.")
    return redirect(_editor_url(slug, copy))


@require_POST
@login_required
def workflow_archive(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    services.workflow_archive(workflow=workflow, user=request.user)
    messages.success(request, f"Archived “{workflow.name}”. It keeps its versions and runs.")
    return redirect("workspace_home", slug=slug)


@require_POST
@login_required
def workflow_unarchive(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    services.workflow_unarchive(workflow=workflow, user=request.user)
    messages.success(request, f"“{workflow.name}” is back in the list.")
    return redirect("workspace_home", slug=slug)


@require_http_methods(["GET", "POST"])
@login_required
def workflow_delete(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != workflow.name:
            return render(
                request,
                "workflows/workflow_delete.html",
                {
                    "membership": membership,
                    "workspace": membership.workspace,
                    "workflow": workflow,
                    "counts": selectors.workflow_delete_counts(workflow),
                    "error": "Type the workflow's name exactly to confirm.",
                },
                status=422,
            )
        name = workflow.name
        services.workflow_delete(workflow=workflow, user=request.user)
        messages.success(request, f"Deleted “{name}”.")
        return redirect("workspace_home", slug=slug)
    return render(
        request,
        "workflows/workflow_delete.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "workflow": workflow,
            "counts": selectors.workflow_delete_counts(workflow),
        },
    )


# --- The editor page --------------------------------------------------------------------


def _editor_url(slug: str, workflow: Workflow, *, panel: str = "", index: int | None = None) -> str:
    url = reverse("workflow_editor", args=[slug, workflow.id])
    if panel == "step" and index is not None:
        return f"{url}?panel=step&step={index}"
    return f"{url}?panel={panel}" if panel else url


def _panel_choice(request: AuthedRequest, step_count: int, can_edit: bool) -> tuple[str, int]:
    panel = request.GET.get("panel", "")
    index = _int(request.GET.get("step", "0"), default=0)
    if panel not in PANELS:
        panel = "step" if can_edit and step_count else "run"
    if panel == "step" and not 0 <= index < step_count:
        panel, index = ("inputs", 0) if not step_count else ("step", 0)
    if panel in ("publish", "settings") and not can_edit:
        panel = "run"
    return panel, index


def _editor_context(
    request: AuthedRequest,
    membership: Membership,
    workflow: Workflow,
    *,
    panel: str,
    index: int = 0,
    run: Run | None = None,
    form_errors: dict[str, list[str]] | None = None,
    run_form: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if run is None:
        run, step_runs = selectors.draft_run_latest(workflow, request.user)
    else:
        step_runs = list(run.steps.all())
    state = editor_state(workflow.definition, run, step_runs, workflow=workflow)
    can_edit = membership.allows(Role.EDITOR)
    latest = services.latest_version(workflow)
    context: dict[str, Any] = {
        "membership": membership,
        "workspace": membership.workspace,
        "workflow": workflow,
        "state": state,
        "can_edit": can_edit,
        "latest": latest,
        "unpublished": latest is None or latest.definition != workflow.definition,
        "run": run,
        "run_cost": format_usd(run.cost_nanousd) if run else "",
        "run_output": _run_output(run),
        "panel": panel,
        "panel_index": index,
        "step_kinds": [(kind.TYPE, kind.LABEL, kind.HINT) for kind in step_kinds.KINDS],
        "editor_url": reverse("workflow_editor", args=[membership.workspace.slug, workflow.id]),
        "urls": _editor_urls(membership.workspace.slug, workflow),
        "form_has_errors": bool(form_errors),
        "revision": workflow.draft_revision,
        "sync_url": reverse("workflow_editor_sync", args=[membership.workspace.slug, workflow.id]),
        "oob_fields": set(),
        **(extra or {}),
    }
    if panel == "publish":
        context["publish_eval"] = eval_results.publish_eval(workflow)
        context["evals_url"] = reverse(
            "workflow_evals", args=[membership.workspace.slug, workflow.id]
        )
    if panel == "run" and run_form is None and state.parsed is not None:
        # Start from the inputs of the last test run: trying again is the common case.
        run_form = forms.run_inputs_form(state.parsed, initial=run.inputs if run else None)
    context.update(
        _panel_context(state, workflow, panel, index, latest, form_errors or {}, run_form)
    )
    urls = context["urls"]
    context["save_url"] = {
        "step": f"{urls['steps']}{index}/",
        "inputs": urls["inputs_save"],
        "output": urls["output_save"],
        "settings": urls["settings_save"],
    }.get(panel, "")
    return context


_EDITOR_ACTIONS = (
    "archive",
    "delete",
    "duplicate",
    "inputs_save",
    "output_save",
    "publish",
    "rename",
    "settings_save",
    "step_add",
    "step_restore",
    "steps_reorder",
    "test_run",
    "unarchive",
    "versions",
)


def _editor_urls(slug: str, workflow: Workflow) -> dict[str, str]:
    """The editor's form targets, reversed once per page rather than once per card.

    `steps` is the prefix of the per-step URLs: steps + "3/", + "3/move/", + "3/delete/".
    """
    urls = {name: reverse(f"workflow_{name}", args=[slug, workflow.id]) for name in _EDITOR_ACTIONS}
    urls["steps"] = reverse("workflow_step_save", args=[slug, workflow.id, 0]).removesuffix("0/")
    return urls


def _run_output(run: Run | None) -> str:
    if run is None or run.output is None:
        return ""
    return (
        run.output
        if isinstance(run.output, str)
        else json.dumps(run.output, indent=2, ensure_ascii=False)
    )


def _panel_context(
    state: EditorState,
    workflow: Workflow,
    panel: str,
    index: int,
    latest: WorkflowVersion | None,
    form_errors: dict[str, list[str]],
    run_form: Any,
) -> dict[str, Any]:
    if panel == "step":
        step = state.definition["steps"][index]
        step = step if isinstance(step, dict) else {}
        slots = slots_for(
            step_fields(step), state.step_issues.get(index, []), step_template_values(step)
        )
        _merge_form_errors(slots, form_errors)
        module = step_kinds.kind_of(step)
        return {
            "step": step,
            "card": state.cards[index],
            "kind": module,
            "slots": slots,
            "variables": picker_variables(state, index),
            "targets": editing.later_keys(state.definition, index),
            **(module.panel_context(step, slots, workflow=workflow) if module else {}),
            "fallback_text": forms.fallback_text(step.get("fallback")),
            "slot_list": list(slots.values()),
        }
    if panel == "inputs":
        slots = slots_for(input_fields(state.inputs), state.input_issues)
        _merge_form_errors(slots, form_errors)
        return {
            "slots": slots,
            "input_rows": [
                {
                    "index": i,
                    "spec": spec,
                    "default_text": forms.default_text(spec),
                    "names": {
                        name: f"input-{i}-{name}"
                        for name in ("name", "type", "default", "description", "required")
                    },
                    **{
                        name: slots[f"inputs[{i}].{name}"]
                        for name in ("name", "type", "default", "description")
                    },
                }
                for i, spec in enumerate(state.inputs)
            ],
            "input_types": forms.INPUT_TYPES,
            "slot_list": list(slots.values()),
        }
    if panel == "output":
        slots = slots_for(["output"], state.output_issues, {"output": state.output or ""})
        return {
            "slots": slots,
            "variables": picker_variables(state, len(state.cards)),
            "slot_list": list(slots.values()),
        }
    if panel == "settings":
        slots = slots_for(["name", "description"], state.workflow_issues)
        _merge_form_errors(slots, form_errors)
        return {"slots": slots, "slot_list": list(slots.values())}
    if panel == "run":
        return {"run_form": run_form}
    if panel == "publish":
        previous = latest.definition if latest else None
        return {
            "publish_form": forms.PublishForm(
                initial={"summary": change_summary(previous, state.definition)}
            ),
            "diff": definition_diff(previous, state.definition),
        }
    raise Http404("No such panel.")


def _merge_form_errors(slots: dict, form_errors: dict[str, list[str]]) -> None:
    for name, errors in form_errors.items():
        slot = slots.get(name) or slots["general"]
        slot.messages = [*errors, *(m for m in slot.messages if m not in errors)]


@never_cache
@require_GET
@login_required
def workflow_editor(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.VIEWER)
    step_count = len(editing.steps_of(workflow.definition))
    panel, index = _panel_choice(request, step_count, membership.allows(Role.EDITOR))
    # Presence starts with the first sync poll (3 s
    # later): the page itself stays a constant 10 queries.
    context = _editor_context(request, membership, workflow, panel=panel, index=index)
    # A panel link or "Use theirs" targets #panel: htmx gets that partial, anything else the page.
    panel_only = request.htmx and request.htmx.target == "panel"
    response = render(request, f"{EDITOR}#panel" if panel_only else EDITOR, context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


PRESENCE_SECONDS = 15


@never_cache
@require_GET
@login_required
def workflow_editor_sync(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    """Polled every few seconds by an open editor: who else is here, and what others changed.

    `seen` is the revision the editor last showed, `open` its panel ("step:2",
    "inputs"…). When others wrote since, the answer also carries out-of-band
    pieces: the cards, and in the open panel only the fields they changed
    (the whole panel when its shape changed). The editor keeps a field that
    is being typed in (static/js/editor.js), whose stale base then makes the
    next save of it a conflict instead of a silent overwrite.
    """
    membership, workflow = workflow_for(request, slug, pk, role=Role.VIEWER)
    services.editor_presence_touch(workflow=workflow, user=request.user)
    seen = _int(request.GET.get("seen", ""), default=-1)
    others = selectors.editor_others(workflow, request.user, seconds=PRESENCE_SECONDS)
    context: dict[str, Any] = {
        "workflow": workflow,
        "workspace": membership.workspace,
        "others": others,
        "sync_url": request.path,
        "revision": workflow.draft_revision,
    }
    if seen == workflow.draft_revision or not request.htmx:
        return render(request, f"{EDITOR}#sync", context)
    kind, _, rest = request.GET.get("open", "").partition(":")
    step_count = len(editing.steps_of(workflow.definition))
    panel, index = (kind, _int(rest, default=0)) if kind in PANELS else ("run", 0)
    if panel == "step" and not 0 <= index < step_count:
        panel, index = "inputs", 0
    changed = draft_changes.changed_since(workflow.draft_changes, seen, request.user.pk)
    oob_fields, oob_panel = _panel_refresh(workflow.definition, panel, index, changed)
    # Only what others changed is swapped in: the person's own saves already show, and a swap of
    # the title or the flow would take the focus out of the title or close an open menu.
    extra = {
        "oob_fields": oob_fields,
        "oob_panel": oob_panel,
        "sync_name": "name" in changed,
        "sync_flow": bool(changed - {"name", "description"}),
    }
    context = {
        **_editor_context(request, membership, workflow, panel=panel, index=index, extra=extra),
        **context,
    }
    return render(request, f"{EDITOR}#sync_changes", context)


def _panel_refresh(
    definition: dict, panel: str, index: int, changed: set[str]
) -> tuple[set[str], bool]:
    """Which fields of the open panel others changed
    (by their form names), or True: the whole panel."""
    if not changed:
        return set(), False
    if panel == "step":
        step = editing.steps_of(definition)[index]
        key = editing.step_key(step)
        prefix = f"steps.{key}."
        # A key with a dot (invalid, but a draft may hold it while it is typed) makes paths
        # ambiguous: redraw the whole panel rather than guess which field changed.
        if "." in key or "steps" in changed or prefix + "type" in changed:
            return set(), True
        kind = step_kinds.kind_of(step)
        fields = set()
        for path in changed:
            if path.startswith(prefix):
                # The kind says which of its form fields shows a path (None: the whole panel).
                name = _step_form_name(kind, path[len(prefix) :])
                if name is None:
                    return set(), True
                fields.add(name)
        return fields, False
    if panel == "inputs":
        if "inputs" in changed:
            return set(), True
        return {
            "input-{}-{}".format(*path.split(".")[1:3])
            for path in changed
            if path.startswith("inputs.") and path.count(".") == 2
        }, False
    if panel == "output":
        return set(), "output" in changed
    if panel == "settings":
        return {name for name in ("name", "description") if name in changed}, False
    return set(), False  # the run and publish panels hold what the person is writing: left alone


def _render_editor(
    request: AuthedRequest,
    membership: Membership,
    workflow: Workflow,
    *,
    panel: str,
    index: int = 0,
    status: int = 200,
    toast: str = "",
    focus: str = "",
    undo: dict[str, str] | None = None,
    run: Run | None = None,
    form_errors: dict[str, list[str]] | None = None,
    conflict: services.DraftConflict | None = None,
) -> HttpResponse:
    """After an edit: the whole editor for htmx (and the new URL), else a redirect to it."""
    slug = membership.workspace.slug
    step_count = len(editing.steps_of(workflow.definition))
    if panel == "step" and not 0 <= index < step_count:
        panel, index = ("step", 0) if step_count else ("inputs", 0)
    if not request.htmx:
        if toast:
            messages.success(request, toast)
        if conflict:
            messages.error(request, _conflict_text(conflict) + " Nothing was changed.")
        return redirect(_editor_url(slug, workflow, panel=panel, index=index))
    context = _editor_context(
        request,
        membership,
        workflow,
        panel=panel,
        index=index,
        run=run,
        form_errors=form_errors,
        extra={
            "focus": focus,
            "undo": undo,
            "conflicts": _conflict_notices(conflict, {}, "") if conflict else [],
        },
    )
    response = render(request, f"{EDITOR}#editor", context, status=409 if conflict else status)
    replace_url(response, _editor_url(slug, workflow, panel=panel, index=index))
    if toast:
        trigger_client_event(response, "toast", {"level": "success", "message": toast})
    return response


def _autosaved(
    request: AuthedRequest,
    membership: Membership,
    workflow: Workflow,
    *,
    panel: str,
    index: int = 0,
    form_errors: dict[str, list[str]],
    conflict: services.DraftConflict | None = None,
) -> HttpResponse:
    """The answer to an autosave: out-of-band pieces only (422 when a field could not be read).

    The revision each written field is now based on goes back with it; a
    refused write (409) answers with the conflict instead, naming who changed
    the field, with "Use theirs" and "Keep mine".
    """
    status = 409 if conflict else 422 if form_errors else 200
    if not request.htmx:
        return _render_editor(
            request, membership, workflow, panel=panel, index=index, conflict=conflict
        )
    written = [
        name for name in request.POST if name not in AUTOSAVE_META and not name.startswith("rev-")
    ]
    notices = _conflict_notices(conflict, request.POST, request.path) if conflict else []
    context = _editor_context(
        request,
        membership,
        workflow,
        panel=panel,
        index=index,
        form_errors=form_errors,
        extra={
            "written": [] if conflict else written,
            "conflicts": notices,
            "refused": bool(conflict),
            "keep": "keep" in request.POST,
        },
    )
    response = render(request, f"{EDITOR}#autosave", context, status=status)
    return response


AUTOSAVE_META = (
    "step_key",
    "base",
    "action",
    "focus",
    "csrfmiddlewaretoken",
    "input_count",
    "keep",
)


def _conflict_text(conflict: services.DraftConflict) -> str:
    return " ".join(
        f"{item.name} changed {item.label} {_ago(item.at)}." for item in conflict.conflicts
    )


def _ago(moment: datetime) -> str:
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _conflict_notices(
    conflict: services.DraftConflict, data: Any, save_url: str
) -> list[dict[str, Any]]:
    """One notice per refused field; "Keep mine" re-sends
    the person's value, based on the revision now."""
    notices = []
    for item in conflict.conflicts:
        keep = None
        if save_url and not item.structural:
            names = [
                name
                for name in data
                if name not in AUTOSAVE_META
                and not name.startswith("rev-")
                and _field_path_matches(name, item.path, conflict.workflow.definition)
            ]
            if names:
                values: dict[str, Any] = {name: data.get(name) for name in names}
                values.update({f"rev-{name}": conflict.workflow.draft_revision for name in names})
                if data.get("step_key"):
                    values["step_key"] = data.get("step_key")
                values["keep"] = "1"
                keep = json.dumps(values)
        notices.append(
            {
                "text": f"{item.name} changed {item.label} {_ago(item.at)}.",
                "keep": keep,
                "save_url": save_url,
                "structural": item.structural,
            }
        )
    return notices


def _field_path_matches(name: str, path: str, definition: dict) -> bool:
    """Whether the posted field `name` writes `path`."""
    parts = path.split(".")
    if parts[0] == "steps" and len(parts) > 2:
        at = editing.index_of_key(definition, parts[1])
        kind = step_kinds.kind_of(editing.steps_of(definition)[at]) if at is not None else None
        return _step_path(kind, name) == ".".join(parts[2:])
    if parts[0] == "inputs" and len(parts) > 2:
        return name == f"input-{parts[1]}-{parts[2]}"
    return name == path or (path == "output" and name == "output_mode")


def _base(data: Any, name: str) -> int | None:
    """The revision the posted field `name` was based
    on (its own `rev-…`, else the form's `base`)."""
    for raw in (data.get(f"rev-{name}"), data.get("base")):
        if raw not in (None, ""):
            try:
                return int(raw)
            except ValueError:
                return 0  # unreadable: treat as the oldest, so a conflict is reported, not ignored
    return None


# The panel's fields every step has; the rest belong to its kind.
STEP_FIELDS = ("title", "key", "retries", "on_error", "fallback")


def _step_path(kind: ModuleType | None, name: str) -> str | None:
    """The path under a step that the posted field `name` writes (its kind knows its fields)."""
    if name in STEP_FIELDS:
        return name
    return kind.posted_path(name) if kind else None


def _step_form_name(kind: ModuleType | None, path: str) -> str | None:
    """The form field of the panel that shows `path` under a step; None: the whole panel."""
    if path in STEP_FIELDS or kind is None:
        return path
    form_name: str | None = kind.form_name(path)
    return form_name


def _step_bases(data: Any, key: str, kind: ModuleType | None) -> dict[str, int | None]:
    prefix = f"steps.{key}."
    bases: dict[str, int | None] = {}
    for name in data:
        if (path := _step_path(kind, name)) is not None:
            bases[prefix + path] = _base(data, name)
    if kind and (written := kind.action_path(data.get("action", ""))):
        path, drawn_by = written
        bases[prefix + path] = _base(data, drawn_by)
    return bases


class StepGone(Exception):
    pass


def _drawn_at(data: Any) -> int | None:
    """The revision a posted form was drawn at: the oldest of its fields' `rev-…` and its `base`."""
    revisions = []
    for name, raw in data.items():
        if (name == "base" or name.startswith("rev-")) and raw not in (None, ""):
            try:
                revisions.append(int(raw))
            except (TypeError, ValueError):
                return None
    return min(revisions) if revisions else None


def _step_index(
    workflow: Workflow, index: int, known_key: str, *, drawn_at: int | None = None
) -> tuple[int, str]:
    """The step a form was drawn for: by the key it knew (following renames made since it was
    drawn), else by its place."""
    if known_key:
        key = draft_changes.current_key(workflow.draft_changes or {}, known_key, since=drawn_at)
        found = editing.index_of_key(workflow.definition, key)
        if found is None:
            raise StepGone
        return found, key
    steps = editing.steps_of(workflow.definition)
    if not 0 <= index < len(steps):
        raise Http404("No such step (it may have been deleted). Reload the page.")
    return index, editing.step_key(steps[index])


def _structure_conflict(workflow: Workflow, path: str = "steps") -> services.DraftConflict:
    """A conflict on the list of steps (or inputs) for a form whose step no longer exists."""
    entry = (workflow.draft_changes or {}).get(path) or {}
    found = draft_changes.conflicts({path: entry}, {path: -1}, None) if "user" in entry else []
    if not found:
        found = [
            draft_changes.FieldConflict(
                path=path,
                label=draft_changes.label(path),
                revision=0,
                user_id=None,
                name="Someone",
                at=timezone.now(),
                structural=True,
            )
        ]
    return services.DraftConflict(found, workflow)


@never_cache
@require_POST
@login_required
def workflow_step_save(request: AuthedRequest, slug: str, pk: int, index: int) -> HttpResponse:
    """Autosave of the fields of a step that the person changed; with `action`, also add/remove a
    case or build a schema."""
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    try:
        index, key = _step_index(
            workflow, index, request.POST.get("step_key", ""), drawn_at=_drawn_at(request.POST)
        )
    except StepGone:
        return _render_editor(
            request,
            membership,
            workflow,
            panel="step",
            index=0,
            conflict=_structure_conflict(workflow),
        )
    action = request.POST.get("action", "")
    result: dict[str, Any] = {"errors": {}}

    def edit(definition: dict) -> dict:
        steps = editing.steps_of(definition)
        at = editing.index_of_key(definition, key)
        if at is None:
            raise StepGone
        current = steps[at] if isinstance(steps[at], dict) else {}
        parsed = forms.step_from_post(current, request.POST)
        step, errors = parsed.value, parsed.errors
        module = step_kinds.kind_of(step)
        if action and module is not None:
            previous = editing.step_key(steps[at - 1]) if at > 0 else None
            step = module.apply_action(step, action, request.POST, previous=previous, errors=errors)
        result.update(errors=errors, index=at)
        return editing.step_replace(definition, index=at, step=step)

    try:
        services.workflow_edit_draft(
            workflow=workflow,
            user=request.user,
            edit=edit,
            bases=_step_bases(
                request.POST, key, step_kinds.kind_of(editing.steps_of(workflow.definition)[index])
            ),
        )
    except StepGone:
        return _render_editor(
            request,
            membership,
            workflow,
            panel="step",
            index=0,
            conflict=_structure_conflict(workflow),
        )
    except services.DraftConflict as conflict:
        if action:
            return _render_editor(
                request, membership, workflow, panel="step", index=index, conflict=conflict
            )
        return _autosaved(
            request,
            membership,
            workflow,
            panel="step",
            index=index,
            form_errors={},
            conflict=conflict,
        )
    index, errors = result.get("index", index), result["errors"]
    if action:
        return _render_editor(
            request,
            membership,
            workflow,
            panel="step",
            index=index,
            status=422 if errors else 200,
            form_errors=errors,
            focus=request.POST.get("focus", ""),
        )
    return _autosaved(request, membership, workflow, panel="step", index=index, form_errors=errors)


def _int(text: str, default: int = -1) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _structure_edit(
    request: AuthedRequest,
    workflow: Workflow,
    change: Callable[[dict], tuple[dict, Any]],
    path: str = "steps",
) -> Any:
    """Apply `change(definition) -> (definition, extra)` to the stored draft, refused when someone
    else changed the list of steps (or inputs) after the revision the person's view was drawn at."""
    result: dict[str, Any] = {}

    def edit(definition: dict) -> dict:
        new, result["extra"] = change(definition)
        return new

    services.workflow_edit_draft(
        workflow=workflow, user=request.user, edit=edit, bases={path: _base(request.POST, path)}
    )
    return result["extra"]


@never_cache
@require_POST
@login_required
def workflow_step_add(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    kind = request.POST.get("kind", "")
    position = _int(
        request.POST.get("position", ""), default=len(editing.steps_of(workflow.definition))
    )
    try:
        index = _structure_edit(
            request,
            workflow,
            lambda definition: editing.step_insert(definition, position=position, kind=kind),
        )
    except editing.EditError as error:
        return _edit_refused(request, membership, workflow, str(error))
    except services.DraftConflict as conflict:
        return _render_editor(
            request, membership, workflow, panel="step", index=min(position, 0), conflict=conflict
        )
    return _render_editor(
        request, membership, workflow, panel="step", index=index, focus="#id_title"
    )


@never_cache
@require_POST
@login_required
def workflow_step_move(request: AuthedRequest, slug: str, pk: int, index: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    direction = request.POST.get("direction")
    offset = -1 if direction == "up" else 1
    try:
        new_index = _structure_edit(
            request,
            workflow,
            lambda definition: editing.step_move(definition, index=index, offset=offset),
        )
    except editing.EditError as error:
        return _edit_refused(request, membership, workflow, str(error))
    except services.DraftConflict as conflict:
        return _render_editor(
            request, membership, workflow, panel="step", index=0, conflict=conflict
        )
    # Keep the keyboard on the moved step: the same
    # button, or the other one at the first/last place.
    last = len(editing.steps_of(workflow.definition)) - 1
    button = "up" if offset < 0 else "down"
    if (button == "up" and new_index == 0) or (button == "down" and new_index == last):
        button = "down" if button == "up" else "up"
    return _render_editor(
        request,
        membership,
        workflow,
        panel="step",
        index=new_index,
        focus=f"#move-{button}-{new_index}",
    )


@never_cache
@require_POST
@login_required
def workflow_steps_reorder(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    order = [_int(part) for part in request.POST.get("order", "").split(",") if part.strip()]
    try:
        _structure_edit(
            request, workflow, lambda definition: (editing.steps_reorder(definition, order), None)
        )
    except editing.EditError as error:
        return _edit_refused(request, membership, workflow, str(error))
    except services.DraftConflict as conflict:
        return _render_editor(
            request, membership, workflow, panel="step", index=0, conflict=conflict
        )
    moved = _int(request.POST.get("moved", ""), default=0)
    new_index = order.index(moved) if moved in order else 0
    return _render_editor(request, membership, workflow, panel="step", index=new_index)


@never_cache
@require_POST
@login_required
def workflow_step_delete(request: AuthedRequest, slug: str, pk: int, index: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    try:
        removed = _structure_edit(
            request, workflow, lambda definition: editing.step_remove(definition, index=index)
        )
    except editing.EditError as error:
        return _edit_refused(request, membership, workflow, str(error))
    except services.DraftConflict as conflict:
        return _render_editor(
            request, membership, workflow, panel="step", index=0, conflict=conflict
        )
    token = signing.dumps(
        {"workflow": workflow.id, "index": index, "step": removed}, salt=UNDO_SALT, compress=True
    )
    label = (
        (removed.get("title") or removed.get("key") or f"step {index + 1}")
        if isinstance(removed, dict)
        else f"step {index + 1}"
    )
    steps_left = len(editing.steps_of(workflow.definition))
    return _render_editor(
        request,
        membership,
        workflow,
        panel="step" if steps_left else "inputs",
        index=min(index, max(steps_left - 1, 0)),
        undo={"token": token, "label": str(label)},
        focus="#undo-button",
    )


@never_cache
@require_POST
@login_required
def workflow_step_restore(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    """Undo a delete: put the step back where it was (near it, if the steps changed since)."""
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    try:
        data = signing.loads(request.POST.get("token", ""), salt=UNDO_SALT, max_age=UNDO_MAX_AGE)
    except signing.BadSignature:
        return _edit_refused(request, membership, workflow, "This undo has expired.")
    if data.get("workflow") != workflow.id:
        raise Http404("No such deleted step.")
    result: dict[str, int] = {}

    def edit(definition: dict) -> dict:
        new, result["index"] = editing.step_restore(
            definition, index=data["index"], step=data["step"]
        )
        return new

    services.workflow_edit_draft(workflow=workflow, user=request.user, edit=edit)
    return _render_editor(
        request, membership, workflow, panel="step", index=result["index"], toast="Step restored."
    )


def _edit_refused(
    request: AuthedRequest, membership: Membership, workflow: Workflow, message: str
) -> HttpResponse:
    if not request.htmx:
        messages.error(request, message)
        return redirect(_editor_url(membership.workspace.slug, workflow))
    response = HttpResponse(status=204)
    trigger_client_event(response, "toast", {"level": "error", "message": message})
    return response


def _input_bases(data: Any) -> dict[str, int | None]:
    bases: dict[str, int | None] = {}
    for name in data:
        if match := forms.INPUT_FIELD_RE.match(name):
            bases[f"inputs.{match.group(1)}.{match.group(2)}"] = _base(data, name)
    if "input_count" in data or data.get("action"):
        bases["inputs"] = _base(data, "inputs")
    return bases


@never_cache
@require_POST
@login_required
def workflow_inputs_save(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    action = request.POST.get("action", "")
    result: dict[str, Any] = {}

    def edit(definition: dict) -> dict:
        parsed = forms.inputs_from_post(editing.inputs_of(definition), request.POST)
        result["errors"] = parsed.errors
        definition = editing.inputs_replace(definition, parsed.value)
        if action == "add_input":
            definition = editing.input_add(definition)
        elif action.startswith("remove_input:"):
            with contextlib.suppress(editing.EditError):  # already gone
                definition = editing.input_remove(definition, index=_int(action.split(":", 1)[1]))
        return definition

    try:
        services.workflow_edit_draft(
            workflow=workflow, user=request.user, edit=edit, bases=_input_bases(request.POST)
        )
    except services.DraftConflict as conflict:
        if action:
            return _render_editor(request, membership, workflow, panel="inputs", conflict=conflict)
        return _autosaved(
            request, membership, workflow, panel="inputs", form_errors={}, conflict=conflict
        )
    errors = result["errors"]
    if action:
        focus = (
            f"#id_input-{len(editing.inputs_of(workflow.definition)) - 1}-name"
            if action == "add_input"
            else "#add-input"
        )
        return _render_editor(
            request,
            membership,
            workflow,
            panel="inputs",
            form_errors=errors,
            status=422 if errors else 200,
            focus=focus,
        )
    return _autosaved(request, membership, workflow, panel="inputs", form_errors=errors)


@never_cache
@require_POST
@login_required
def workflow_output_save(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    mode = request.POST.get("output_mode")

    def edit(definition: dict) -> dict:
        current = definition.get("output")
        if mode == "last":
            output = None
        elif "output" in request.POST:
            output = forms.text_value(request.POST, "output")
        else:  # switched to a template, or nothing said: keep the template there is
            output = current if isinstance(current, str) else ""
        return editing.output_set(definition, output)

    base = (
        _base(request.POST, "output")
        if "output" in request.POST
        else _base(request.POST, "output_mode")
    )
    try:
        services.workflow_edit_draft(
            workflow=workflow, user=request.user, edit=edit, bases={"output": base}
        )
    except services.DraftConflict as conflict:
        if request.POST.get("action") == "refresh":
            return _render_editor(request, membership, workflow, panel="output", conflict=conflict)
        return _autosaved(
            request, membership, workflow, panel="output", form_errors={}, conflict=conflict
        )
    if request.POST.get("action") == "refresh":
        return _render_editor(
            request, membership, workflow, panel="output", focus="#id_output_mode"
        )
    return _autosaved(request, membership, workflow, panel="output", form_errors={})


@never_cache
@require_POST
@login_required
def workflow_settings_save(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    errors: dict[str, list[str]] = {}
    name = request.POST.get("name", "").strip()
    if "name" in request.POST:
        form = forms.SettingsForm({"name": name})
        if not form.is_valid():
            errors["name"] = [str(message) for message in form.errors["name"]]
        elif name != workflow.name:
            try:
                services.workflow_name_check(workflow=workflow, name=name)
            except services.WorkflowNameTaken:
                errors["name"] = [f"Another workflow is already called “{name}”."]

    def edit(definition: dict) -> dict:
        new_name = (
            definition.get("name", workflow.name)
            if "name" in errors or "name" not in request.POST
            else name
        )
        description = (
            forms.text_value(request.POST, "description")
            if "description" in request.POST
            else definition.get("description", "")
        )
        return editing.settings_set(definition, name=new_name, description=description)

    bases = {
        field: _base(request.POST, field)
        for field in ("name", "description")
        if field in request.POST and field not in errors
    }
    try:
        services.workflow_edit_draft(workflow=workflow, user=request.user, edit=edit, bases=bases)
    except services.WorkflowNameTaken:  # renamed by someone else at the same moment
        errors["name"] = [f"Another workflow is already called “{name}”."]
    except services.DraftConflict as conflict:
        return _autosaved(
            request, membership, workflow, panel="settings", form_errors={}, conflict=conflict
        )
    return _autosaved(request, membership, workflow, panel="settings", form_errors=errors)


@never_cache
@require_POST
@login_required
def workflow_rename(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    """Rename in place from the editor's title: htmx
    gets the name updated wherever the page shows it."""
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    form = forms.RenameForm(request.POST)
    errors: list[str] = []
    name = form.cleaned_data["name"].strip() if form.is_valid() else ""
    if not form.is_valid():
        errors = [str(message) for messages_ in form.errors.values() for message in messages_]
    elif not name:
        errors = ["A workflow needs a name."]
    elif name != workflow.name:
        try:
            services.workflow_name_check(workflow=workflow, name=name)
        except services.WorkflowNameTaken:
            errors = [f"Another workflow is already called “{name}”."]
    if not errors and name != workflow.name:

        def edit(definition: dict) -> dict:
            # Only the name, applied to the draft as it is stored now: a field someone saved while
            # this request ran is kept, and a name someone else changed since the title was drawn
            # is a conflict, as in the settings panel.
            description = definition.get("description", "")
            return editing.settings_set(
                definition,
                name=name,
                description=description if isinstance(description, str) else "",
            )

        try:
            services.workflow_edit_draft(
                workflow=workflow,
                user=request.user,
                edit=edit,
                bases={"name": _base(request.POST, "name")},
            )
        except services.WorkflowNameTaken:  # renamed by someone else at the same moment
            workflow.refresh_from_db()
            errors = [f"Another workflow is already called “{name}”."]
        except services.DraftConflict as conflict:
            workflow = conflict.workflow
            who = conflict.conflicts[0].name if conflict.conflicts else "Someone"
            errors = [
                f"{who} renamed this workflow meanwhile: it is now “{workflow.name}”. "
                "Rename it again to replace that name."
            ]
    if not request.htmx:
        if errors:
            messages.error(request, " ".join(errors))
        return redirect(_editor_url(slug, workflow))
    context = _editor_context(
        request,
        membership,
        workflow,
        panel="settings",
        extra={"rename_errors": errors, "rename_value": request.POST.get("name", "")},
    )
    return render(request, f"{EDITOR}#renamed", context, status=422 if errors else 200)


# --- Publishing and versions ----------------------------------------------------------------


@never_cache
@require_POST
@login_required
def workflow_publish(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    form = forms.PublishForm(request.POST)
    summary = form.cleaned_data["summary"].strip() if form.is_valid() else ""
    try:
        version = services.workflow_publish(workflow=workflow, user=request.user, summary=summary)
    except services.WorkflowInvalid:
        # The panel lists the problems; nothing was published.
        return _render_editor(request, membership, workflow, panel="publish", status=422)
    except services.EvalRequired as e:
        # The panel shows the draft's latest eval and the rule.
        del e
        return _render_editor(request, membership, workflow, panel="publish", status=409)
    return _render_editor(
        request, membership, workflow, panel="publish", toast=f"Published version {version.number}."
    )


@require_GET
@login_required
def workflow_versions(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.VIEWER)
    versions = selectors.versions_recent(workflow)
    entries = []
    for position, version in enumerate(versions):
        predecessor = versions[position + 1] if position + 1 < len(versions) else None
        entries.append(
            {
                "version": version,
                "diff": definition_diff(
                    predecessor.definition if predecessor else None, version.definition
                ),
                "first": predecessor is None and version.number == 1,
            }
        )
    latest = versions[0] if versions else None
    draft_diff = definition_diff(latest.definition if latest else None, workflow.definition)
    return render(
        request,
        "workflows/versions.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "workflow": workflow,
            "entries": entries,
            "latest": latest,
            "draft_diff": draft_diff,
            "can_edit": membership.allows(Role.EDITOR),
        },
    )


@require_POST
@login_required
def workflow_version_restore(
    request: AuthedRequest, slug: str, pk: int, number: int
) -> HttpResponse:
    membership, workflow = workflow_for(request, slug, pk, role=Role.EDITOR)
    version = selectors.version_of(workflow, number)
    if version is None:
        raise Http404("No such version.")
    before = workflow.definition
    services.workflow_restore_version(workflow=workflow, version=version, user=request.user)
    latest = services.latest_version(workflow)
    if workflow.definition == before:
        messages.info(
            request, f"The draft was already the same as version {version.number}: nothing changed."
        )
    elif latest is not None and latest.number == version.number:
        messages.success(
            request,
            f"Version {version.number} is now the draft again: its unpublished changes "
            "were discarded (the audit log keeps them).",
        )
    else:
        messages.success(
            request, f"Version {version.number} is now the draft. Publish it to make it live."
        )
    return redirect(_editor_url(slug, workflow))


# --- Test runs --------------------------------------------------------------------------------


@never_cache
@require_POST
@login_required
def workflow_test_run(request: AuthedRequest, slug: str, pk: int) -> HttpResponse:
    """Run the draft (every role may): a real run through the workers, shown live on the cards."""
    membership, workflow = workflow_for(request, slug, pk, role=Role.VIEWER)
    parsed, issues = services.definition_check(workflow.definition, workflow=workflow)
    if parsed is None or issues:
        return _render_editor(request, membership, workflow, panel="run", status=422)
    form = forms.run_inputs_form(parsed, request.POST)
    if form.is_valid():
        try:
            run = services.run_start(
                workflow=workflow,
                trigger=Run.Trigger.MANUAL,
                inputs=forms.run_inputs_values(form, parsed),
                user=request.user,
                draft=True,
            )
        except InputError as error:
            for name, message in error.details.items():
                form.add_error(name if name in form.fields else None, message)
        except services.WorkflowInvalid:
            return _render_editor(request, membership, workflow, panel="run", status=422)
        else:
            return _render_editor(
                request, membership, workflow, panel="run", run=run, focus="#run-status"
            )
    context = _editor_context(request, membership, workflow, panel="run", run_form=form)
    return render(request, f"{EDITOR}#editor" if request.htmx else EDITOR, context, status=422)


@never_cache
@require_GET
@login_required
def workflow_test_run_status(
    request: AuthedRequest, slug: str, pk: int, run_id: int
) -> HttpResponse:
    """Polled every second while a test run is going; answers without the trigger once it ends."""
    membership, workflow = workflow_for(request, slug, pk, role=Role.VIEWER)
    run = run_for(membership, run_id)
    if run.workflow_id != workflow.id:
        raise Http404("No such run.")
    step_runs = list(run.steps.all())
    state = editor_state(workflow.definition, run, step_runs, workflow=workflow)
    return render(
        request,
        f"{EDITOR}#run_poll",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "workflow": workflow,
            "state": state,
            "run": run,
            "run_cost": format_usd(run.cost_nanousd),
            "run_output": _run_output(run),
            "can_edit": membership.allows(Role.EDITOR),
            "oob": True,
        },
    )
