"""The permission matrix, checked over EVERY workspace URL of the URL configuration.

The URL patterns are walked from `get_resolver()`, so a view added tomorrow
is probed without anyone remembering to list it here:

- an outsider (a member of another workspace) gets 404, whatever the method;
- an anonymous visitor is sent to log in;
- a member using ANOTHER workspace's object ids in their own workspace's
  address gets 404 (objects are fetched filtered by the workspace);
- the minimum role written in docs/permissions.md is the minimum the view
  accepts, for the views listed in REQUIRED_ROLES.

To build a URL, each of its arguments is made from a real object, by name
(BUILDERS) or, for a bare `pk`, by the path segment before it
(PK_BY_SEGMENT). A pattern with an argument neither knows FAILS the suite
with a message saying where to teach it: a new kind of object cannot slip
through unprobed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from accounts.models import Invitation, Membership, Role, User, Workspace
from config.lib.post_only import FORM_PAGES
from tests.conftest import Personas
from workflows import services
from workflows.models import Run, StepRun, Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db

# Not probed with a session. Each entry must only ever match its own prefix
# (checked below), so it cannot hide a page of the web UI.
EXCLUDED_PREFIXES = {
    # The JSON API authenticates with workspace API tokens (401 without one,
    # 404 for another workspace's ids): tests/test_api.py.
    "api/": "token-authenticated JSON API",
    # Signed webhooks are reached by their capability URL, not a session or
    # a workspace slug: tests/test_webhooks.py.
    "hooks/": "signed webhooks",
    # The MCP endpoint authenticates with the same tokens (401 without one; another
    # workspace's tools and runs do not exist for a token): tests/test_mcp.py.
    "mcp": "token-authenticated MCP endpoint",
}

# The minimum role of each view, as docs/permissions.md states it. Views not
# listed still get the outsider, anonymous and foreign-id probes.
REQUIRED_ROLES: dict[str, Role] = {
    # accounts
    "workspace_settings": Role.ADMIN,
    "workspace_rename": Role.OWNER,
    "workspace_budget": Role.OWNER,
    "workspace_retention": Role.OWNER,
    "workspace_publish_rule": Role.OWNER,
    "workspace_delete": Role.OWNER,
    "invitation_create": Role.ADMIN,
    "invitation_revoke": Role.ADMIN,
    "member_role": Role.ADMIN,
    "member_remove": Role.ADMIN,
    "workspace_leave": Role.VIEWER,
    "audit_log": Role.ADMIN,
    "workspace_usage": Role.VIEWER,
    # workflows: everyone sees and runs them, editors build and publish
    "workspace_home": Role.VIEWER,
    "workflow_new": Role.EDITOR,
    "workflow_editor": Role.VIEWER,
    "workflow_duplicate": Role.EDITOR,
    "workflow_archive": Role.EDITOR,
    "workflow_unarchive": Role.EDITOR,
    "workflow_delete": Role.EDITOR,
    "workflow_step_add": Role.EDITOR,
    "workflow_steps_reorder": Role.EDITOR,
    "workflow_step_restore": Role.EDITOR,
    "workflow_step_save": Role.EDITOR,
    "workflow_step_move": Role.EDITOR,
    "workflow_step_delete": Role.EDITOR,
    "workflow_inputs_save": Role.EDITOR,
    "workflow_output_save": Role.EDITOR,
    "workflow_settings_save": Role.EDITOR,
    "workflow_publish": Role.EDITOR,
    "workflow_versions": Role.VIEWER,
    "workflow_version_restore": Role.EDITOR,
    "workflow_test_run": Role.VIEWER,
    "workflow_test_run_status": Role.VIEWER,
    # runs
    "run_list": Role.VIEWER,
    "run_detail": Role.VIEWER,
    "run_rerun": Role.VIEWER,
    "run_resume": Role.VIEWER,
    "run_cancel": Role.EDITOR,  # for someone else's run (the probe's); anyone may cancel their own
    "run_decide": Role.EDITOR,  # approve or reject a run waiting for approval
    "run_delete": Role.ADMIN,
    "workflow_runs_delete": Role.ADMIN,
    "run_export": Role.EDITOR,
    # triggers, schedules and tokens: admins (turning signatures off: owners)
    "workflow_triggers": Role.VIEWER,
    "trigger_create": Role.ADMIN,
    "trigger_edit": Role.ADMIN,
    "trigger_rotate": Role.ADMIN,
    "trigger_delete": Role.ADMIN,
    "trigger_signing": Role.OWNER,
    "workflow_mcp": Role.ADMIN,
    "schedule_create": Role.ADMIN,
    "schedule_edit": Role.ADMIN,
    "schedule_delete": Role.ADMIN,
    "api_tokens": Role.ADMIN,
    "api_token_create": Role.ADMIN,
    "api_token_revoke": Role.ADMIN,
    # secrets: admins; which internal hosts http steps reach: owners
    "secrets": Role.ADMIN,
    "secret_create": Role.ADMIN,
    "secret_rotate": Role.ADMIN,
    "secret_delete": Role.ADMIN,
    "outbound_hosts": Role.OWNER,
    # evals: editors make datasets and checks and run evals; viewers read them
    "workflow_evals": Role.VIEWER,
    "eval_start": Role.EDITOR,
    "dataset_from_runs": Role.EDITOR,
    "dataset_upload": Role.EDITOR,
    "eval_check_add": Role.EDITOR,
    "eval_check_delete": Role.EDITOR,
    "dataset_detail": Role.VIEWER,
    "dataset_delete": Role.EDITOR,
    "eval_detail": Role.VIEWER,
    "eval_cancel": Role.EDITOR,
    "eval_export": Role.VIEWER,
}

BELOW = {Role.EDITOR: Role.VIEWER, Role.ADMIN: Role.EDITOR, Role.OWNER: Role.ADMIN}

DEFINITION = {
    "name": "Probe",
    "inputs": [{"name": "topic", "type": "text"}],
    "steps": [{"key": "s1", "type": "llm", "prompt": "About {{ topic }}", "max_tokens": 20}],
}


# --- The URL configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str
    name: str
    pattern: URLPattern
    kwargs: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name or '(unnamed)'} /{self.route}"


def _walk(patterns: list, prefix: str = "") -> Iterator[Route]:  # type: ignore[type-arg]
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        else:
            pattern = entry.pattern
            if isinstance(pattern, RoutePattern):
                kwargs = tuple(pattern.converters)
            else:
                kwargs = tuple(pattern.regex.groupindex)
            yield Route(prefix + str(pattern), entry.name or "", entry, kwargs)


ALL_ROUTES = list(_walk(get_resolver().url_patterns))


def _excluded(route: Route) -> bool:
    path = route.route.lstrip("^")
    return path == "mcp" or path.startswith(("api/", "hooks/"))


WORKSPACE_ROUTES = [r for r in ALL_ROUTES if "slug" in r.kwargs and not _excluded(r)]


# --- Real objects to build URLs from --------------------------------------------------------------


def _model(label: str):  # type: ignore[no-untyped-def]
    try:
        return apps.get_model(label)
    except LookupError:
        pytest.fail(
            f"tests/test_role_matrix.py builds {label} objects, but that model no longer "
            "exists: update World."
        )


class World:
    """One workspace's objects of every kind a URL can name, created on first use."""

    def __init__(self, workspace: Workspace, member: Membership, actor: User) -> None:
        self.workspace = workspace
        self.member = member  # a membership a manager may change or remove
        self.actor = actor

    @cached_property
    def workflow(self) -> Workflow:
        workflow = services.workflow_create(
            workspace=self.workspace, definition=DEFINITION, user=self.actor
        )
        services.workflow_publish(workflow=workflow, user=self.actor)
        return workflow

    @cached_property
    def version(self) -> WorkflowVersion:
        return self.workflow.versions.get(number=1)

    @cached_property
    def run(self) -> Run:
        run = Run.objects.create(
            workspace=self.workspace,
            workflow=self.workflow,
            version=self.version,
            definition=self.version.definition,
            trigger="manual",
            status="failed",
            inputs={"topic": "probes"},
            error="Probe.",
            created_by=self.actor,
        )
        StepRun.objects.create(
            run=run, key="s1", position=0, type="llm", status="failed", error="Probe."
        )
        return run

    @cached_property
    def invitation(self) -> Invitation:
        return Invitation.objects.create(
            workspace=self.workspace,
            email=f"probe-{self.workspace.id}@example.com",
            role=Role.VIEWER,
            token_hash=secrets.token_hex(32),
            invited_by=self.actor,
        )

    @cached_property
    def trigger(self):  # type: ignore[no-untyped-def]
        from workflows.integrations.triggers import secret_encrypt, secret_generate

        return _model("workflows.Trigger").objects.create(
            workspace=self.workspace,
            workflow=self.workflow,
            public_id=secrets.token_urlsafe(24),
            name="Probe",
            secret_encrypted=secret_encrypt(secret_generate()),
            created_by=self.actor,
        )

    @cached_property
    def schedule(self):  # type: ignore[no-untyped-def]
        return _model("workflows.Schedule").objects.create(
            workspace=self.workspace,
            workflow=self.workflow,
            cron="0 9 * * 1",
            time_zone="UTC",
            inputs={"topic": "probes"},
            created_by=self.actor,
        )

    @cached_property
    def secret(self):  # type: ignore[no-untyped-def]
        from config.lib.sealing import seal

        return _model("accounts.WorkspaceSecret").objects.create(
            workspace=self.workspace,
            name="PROBE",
            value_encrypted=seal("stepwise.workspace-secret", "probe-value"),
            created_by=self.actor,
        )

    @cached_property
    def dataset(self):  # type: ignore[no-untyped-def]
        dataset = _model("workflows.Dataset").objects.create(
            workspace=self.workspace, workflow=self.workflow, name="Probe", created_by=self.actor
        )
        dataset.rows.create(position=1, inputs={"topic": "probes"})
        return dataset

    @cached_property
    def evaluation(self):  # type: ignore[no-untyped-def]
        return _model("workflows.Eval").objects.create(
            workspace=self.workspace,
            workflow=self.workflow,
            dataset=self.dataset,
            targets=["draft"],
            status="finished",
        )

    @cached_property
    def check(self):  # type: ignore[no-untyped-def]
        return _model("workflows.EvalCheck").objects.create(
            workflow=self.workflow, name="Probe", kind="contains", config={"value": "x"}
        )

    @cached_property
    def api_token(self):  # type: ignore[no-untyped-def]
        return _model("workflows.ApiToken").objects.create(
            workspace=self.workspace,
            name="Probe",
            prefix="sw_probe",
            token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            created_by=self.actor,
        )


# How to build each URL argument from a workspace's objects. Names other
# helpers are likely to use are listed ahead of need.
BUILDERS: dict[str, Callable[[World], object]] = {
    "slug": lambda w: w.workspace.slug,
    "workflow_id": lambda w: w.workflow.id,
    "workflow_pk": lambda w: w.workflow.id,
    "version": lambda w: w.version.number,
    "version_number": lambda w: w.version.number,
    "number": lambda w: w.version.number,
    "version_id": lambda w: w.version.id,
    "run_id": lambda w: w.run.id,
    "run_pk": lambda w: w.run.id,
    "step_key": lambda w: "s1",
    "index": lambda w: 0,  # a step's position in the workflow
    "step_index": lambda w: 0,
    "trigger_id": lambda w: w.trigger.id,
    "schedule_id": lambda w: w.schedule.id,
    "token_id": lambda w: w.api_token.id,
    "api_token_id": lambda w: w.api_token.id,
    "invitation_id": lambda w: w.invitation.id,
    "secret_id": lambda w: w.secret.id,
    "member_id": lambda w: w.member.id,
    "dataset_id": lambda w: w.dataset.id,
    "eval_id": lambda w: w.evaluation.id,
    "check_id": lambda w: w.check.id,
    "membership_id": lambda w: w.member.id,
}

# A bare <pk> is named by the segment before it: /workflows/<int:pk>/ ...
PK_BY_SEGMENT: dict[str, Callable[[World], object]] = {
    "workflows": lambda w: w.workflow.id,
    "versions": lambda w: w.version.id,
    "runs": lambda w: w.run.id,
    "triggers": lambda w: w.trigger.id,
    "schedules": lambda w: w.schedule.id,
    "tokens": lambda w: w.api_token.id,
    "api-tokens": lambda w: w.api_token.id,
    "invitations": lambda w: w.invitation.id,
    "members": lambda w: w.member.id,
}

_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def url_for(route: Route, world: World, *, slug: str | None = None) -> str:
    """`route` with every argument built from `world`'s objects (and `slug`, if given)."""
    if not isinstance(route.pattern.pattern, RoutePattern):
        pytest.fail(
            f"{route}: a regex pattern under a workspace slug; use path() or teach "
            "test_role_matrix.py."
        )

    def value(match: re.Match[str]) -> str:
        name = match["name"]
        if name == "slug" and slug is not None:
            return slug
        if name == "pk":
            before = route.route[: match.start()].rstrip("/").rsplit("/", 1)[-1]
            if before not in PK_BY_SEGMENT:
                pytest.fail(
                    f"{route}: <pk> after “{before}/” is unknown to PK_BY_SEGMENT in "
                    "tests/test_role_matrix.py; "
                    "add how to build that object, so the new view is probed."
                )
            return str(PK_BY_SEGMENT[before](world))
        if name not in BUILDERS:
            pytest.fail(
                f"{route}: the URL argument “{name}” is unknown to BUILDERS in "
                "tests/test_role_matrix.py; "
                "add how to build a real object for it, so the new view is probed."
            )
        return str(BUILDERS[name](world))

    return "/" + _PARAMETER.sub(value, route.route)


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def home(personas: Personas) -> World:
    vera = Membership.objects.get(user=personas.vera, workspace=personas.workspace)
    return World(personas.workspace, vera, personas.alice)


@pytest.fixture
def foreign(personas: Personas) -> World:
    charlie = Membership.objects.get(user=personas.charlie, workspace=personas.other_workspace)
    return World(personas.other_workspace, charlie, personas.charlie)


def _refused(method: str, url: str, status: int) -> bool:
    """The view does not accept `method`: 405, or for a GET of a POST-only address, the redirect
    to the page holding its form (config/lib/post_only.py; tests/test_post_only_addresses.py)."""
    return status == 405 or (method == "get" and resolve(url).view_name in FORM_PAGES)


def probe(client: Client, url: str) -> dict[str, int]:
    """The status of GET and POST to `url`, leaving out the method the view does not accept."""
    answers = {}
    for method in ("get", "post"):
        status = getattr(client, method)(url).status_code
        if not _refused(method, url, status):
            answers[method] = status
    assert answers, f"{url} accepts neither GET nor POST"
    return answers


def first_method(client: Client, url: str):  # type: ignore[no-untyped-def]
    response = client.get(url)
    return client.post(url) if _refused("get", url, response.status_code) else response


# --- The probes -----------------------------------------------------------------------------------


def test_the_url_configuration_has_workspace_pages_to_probe() -> None:
    names = {r.name for r in WORKSPACE_ROUTES}
    assert {"workspace_home", "workspace_settings", "audit_log", "workspace_usage"} <= names


def test_the_exclusions_only_cover_the_api_webhooks_and_mcp() -> None:
    excluded = [r for r in ALL_ROUTES if _excluded(r)]
    for route in excluded:
        path = route.route.lstrip("^")
        assert path == "mcp" or path.startswith(("api/", "hooks/")), route
        assert not route.route.startswith("w/"), route
    assert set(EXCLUDED_PREFIXES) == {"api/", "hooks/", "mcp"}


@pytest.mark.parametrize("route", WORKSPACE_ROUTES, ids=str)
def test_an_outsider_gets_404_everywhere(
    route: Route, client: Client, personas: Personas, home: World
) -> None:
    url = url_for(route, home)
    client.force_login(personas.charlie)
    answers = probe(client, url)
    assert set(answers.values()) == {404}, f"{url} answered an outsider {answers}"


@pytest.mark.parametrize("route", WORKSPACE_ROUTES, ids=str)
def test_anonymous_visitors_are_sent_to_log_in(route: Route, client: Client, home: World) -> None:
    url = url_for(route, home)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if _refused(method, url, response.status_code):
            continue
        assert response.status_code == 302, (
            f"{method.upper()} {url} answered {response.status_code}"
        )
        assert response["Location"].startswith("/accounts/login/"), (
            f"{method.upper()} {url} → {response['Location']}"
        )


@pytest.mark.parametrize("route", [r for r in WORKSPACE_ROUTES if len(r.kwargs) > 1], ids=str)
def test_another_workspaces_ids_are_404_even_for_the_owner(
    route: Route, client: Client, personas: Personas, home: World, foreign: World
) -> None:
    home.workflow  # noqa: B018 -- the home workspace has objects of its own too
    url = url_for(route, foreign, slug=personas.workspace.slug)
    client.force_login(personas.alice)
    answers = probe(client, url)
    assert set(answers.values()) == {404}, (
        f"{url} (another workspace's ids) answered its owner {answers}"
    )
    # And nothing of the other workspace was touched by the attempt.
    assert Membership.objects.filter(
        workspace=personas.other_workspace, user=personas.charlie, role=Role.OWNER
    ).exists()


@pytest.mark.parametrize("route", [r for r in WORKSPACE_ROUTES if r.kwargs != ("slug",)], ids=str)
def test_the_built_urls_reach_real_objects(
    route: Route, client: Client, personas: Personas, home: World
) -> None:
    """Keeps the probes honest: the owner is not
    refused, so the 404s above are the access checks."""
    client.force_login(personas.alice)
    response = first_method(client, url_for(route, home))
    assert response.status_code not in (403, 404), (
        f"{route} answered the owner {response.status_code}"
    )


ROLE_CASES = [r for r in WORKSPACE_ROUTES if r.name in REQUIRED_ROLES]


@pytest.mark.parametrize("route", ROLE_CASES, ids=str)
def test_the_minimum_role_is_the_documented_one(
    route: Route, client: Client, personas: Personas, home: World
) -> None:
    required = REQUIRED_ROLES[route.name]
    bob = Membership.objects.get(user=personas.bob, workspace=personas.workspace)
    url = url_for(route, home)
    client.force_login(personas.bob)
    if required in BELOW:
        Membership.objects.filter(id=bob.id).update(role=BELOW[required])
        answers = probe(client, url)
        assert set(answers.values()) == {403}, f"{url} answered a {BELOW[required].label} {answers}"
    Membership.objects.filter(id=bob.id).update(role=required)
    response = first_method(client, url)
    assert response.status_code not in (403, 404), (
        f"{url} refused a {required.label}: {response.status_code}"
    )
