"""A failed htmx request says why in an error toast the server sets (config/lib/htmx_errors.py)."""

from __future__ import annotations

import json

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from config.lib.htmx_errors import HtmxErrorToastMiddleware, error_message
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def toast(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return json.loads(response["HX-Trigger"])["toast"]


def test_it_tells_an_outsider_that_the_page_no_longer_exists(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.charlie)
    response = client.get(f"/w/{personas.workspace.slug}/settings/", HTTP_HX_REQUEST="true")
    assert response.status_code == 404
    assert toast(response) == {
        "level": "error",
        "message": "That no longer exists. Reload the page.",
    }


def test_it_says_why_when_another_middleware_refuses(personas: Personas) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    response = client.post(reverse("logout"), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert toast(response)["message"] == "You don't have permission to do that."


def test_it_leaves_pages_conflicts_and_forms_with_errors_alone(
    client: Client, personas: Personas
) -> None:
    client.force_login(personas.charlie)
    page = client.get(f"/w/{personas.workspace.slug}/settings/")
    assert page.status_code == 404 and "HX-Trigger" not in page
    client.force_login(personas.alice)
    rename = reverse("workspace_rename", args=[personas.workspace.slug])
    refused = client.post(rename, {"name": ""}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "HX-Trigger" not in refused


def test_it_names_the_status_of_other_failures() -> None:
    assert error_message(500) == "Something went wrong on the server (500). Try again."
    assert error_message(410) == "The request failed (410)."
    assert error_message(429) == "Too many requests. Wait a moment and try again."


@pytest.mark.parametrize(
    ("trigger", "toast_added"),
    [("refresh", True), ("refresh, toast", False), ('{"toast": {"message": "Mine"}}', False)],
)
def test_a_view_s_own_trigger_header_in_either_form_is_kept(
    rf: RequestFactory, trigger: str, toast_added: bool
) -> None:
    # htmx takes HX-Trigger as JSON or as plain event names; neither may break the answer.
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=404, headers={"HX-Trigger": trigger})

    request = rf.get("/", HTTP_HX_REQUEST="true")
    response = HtmxErrorToastMiddleware(view)(request)
    assert response.status_code == 404
    if toast_added:
        events = json.loads(response["HX-Trigger"])
        assert events["refresh"] == {}
        assert events["toast"]["message"] == "That no longer exists. Reload the page."
    else:
        assert response["HX-Trigger"] == trigger
