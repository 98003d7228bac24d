from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership, Role, User

pytestmark = pytest.mark.django_db


def test_it_creates_the_user_and_a_personal_workspace(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"name": "Dana", "email": "Dana@Example.com", "password": "a long enough passphrase"},
    )
    user = User.objects.get(email="dana@example.com")
    membership = Membership.objects.select_related("workspace").get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.name == "Dana's workspace"
    assert response.status_code == 302
    assert response["Location"] == f"/w/{membership.workspace.slug}/"


def test_it_logs_the_new_user_in(client: Client) -> None:
    client.post("/accounts/signup/", {"email": "eve@example.com", "password": "a long enough passphrase"})
    assert client.get("/").status_code == 302
    slug = Membership.objects.get(user__email="eve@example.com").workspace.slug
    assert client.get(f"/w/{slug}/").status_code == 200


def test_it_refuses_a_taken_email_with_a_form_error(client: Client) -> None:
    User.objects.create_user(email="taken@example.com", password="x")
    response = client.post("/accounts/signup/", {"email": "TAKEN@example.com", "password": "a long enough passphrase"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_it_refuses_a_weak_password(client: Client) -> None:
    response = client.post("/accounts/signup/", {"email": "weak@example.com", "password": "123"})
    assert response.status_code == 200
    assert not User.objects.filter(email="weak@example.com").exists()
    assert "too short" in response.content.decode()


def test_two_users_with_the_same_name_get_distinct_workspace_slugs(client: Client) -> None:
    client.post("/accounts/signup/", {"name": "Sam", "email": "sam1@example.com", "password": "a long enough passphrase"})
    client.logout()
    client.post("/accounts/signup/", {"name": "Sam", "email": "sam2@example.com", "password": "a long enough passphrase"})
    slugs = set(Membership.objects.values_list("workspace__slug", flat=True))
    assert len(slugs) == 2


def test_the_sign_up_page_renders(client: Client) -> None:
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()


def test_the_landing_page_renders_for_anonymous_visitors(client: Client) -> None:
    assert client.get("/").status_code == 200
