from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client: Client, password: str):  # type: ignore[no-untyped-def]
    return client.post("/accounts/login/", {"username": "lee@example.com", "password": password})


def test_it_locks_the_account_out_at_one_address_after_repeated_failures(
    client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
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
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME, minutes=1)
    )
    response = _login(client, PASSWORD)
    assert response.status_code == 302


def test_a_correct_password_logs_in(client: Client) -> None:
    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    assert _login(client, PASSWORD).status_code == 302


# Each key has its own limit: an address, an account, and the pair ------------------------------
#
# The limits are lowered here so that the tests stay fast (every failed attempt runs the password
# hasher); the production values are in config/settings.py and README.md.


@pytest.fixture
def limits(settings):  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_FAILURE_LIMIT_PER_USERNAME = 5
    settings.AXES_FAILURE_LIMIT_PER_IP = 6
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1", "::1"]
    return settings


def attempt(client: Client, email: str, password: str, *, ip: str = "", peer: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    """A login POST from `ip` as seen through the trusted
    proxy at `peer` (or straight from `peer`)."""
    headers = {"REMOTE_ADDR": peer}
    if ip:
        headers["HTTP_X_FORWARDED_FOR"] = ip
    return client.post("/accounts/login/", {"username": email, "password": password}, **headers)


def test_one_password_sprayed_over_many_accounts_from_one_address_is_limited(
    client: Client, limits
) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    for n in range(limits.AXES_FAILURE_LIMIT_PER_IP - 1):
        assert (
            attempt(client, f"user{n}@example.com", "Summer2026!", ip="198.51.100.7").status_code
            == 200
        )
    assert (
        attempt(client, "user99@example.com", "Summer2026!", ip="198.51.100.7").status_code == 429
    )
    # The address is paused, whatever account it tries...
    assert attempt(client, "lee@example.com", PASSWORD, ip="198.51.100.7").status_code == 429
    # ...but the people behind the same proxy from other addresses are not.
    assert attempt(client, "lee@example.com", PASSWORD, ip="198.51.100.8").status_code == 302


def test_one_account_guessed_from_many_addresses_is_limited_then_released(
    client: Client, limits
) -> None:  # type: ignore[no-untyped-def]
    from axes.models import AccessAttempt

    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    for n in range(limits.AXES_FAILURE_LIMIT_PER_USERNAME - 1):
        assert (
            attempt(client, "lee@example.com", "wrong", ip=f"203.0.113.{n + 1}").status_code == 200
        )
    assert attempt(client, "lee@example.com", "wrong", ip="203.0.113.50").status_code == 429
    # The account is paused from everywhere for the cool-off, the right password included...
    assert attempt(client, "lee@example.com", PASSWORD, ip="192.0.2.1").status_code == 429
    # ...and only for the cool-off: it is not a permanent lockout of the real person.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - timedelta(hours=limits.AXES_COOLOFF_TIME, minutes=1)
    )
    assert attempt(client, "lee@example.com", PASSWORD, ip="192.0.2.1").status_code == 302


def test_a_few_wrong_guesses_behind_the_shared_proxy_do_not_lock_the_real_person_out(
    client: Client, limits
) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    # Someone else, behind the same reverse proxy, reaches the per-pair limit on lee's account.
    for _ in range(limits.AXES_FAILURE_LIMIT):
        attempt(client, "lee@example.com", "wrong", ip="198.51.100.66")
    assert attempt(client, "lee@example.com", PASSWORD, ip="198.51.100.66").status_code == 429
    # Lee, from their own address through the same proxy, still gets in.
    assert attempt(client, "lee@example.com", PASSWORD, ip="198.51.100.10").status_code == 302


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(client: Client, limits) -> None:  # type: ignore[no-untyped-def]
    from axes.models import AccessAttempt

    User.objects.create_user(email="lee@example.com", password=PASSWORD)
    for n in range(limits.AXES_FAILURE_LIMIT_PER_IP):
        attempt(client, f"user{n}@example.com", "wrong", ip=f"192.0.2.{n + 1}", peer="203.0.113.9")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    # A made-up X-Forwarded-For does not give the attacker a fresh address.
    assert (
        attempt(
            client, "lee@example.com", PASSWORD, ip="192.0.2.200", peer="203.0.113.9"
        ).status_code
        == 429
    )


def test_a_successful_login_does_not_clear_the_addresss_failures_on_other_accounts(
    client: Client, limits
) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_user(email="mallory@example.com", password=PASSWORD)
    for n in range(limits.AXES_FAILURE_LIMIT_PER_IP - 1):
        attempt(client, f"user{n}@example.com", "Summer2026!", ip="198.51.100.7")
        # Logging in to one's own account in between does not reset the spraying count.
        assert (
            attempt(client, "mallory@example.com", PASSWORD, ip="198.51.100.7").status_code == 302
        )
        client.logout()
    assert (
        attempt(client, "user99@example.com", "Summer2026!", ip="198.51.100.7").status_code == 429
    )


def test_the_client_address_is_the_last_one_not_added_by_a_trusted_proxy(rf, settings) -> None:  # type: ignore[no-untyped-def]
    from config.lib.client_ip import client_ip

    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8", "127.0.0.1"]
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4, 10.0.0.7"
    )
    assert client_ip(request) == "198.51.100.4"  # 6.6.6.6 was made up by the client itself
    assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
    assert (
        client_ip(rf.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="10.9.9.9"))
        == "198.51.100.4"
    )
    assert (
        client_ip(rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-ip"))
        == "10.0.0.2"
    )
    settings.FORWARDED_ALLOW_IPS = ["*"]
    assert (
        client_ip(rf.get("/", REMOTE_ADDR="203.0.113.1", HTTP_X_FORWARDED_FOR="2001:db8::1"))
        == "2001:db8::1"
    )
