"""A GET of an address that only takes POST (a bookmark, Back, a link pasted from the address
bar) is sent to the page that holds its form (303), never answered with an empty 405.

Every pattern of the URL configuration is walked (the same walk as tests/test_role_matrix.py), so a
POST-only view added tomorrow fails here until config/lib/post_only.py says where its form lives.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import resolve

from config.lib.post_only import FORM_PAGES
from tests.conftest import Personas
from tests.test_role_matrix import ALL_ROUTES, BUILDERS, Route, World, _excluded, url_for

pytestmark = pytest.mark.django_db

# Everything but the API, webhooks and /mcp, and but the addresses carrying a secret token the
# walk cannot make (password reset, invitations: each has its own tests).
ROUTES = [r for r in ALL_ROUTES if not _excluded(r) and set(r.kwargs) <= {"pk", *BUILDERS}]


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def home(personas: Personas) -> World:
    from accounts.models import Membership

    vera = Membership.objects.get(user=personas.vera, workspace=personas.workspace)
    return World(personas.workspace, vera, personas.alice)


def test_the_walk_covers_the_addresses_named_in_the_issue() -> None:
    names = {r.name for r in ROUTES}
    assert {"trigger_create", "api_token_create", "schedule_create", "logout"} <= names


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_get_never_answers_405(
    route: Route, client: Client, personas: Personas, home: World
) -> None:
    personas.alice.is_staff = personas.alice.is_superuser = True  # the admin's addresses too
    personas.alice.save(update_fields=["is_staff", "is_superuser"])
    client.force_login(personas.alice)
    url = url_for(route, home)
    view_name = resolve(url).view_name
    response = client.get(url)
    assert response.status_code != 405, (
        f"GET {url} answers 405: add {view_name!r} to FORM_PAGES in config/lib/post_only.py "
        "(where its form lives)"
    )
    if view_name in FORM_PAGES:
        assert response.status_code == 303, f"GET {url} answered {response.status_code}"
        assert resolve(response["Location"]).view_name == FORM_PAGES[view_name][0]
        page = client.get(response["Location"], follow=True)
        assert page.status_code == 200, (
            f"{url} → {response['Location']} answered {page.status_code}"
        )


@pytest.mark.parametrize(
    ("path", "page"),
    [
        (
            "/w/{slug}/workflows/{workflow}/triggers/new/",
            "/w/{slug}/workflows/{workflow}/triggers/",
        ),
        (
            "/w/{slug}/workflows/{workflow}/schedules/new/",
            "/w/{slug}/workflows/{workflow}/triggers/",
        ),
        ("/w/{slug}/settings/api-tokens/new/", "/w/{slug}/settings/api-tokens/"),
    ],
)
def test_a_bookmarked_form_address_leads_to_its_page(
    client: Client, personas: Personas, home: World, path: str, page: str
) -> None:
    client.force_login(personas.alice)
    values = {"slug": personas.workspace.slug, "workflow": home.workflow.id}
    response = client.get(path.format(**values))
    assert response.status_code == 303
    assert response["Location"] == page.format(**values)
    assert client.get(response["Location"]).status_code == 200


def test_the_redirect_does_not_skip_the_access_check(
    client: Client, personas: Personas, home: World
) -> None:
    client.force_login(personas.charlie)
    response = client.get(
        f"/w/{personas.workspace.slug}/workflows/{home.workflow.id}/triggers/new/", follow=True
    )
    assert response.status_code == 404


def test_a_post_still_reaches_the_view(client: Client, personas: Personas) -> None:
    client.force_login(personas.alice)
    response = client.post(
        f"/w/{personas.workspace.slug}/settings/api-tokens/new/", {"name": "CI"}, follow=True
    )
    assert (
        response.redirect_chain[0][1] == 303
    )  # POST-redirect-GET: the secret is shown once, on the GET
    assert response.status_code == 200
    assert "sw_" in response.content.decode()


def test_anonymous_visitors_are_still_sent_to_log_in(
    client: Client, personas: Personas, home: World
) -> None:
    response = client.get(f"/w/{personas.workspace.slug}/settings/api-tokens/new/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
