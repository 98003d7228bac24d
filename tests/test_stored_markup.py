"""Stored text is inert: markup a user wrote is shown as text, never run.

With htmx an attribute in stored markup is code that runs with the viewer's session,
so one unescaped description was enough for an editor to make themselves owner.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import Membership, Role
from tests.conftest import Personas
from tests.factories import HTMX
from workflows import services


def test_it_shows_an_inputs_description_as_text_on_the_test_run_form(personas: Personas) -> None:
    """The attack from issue 11: bob (editor) writes a
    description that promotes him when alice opens the form."""
    bob_membership = Membership.objects.get(user=personas.bob, workspace=personas.workspace)
    promote = reverse("member_role", args=[personas.workspace.slug, bob_membership.id])
    payload = (
        f'<span hx-post="{promote}" hx-vals=\'{{"role":"owner"}}\' hx-trigger="load">Ticket</span>'
    )
    workflow = services.workflow_create(
        workspace=personas.workspace,
        user=personas.alice,
        definition={
            "name": "Support",
            "inputs": [{"name": "ticket", "type": "text"}],
            "steps": [{"key": "t", "type": "template", "template": "{{ ticket }}"}],
        },
    )
    bob = Client()
    bob.force_login(personas.bob)
    saved = bob.post(
        reverse("workflow_inputs_save", args=[personas.workspace.slug, workflow.id]),
        {
            "input_count": "1",
            "input-0-name": "ticket",
            "input-0-type": "text",
            "input-0-default": "",
            "input-0-description": payload,
        },
        **HTMX,
    )
    assert saved.status_code == 200
    workflow.refresh_from_db()
    assert workflow.definition["inputs"][0]["description"] == payload

    alice = Client()
    alice.force_login(personas.alice)
    editor = reverse("workflow_editor", args=[personas.workspace.slug, workflow.id]) + "?panel=run"
    for response in (alice.get(editor), alice.get(editor, **HTMX)):
        assert response.status_code == 200
        html = response.content.decode()
        assert "<span hx-post" not in html
        assert "&lt;span hx-post=&quot;" in html
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.EDITOR
    json.dumps(workflow.definition)  # still plain data


def test_it_still_shows_the_server_built_password_rules_as_a_list(db: None) -> None:
    html = Client().get(reverse("signup")).content.decode()
    assert '_helptext"><ul><li>' in html
    assert "&lt;ul&gt;" not in html


# --- Every page, every stored text -------------------------------------------------------------

# Markup that runs without script (htmx attributes)
# and with it (an event handler), then both quotes.
PAYLOAD = """<img src=x onerror=alert(1)><span hx-post="/x" hx-trigger="load">PWN</span>"'"""
RAW = ("<span hx-post", "<img src=x", 'hx-trigger="load">PWN')
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;&lt;span hx-post=&quot;/x&quot;"

# Panels and filters that show different stored text on the same address.
QUERIES: dict[str, list[str]] = {
    "workflow_editor": [
        "",
        "?panel=inputs",
        "?panel=output",
        "?panel=settings",
        "?panel=run",
        "?panel=publish",
        "?panel=step&step=0",
        "?panel=step&step=1",
        "?panel=step&step=2",
        "?panel=step&step=3",
    ],
    "workspace_home": ["", "?archived=1"],
    "run_list": ["", "?status=failed", "?page=2"],
    "audit_log": ["", "?page=2"],
}


@dataclass
class Poisoned:
    """Every text a user can write, holding PAYLOAD, and the ids to reach each object."""

    params: dict[str, str]
    names: dict[str, str]  # url name -> extra query strings


# The partial each page answers htmx with when it is the target (request.htmx.target).
TARGETS = {"workflow_editor": "panel", "run_list": "run-results", "run_detail": "run-live"}


def _poison(personas: Personas) -> Poisoned:
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from accounts.audit import audit_record
    from accounts.models import Invitation, User
    from accounts.services import invitation_create, workspace_rename
    from workflows.integrations import api_auth, schedules, triggers
    from workflows.models import Run, RunCallback, StepRun, WebhookDelivery

    workspace = personas.workspace
    owner = Membership.objects.get(user=personas.alice, workspace=workspace)
    User.objects.filter(pk__in=[personas.alice.pk, personas.bob.pk, personas.vera.pk]).update(
        name=PAYLOAD
    )
    workspace = workspace_rename(workspace=workspace, name=PAYLOAD, actor=owner)

    definition = {
        "name": PAYLOAD,
        "description": PAYLOAD,
        "inputs": [
            {"name": "ticket", "type": "text", "description": PAYLOAD, "default": PAYLOAD},
            {"name": "data", "type": "json", "required": False, "description": PAYLOAD},
        ],
        "steps": [
            {
                "key": "triage",
                "type": "llm",
                "title": PAYLOAD,
                "system": PAYLOAD,
                "prompt": PAYLOAD + "{{ ticket }}",
                "temperature": 0,
                "max_tokens": 100,
                "response_format": {
                    "type": "json_schema",
                    "name": "triage",
                    "schema": {
                        "type": "object",
                        "description": PAYLOAD,
                        "properties": {
                            "category": {
                                "type": "string",
                                "description": PAYLOAD,
                                "enum": [PAYLOAD, "other"],
                            }
                        },
                        "required": ["category"],
                        "additionalProperties": False,
                    },
                },
            },
            {
                "key": "route",
                "type": "condition",
                "title": PAYLOAD,
                "cases": [
                    {
                        "left": PAYLOAD + "{{ triage.category }}",
                        "op": "equals",
                        "right": PAYLOAD,
                        "goto": "reply",
                    }
                ],
                "else": "missing_" + "step",
            },
            {
                "key": "reply",
                "type": "template",
                "title": PAYLOAD,
                "template": PAYLOAD + "{{ ticket }}",
            },
            {"key": "answer", "type": "llm", "title": PAYLOAD, "prompt": PAYLOAD + "{{ nowhere }}"},
        ],
        "output": PAYLOAD + "{{ reply }}",
    }
    published = {**definition, "steps": definition["steps"][2:3], "output": PAYLOAD + "{{ reply }}"}
    workflow = services.workflow_create(
        workspace=workspace, definition=published, user=personas.bob
    )
    services.workflow_publish(workflow=workflow, user=personas.bob, summary=PAYLOAD)
    archived = services.workflow_create(
        workspace=workspace, definition={**published, "name": PAYLOAD + "2"}, user=personas.bob
    )
    type(workflow).objects.filter(pk=archived.pk).update(archived_at=timezone.now())

    run = services.run_start(
        workflow=workflow,
        trigger=Run.Trigger.MANUAL,
        user=personas.bob,
        inputs={"ticket": PAYLOAD, "data": {"x": PAYLOAD}},
    )
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.FAILED,
        output={"text": PAYLOAD, "list": [PAYLOAD]},
        error=PAYLOAD,
        payload={"body": PAYLOAD},
        finished_at=timezone.now(),
    )
    StepRun.objects.create(
        run=run,
        key="triage",
        position=0,
        type="llm",
        status=StepRun.Status.SUCCEEDED,
        messages=[{"role": "system", "content": PAYLOAD}, {"role": "user", "content": PAYLOAD}],
        output={"category": PAYLOAD},
        model="gpt-4.1-mini",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    StepRun.objects.create(
        run=run,
        key="reply",
        position=2,
        type="template",
        status=StepRun.Status.FAILED,
        output=PAYLOAD,
        error=PAYLOAD,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    test_run = services.run_start(
        workflow=workflow,
        trigger=Run.Trigger.MANUAL,
        user=personas.bob,
        inputs={"ticket": PAYLOAD},
        draft=True,
    )
    # The draft then differs from version 1 and is still valid, so the Test run form is drawn.
    valid = {
        **definition,
        "steps": [step for step in definition["steps"] if step["key"] != "answer"],
    }
    valid["steps"][1] = {**valid["steps"][1], "else": "reply"}
    assert (
        services.workflow_save_draft(workflow=workflow, definition=valid, user=personas.bob) == []
    )
    # One whose problems' messages quote the stored text.
    broken = services.workflow_create(
        workspace=workspace, definition={**published, "name": PAYLOAD + "3"}, user=personas.bob
    )
    assert services.workflow_save_draft(
        workflow=broken, definition={**definition, "name": PAYLOAD + "3"}, user=personas.bob
    )
    Run.objects.filter(pk=test_run.pk).update(
        status=Run.Status.SUCCEEDED, output=PAYLOAD, finished_at=timezone.now()
    )

    made = triggers.trigger_create(workflow=workflow, user=personas.bob, name=PAYLOAD)
    trigger = made.trigger
    WebhookDelivery.objects.create(
        trigger=trigger, status_code=400, result=PAYLOAD, message_id=PAYLOAD, run=run
    )
    RunCallback.objects.create(
        run=run,
        trigger=trigger,
        url="https://example.com/hook?x=%3Cimg%20src%3Dx%3E",
        status=RunCallback.Status.FAILED,
        last_error=PAYLOAD,
    )
    schedule = schedules.schedule_create(
        workflow=workflow,
        cron="0 9 * * 1-5",
        time_zone="Europe/Paris",
        inputs={"ticket": PAYLOAD},
        user=personas.bob,
    )
    type(schedule).objects.filter(pk=schedule.pk).update(last_error=PAYLOAD, last_run=run)
    token = api_auth.token_create(workspace=workspace, name=PAYLOAD, user=personas.alice)

    invitation, invitation_token = invitation_create(
        workspace=workspace, email="dora@example.com", role=Role.EDITOR, actor=owner
    )
    # The form refuses such an address; stored anyway, it must still show as text.
    Invitation.objects.create(
        workspace=workspace,
        email=PAYLOAD[:60] + "@example.com",
        role=Role.VIEWER,
        token_hash="0" * 64,
        invited_by=personas.alice,
        expires_at=invitation.expires_at,
    )
    audit_record(
        workspace=workspace,
        actor=personas.bob,
        action="workflow.rename",
        target=workflow,
        label=PAYLOAD,
        before={"name": PAYLOAD},
        after={"name": PAYLOAD, "nested": {"list": [PAYLOAD]}},
    )
    audit_record(
        workspace=workspace,
        actor=personas.bob,
        action=PAYLOAD[:60],
        label=PAYLOAD,
        before=PAYLOAD,
        after=[PAYLOAD],
    )

    # A secret's name cannot hold markup (the form refuses it); stored anyway, it stays text.
    from accounts.models import WorkspaceSecret

    secret = WorkspaceSecret.objects.create(
        workspace=workspace, name=PAYLOAD[:64], value_encrypted="x", created_by=personas.bob
    )

    # Evals: a dataset's cells, a check's settings, an eval's outputs and verdicts.
    from workflows.models import Dataset, Eval, EvalCheck

    dataset = Dataset.objects.create(
        workspace=workspace, workflow=workflow, name=PAYLOAD, created_by=personas.bob
    )
    dataset.rows.create(position=1, inputs={"ticket": PAYLOAD}, expected=PAYLOAD)
    check = EvalCheck.objects.create(
        workflow=workflow, name=PAYLOAD[:100], kind="contains", config={"value": PAYLOAD}
    )
    evaluation = Eval.objects.create(
        workspace=workspace,
        workflow=workflow,
        dataset=dataset,
        targets=["draft", "v1"],
        draft_revision=workflow.draft_revision,
        checks=[{"name": PAYLOAD, "kind": "contains", "config": {"value": PAYLOAD}}],
        status=Eval.Status.FINISHED,
    )
    verdicts = [{"name": PAYLOAD, "kind": "contains", "passed": False, "reason": PAYLOAD}]
    for target in ("draft", "v1"):
        evaluation.items.create(
            position=1,
            target=target,
            inputs={"ticket": PAYLOAD},
            expected=PAYLOAD,
            run=run,
            status="scored",
            results=verdicts,
            passed=False,
            error=PAYLOAD,
        )

    bob_membership = Membership.objects.get(user=personas.bob, workspace=workspace)
    return Poisoned(
        params={
            "slug": workspace.slug,
            "pk": str(workflow.pk),
            "workflow_id": str(workflow.pk),
            "index": "0",
            "broken": str(broken.pk),
            "archived": str(archived.pk),
            "number": "1",
            "run_id": str(run.pk),
            "trigger_id": str(trigger.pk),
            "schedule_id": str(schedule.pk),
            "token_id": str(token.token.pk),
            "secret_id": str(secret.pk),
            "invitation_id": str(invitation.pk),
            "member_id": str(bob_membership.pk),
            "token": invitation_token,
            "public_id": trigger.public_id,
            "uidb64": urlsafe_base64_encode(force_bytes(personas.alice.pk)),
            "reset_token": default_token_generator.make_token(personas.alice),
            "test_run_id": str(test_run.pk),
            "dataset_id": str(dataset.pk),
            "eval_id": str(evaluation.pk),
            "check_id": str(check.pk),
        },
        names=QUERIES,
    )


CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


def _routes(
    resolvers: list, prefix: str = "", names: tuple[str, ...] = ()
) -> Iterator[tuple[str, str | None]]:
    """(route with <converter:name> parameters, url
    name) for every pattern of the URL configuration."""
    for entry in resolvers:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(
                entry.url_patterns, prefix + route, names + ((entry.namespace or ""),)
            )
        else:
            yield prefix + route, entry.name


def _fill(route: str, name: str | None, params: dict[str, str]) -> str | None:
    """The route's address with the poisoned objects' ids; None where a parameter is not ours."""
    if route.startswith("^") or "(?P<" in route:
        # Regular expressions: the admin (walked through its registry) and the API's catch-all.
        return None

    def value(match: re.Match[str]) -> str:
        parameter = match.group("parameter")
        if name == "workflow_test_run_status" and parameter == "run_id":
            parameter = "test_run_id"
        if name == "password_reset_confirm" and parameter == "token":
            parameter = "reset_token"
        return params[parameter]

    return "/" + CONVERTER.sub(value, route)


def _assert_inert(address: str, response) -> bool:  # type: ignore[no-untyped-def]
    """No payload left as markup; True if the escaped payload was shown."""
    assert response.status_code < 500, f"{address}: {response.status_code}"
    content_type = response.get("Content-Type", "")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        assert response.get("X-Content-Type-Options") == "nosniff", address
        return False
    if content_type.startswith("text/csv"):
        # A download (an eval's export): data, never rendered; test_eval_datasets_and_rules
        # checks that its cells cannot run as spreadsheet formulas.
        assert response.get("X-Content-Type-Options") == "nosniff", address
        assert response.get("Content-Disposition", "").startswith("attachment;"), address
        return False
    for raw in RAW:
        assert raw not in text, (
            f"{address} shows stored markup unescaped:\n"
            + text[max(text.find(raw) - 300, 0) : text.find(raw) + 200]
        )
    for header in ("HX-Trigger", "HX-Location", "Location"):
        assert "<img" not in response.get(header, ""), (address, header)
    return ESCAPED in text


def test_no_page_shows_stored_markup_unescaped(personas: Personas) -> None:
    """Every user-writable text holds PAYLOAD; every page of the URL configuration is fetched as the
    owner, as a page and as an htmx fragment, and must show it as text."""
    poisoned = _poison(personas)
    alice = Client()
    alice.force_login(personas.alice)
    fetched: dict[str, int] = {}
    shown: set[str] = set()
    for route, name in _routes(get_resolver().url_patterns):
        if route.startswith(("admin/", "api/v1/")):
            continue
        addresses = {
            _fill(route, name, {**poisoned.params, "pk": pk, "workflow_id": pk})
            for pk in (
                poisoned.params["pk"],
                poisoned.params["broken"],
                poisoned.params["archived"],
            )
        }
        for address, query in itertools.product(
            addresses - {None}, poisoned.names.get(name or "", [""])
        ):
            target = TARGETS.get(name or "")
            partial = [{**HTMX, "HTTP_HX_TARGET": target}] if target else []
            for headers in ({}, HTMX, *partial):
                response = alice.get(address + query, **headers)
                fetched[address + query] = response.status_code
                if _assert_inert(address + query, response):
                    part = f"#{headers['HTTP_HX_TARGET']}" if "HTTP_HX_TARGET" in headers else ""
                    shown.update({name or address, f"{name}{part}"})
                    if query:
                        shown.update({f"{name}{query}", f"{name}{query}{part}"})
    # The invitation page is for the invitee, before they have an account.
    invitation = f"/invitations/{poisoned.params['token']}/"
    for headers in ({}, HTMX):
        if _assert_inert(invitation, Client().get(invitation, **headers)):
            shown.add("invitation_accept")
    # Every page that shows these texts was reached, and showed them escaped.
    for name in (
        "workspace_home",
        "workflow_editor",
        "workflow_versions",
        "workflow_triggers",
        "run_list",
        "run_detail",
        "workflow_test_run_status",
        "workspace_settings",
        "audit_log",
        "workspace_usage",
        "api_tokens",
        "secrets",
        "invitation_accept",
        "workspace_leave",
        "workflow_delete",
        *(f"workflow_editor{query}" for query in QUERIES["workflow_editor"] if query),
        # Each panel as the partial htmx swaps in (publish lists only problems for these workflows).
        *(f"workflow_editor{q}#panel" for q in QUERIES["workflow_editor"] if "publish" not in q),
        "run_list#run-results",
        "run_detail#run-live",
    ):
        assert name in shown, f"{name} was not reached or did not show the stored text"
    assert sum(1 for status in fetched.values() if status == 200) >= 30, fetched


def test_the_editors_answers_to_its_own_posts_show_stored_markup_as_text(
    personas: Personas,
) -> None:
    """The fragments the editor swaps in after a write
    (#editor, #panel, #autosave) redraw the stored text."""
    poisoned = _poison(personas)
    alice = Client()
    alice.force_login(personas.alice)
    slug, pk = poisoned.params["slug"], poisoned.params["pk"]
    posts = [
        (
            "workflow_test_run",
            [slug, pk],
            {},
        ),  # refused: the inputs form comes back with its help texts
        ("workflow_test_run", [slug, pk], {"input-ticket": "", "input-data": "{not json"}),
        (
            "workflow_inputs_save",
            [slug, pk],
            {
                "input_count": "1",
                "input-0-name": "ticket",
                "input-0-type": "text",
                "input-0-default": PAYLOAD,
                "input-0-description": PAYLOAD,
            },
        ),
        (
            "workflow_step_save",
            [slug, pk, 2],
            {"key": "reply", "title": PAYLOAD, "template": PAYLOAD + "{{ nope }}", "next": ""},
        ),
        ("workflow_settings_save", [slug, pk], {"name": PAYLOAD + "4", "description": PAYLOAD}),
        ("workflow_publish", [slug, pk], {"summary": PAYLOAD}),
    ]
    shown = 0
    for name, args, data in posts:
        for headers in ({}, HTMX):
            response = alice.post(reverse(name, args=args), data, **headers)
            if _assert_inert(name, response):
                shown += 1
    assert shown >= len(posts)


def test_the_api_answers_stored_markup_as_json_only(personas: Personas) -> None:
    poisoned = _poison(personas)
    from workflows.integrations import api_auth

    token = api_auth.token_create(
        workspace=personas.workspace, name="CI", user=personas.alice
    ).value
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    seen = 0
    for route, name in _routes(get_resolver().url_patterns):
        if not route.startswith("api/v1/"):
            continue
        address = _fill(route, name, {**poisoned.params, "run_id": poisoned.params["run_id"]})
        if address is None or "docs" in address or "openapi" in address:
            continue
        response = client.get(address)
        assert response.status_code < 500, address
        if (
            response.status_code == 200
            and response.streaming
            and response["Content-Type"].startswith("text/event-stream")
        ):
            # The run's events: JSON in each event's data.
            assert response.get("X-Content-Type-Options") == "nosniff", address
            for line in b"".join(response.streaming_content).decode().splitlines():
                if line.startswith("data: "):
                    json.loads(line.removeprefix("data: "))
            seen += 1
        elif response.status_code == 200:
            # JSON, or JSON lines (the runs export): never a type a browser renders.
            assert response["Content-Type"].startswith(
                ("application/json", "application/x-ndjson")
            ), address
            assert response.get("X-Content-Type-Options") == "nosniff", address
            seen += 1
    assert seen >= 3


def test_no_admin_page_shows_stored_markup_unescaped(personas: Personas) -> None:
    from django.contrib import admin

    _poison(personas)
    type(personas.alice).objects.filter(pk=personas.alice.pk).update(
        is_staff=True, is_superuser=True
    )
    alice = Client()
    alice.force_login(personas.alice)
    pages = ["/admin/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        pages += [base, base + "add/"]
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages += [
                f"{base}{first.pk}/change/",
                f"{base}{first.pk}/history/",
                f"{base}{first.pk}/delete/",
            ]
    statuses = []
    for page in pages:
        response = alice.get(page)
        statuses.append(response.status_code)
        _assert_inert(page, response)
    assert statuses.count(200) >= len(pages) // 2, list(zip(pages, statuses, strict=True))
