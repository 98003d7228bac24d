from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client: Client, password: str):  # type: ignore[no-untyped-def]
    return client.post("/accounts/login/", {"username": "lee@example.com", "password": password})


def test_it_locks_the_account_out_after_repeated_failures(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200
    assert _login(client, "wrong").status_code == 429
    # Now even the right password is refused until the cool-off ends.
    locked = _login(client, PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.content.decode()


def test_it_lets_the_person_in_again_after_the_cool_off(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    from axes.models import AccessAttempt

    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 429
    # Age the failures past the cool-off period instead of sleeping through it.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME, minutes=1))
    response = _login(client, PASSWORD)
    assert response.status_code == 302


def test_a_correct_password_logs_in(client: Client) -> None:
    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    assert _login(client, PASSWORD).status_code == 302
