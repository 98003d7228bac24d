"""Where a GET of a POST-only address goes: the page that holds its form.

A bookmark, Back after a redirect, or an address pasted from the bar GETs a
URL that only takes POST; Django answers 405 with an empty page. Instead,
`FormPageRedirectMiddleware` answers 303 to the page with the form, which
makes its own access checks (an outsider still ends on a 404).
tests/test_post_only_addresses.py walks every URL pattern: a new POST-only
view must be listed here.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

# view name (namespaced) of the POST-only view: (view
# name of its page, the URL arguments that page takes).
_SLUG = ("slug",)
_WORKFLOW = ("slug", "pk")
_TRIGGERS = ("slug", "workflow_id")
_RUN = ("slug", "run_id")
_DATASET = ("slug", "dataset_id")
_EVAL = ("slug", "eval_id")
FORM_PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    # accounts
    "logout": ("home", ()),
    "email_verify_resend": ("signup_sent", ()),
    "admin:logout": ("admin:index", ()),
    "workspace_rename": ("workspace_settings", _SLUG),
    "workspace_budget": ("workspace_settings", _SLUG),
    "workspace_retention": ("workspace_settings", _SLUG),
    "workspace_delete": ("workspace_settings", _SLUG),
    "invitation_create": ("workspace_settings", _SLUG),
    "invitation_revoke": ("workspace_settings", _SLUG),
    "member_role": ("workspace_settings", _SLUG),
    "member_remove": ("workspace_settings", _SLUG),
    "failure_alerts_save": ("failure_alerts", _SLUG),
    "failure_alerts_rotate": ("failure_alerts", _SLUG),
    # the workflows list and the editor
    "workflow_duplicate": ("workspace_home", _SLUG),
    "workflow_archive": ("workspace_home", _SLUG),
    "workflow_unarchive": ("workspace_home", _SLUG),
    "workflow_step_add": ("workflow_editor", _WORKFLOW),
    "workflow_steps_reorder": ("workflow_editor", _WORKFLOW),
    "workflow_step_restore": ("workflow_editor", _WORKFLOW),
    "workflow_step_save": ("workflow_editor", _WORKFLOW),
    "workflow_step_move": ("workflow_editor", _WORKFLOW),
    "workflow_step_delete": ("workflow_editor", _WORKFLOW),
    "workflow_inputs_save": ("workflow_editor", _WORKFLOW),
    "workflow_output_save": ("workflow_editor", _WORKFLOW),
    "workflow_settings_save": ("workflow_editor", _WORKFLOW),
    "workflow_rename": ("workflow_editor", _WORKFLOW),
    "workflow_publish": ("workflow_editor", _WORKFLOW),
    "workflow_test_run": ("workflow_editor", _WORKFLOW),
    "workflow_version_restore": ("workflow_versions", _WORKFLOW),
    # runs
    "run_rerun": ("run_detail", _RUN),
    "run_resume": ("run_detail", _RUN),
    "run_cancel": ("run_detail", _RUN),
    "run_decide": ("run_detail", _RUN),
    "run_delete": ("run_detail", _RUN),
    "workflow_runs_delete": ("run_list", _SLUG),
    # webhooks, schedules, API tokens
    "trigger_create": ("workflow_triggers", _TRIGGERS),
    "workflow_mcp": ("workflow_triggers", _TRIGGERS),
    "trigger_edit": ("workflow_triggers", _TRIGGERS),
    "trigger_rotate": ("workflow_triggers", _TRIGGERS),
    "trigger_delete": ("workflow_triggers", _TRIGGERS),
    "trigger_signing": ("workflow_triggers", _TRIGGERS),
    "schedule_create": ("workflow_triggers", _TRIGGERS),
    "schedule_edit": ("workflow_triggers", _TRIGGERS),
    "schedule_delete": ("workflow_triggers", _TRIGGERS),
    "api_token_create": ("api_tokens", _SLUG),
    "api_token_revoke": ("api_tokens", _SLUG),
    "secret_create": ("secrets", _SLUG),
    "secret_rotate": ("secrets", _SLUG),
    "secret_delete": ("secrets", _SLUG),
    "outbound_hosts": ("secrets", _SLUG),
    # evals and their datasets
    "workspace_publish_rule": ("workspace_settings", _SLUG),
    "eval_start": ("workflow_evals", _WORKFLOW),
    "dataset_from_runs": ("workflow_evals", _WORKFLOW),
    "dataset_upload": ("workflow_evals", _WORKFLOW),
    "eval_check_add": ("workflow_evals", _WORKFLOW),
    "eval_check_delete": ("workflow_evals", _WORKFLOW),
    "dataset_delete": ("dataset_detail", _DATASET),
    "eval_cancel": ("eval_detail", _EVAL),
}


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


class FormPageRedirectMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or request.method not in ("GET", "HEAD"):
            return response
        if getattr(request, "htmx", False):  # a fragment request: a page would land inside the page
            return response
        match = request.resolver_match
        if match is None or match.view_name not in FORM_PAGES:
            return response
        page, arguments = FORM_PAGES[match.view_name]
        try:
            location = reverse(page, kwargs={name: match.kwargs[name] for name in arguments})
        except (KeyError, NoReverseMatch):
            return response
        return HttpResponseSeeOther(location)
