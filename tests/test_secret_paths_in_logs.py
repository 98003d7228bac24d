"""Links that carry a secret (webhook ids, invitation and password-reset tokens) never reach a log.

Checked where they would be written: the console handler every logger ends in
(django.request, django.security, axes), the records django-axes keeps in the
database, and the access log of a real uvicorn process.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Membership, Role
from accounts.services import invitation_create
from config.lib.log_scrub import ScrubHookIds, scrub
from tests.conftest import IDLE_QUEUE, Personas
from tests.factories import PASSWORD
from tests.polling import wait_for_output


@pytest.fixture
def invitation_token(personas: Personas) -> str:
    owner = Membership.objects.get(user=personas.alice, workspace=personas.workspace)
    _, token = invitation_create(
        workspace=personas.workspace, email="dora@example.com", role=Role.EDITOR, actor=owner
    )
    return token


@pytest.fixture
def reset_link(personas: Personas) -> tuple[str, str, str]:
    uid = urlsafe_base64_encode(force_bytes(personas.bob.pk))
    token = default_token_generator.make_token(personas.bob)
    return f"/accounts/reset/{uid}/{token}/", uid, token


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler writes (every logger propagates to it)."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, ScrubHookIds) for f in h.filters)
    ]
    assert handlers, "the console handler with the scrubbing filter is not configured"
    stream = io.StringIO()
    previous = [h.setStream(stream) for h in handlers]  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            handler.setStream(old)  # type: ignore[attr-defined]


def test_it_scrubs_every_secret_bearing_path_in_a_line() -> None:
    cases = {
        (
            'GET /invitations/abcDEF-123_x/ HTTP/1.1" 200'
        ): 'GET /invitations/[scrubbed]/ HTTP/1.1" 200',
        (
            "Not Found: /accounts/reset/MQ/c3v2kq-9f0e1d2c3b4a/"
        ): "Not Found: /accounts/reset/[scrubbed]/",
        "GET /accounts/reset/MQ/set-password/": "GET /accounts/reset/[scrubbed]/set-password/",
        "GET /accounts/reset/done/": "GET /accounts/reset/done/",
        "GET /accounts/login/?next=%2Finvitations%2FabcDEF%2F": (
            "GET /accounts/login/?next=%2Finvitations%2F[scrubbed]%2F"
        ),
        "next=/invitations/abcDEF/": "next=/invitations/[scrubbed]/",
        "POST /hooks/qjPRQBv8mU?wait=3": "POST /hooks/[scrubbed]?wait=3",
        "GET /w/acme/invitations/3/revoke/": "GET /w/acme/invitations/[scrubbed]/revoke/",
        (
            "GET /accounts/verify/eyJlbWFpbCI6ImRvcmEifQ:1vT2x:abc/"
        ): "GET /accounts/verify/[scrubbed]/",
        "POST /accounts/verify/resend/": "POST /accounts/verify/resend/",
        'POST /decisions/eyJyIjoxfQ.sig-_x/ HTTP/1.1" 302': (
            'POST /decisions/[scrubbed]/ HTTP/1.1" 302'
        ),
        "GET /accounts/login/?next=%2Fdecisions%2FeyJyIjoxfQ.sig%2F": (
            "GET /accounts/login/?next=%2Fdecisions%2F[scrubbed]%2F"
        ),
    }
    for line, expected in cases.items():
        assert scrub(line) == expected, line


def test_django_request_and_security_warnings_do_not_show_the_tokens(
    personas: Personas,
    invitation_token: str,
    reset_link: tuple[str, str, str],
    console: io.StringIO,
) -> None:
    link, uid, token = reset_link
    client = Client(enforce_csrf_checks=True)
    assert (
        client.get("/invitations/not-a-real-token-0123456789/").status_code == 404
    )  # django.request
    assert (
        client.post(f"/invitations/{invitation_token}/", {"password": "x"}).status_code == 403
    )  # csrf
    assert Client().get(link + "more/").status_code == 404  # django.request
    assert client.post(link, {"new_password1": "x"}).status_code == 403  # django.security.csrf
    written = console.getvalue()
    assert "Forbidden (CSRF" in written and "Not Found" in written
    for secret in (invitation_token, token, "not-a-real-token-0123456789"):
        assert secret not in written
    assert "/invitations/[scrubbed]/" in written and "/accounts/reset/[scrubbed]/" in written


def _axes_rows() -> str:
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    rows = [
        *AccessAttempt.objects.values(),
        *AccessFailureLog.objects.values(),
        *AccessLog.objects.values(),
    ]
    assert rows, "axes recorded nothing"
    return repr(rows)


def test_axes_records_and_messages_do_not_keep_the_invitation_token(
    personas: Personas, invitation_token: str, console: io.StringIO, settings
) -> None:
    settings.AXES_ENABLE_ACCESS_FAILURE_LOG = True
    invitation = f"/invitations/{invitation_token}/"
    login = f"{reverse('login')}?{urlencode({'next': invitation})}"
    client = Client()
    for _ in range(2):  # a new attempt row, then the same row updated
        response = client.post(
            login, {"username": "dora@example.com", "password": "wrong", "next": invitation}
        )
        assert response.status_code in (200, 403, 429)
    # Dora signs up from the link: axes records the login on the invitation's path.
    response = client.post(
        invitation,
        {
            "name": "Dora",
            "password": PASSWORD,
            "password2": PASSWORD,
            "new_password1": PASSWORD,
            "new_password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rows = _axes_rows()
    assert "/invitations/[scrubbed]/" in rows
    assert invitation_token not in rows
    assert invitation_token not in console.getvalue()


@pytest.mark.integration
def test_the_access_log_of_the_server_never_shows_an_invitation_or_reset_token(
    worker_env: dict[str, str],
    transactional_db: None,
    personas: Personas,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import httpx

    from tests.servers import AsgiServer

    owner = Membership.objects.get(user=personas.alice, workspace=personas.workspace)
    _, token = invitation_create(
        workspace=personas.workspace, email="dora@example.com", role=Role.EDITOR, actor=owner
    )
    uid = urlsafe_base64_encode(force_bytes(personas.bob.pk))
    reset_token = default_token_generator.make_token(personas.bob)
    server = AsgiServer(
        {**worker_env, "CELERY_QUEUE": IDLE_QUEUE}, log_level="info"
    )  # access lines on, like docker-compose
    try:
        assert httpx.get(f"{server.url}/invitations/{token}/").status_code == 200
        assert httpx.get(f"{server.url}/invitations/{token}x/").status_code == 404
        assert httpx.get(f"{server.url}/accounts/reset/{uid}/{reset_token}/").status_code == 302
        assert (
            httpx.get(f"{server.url}/accounts/login/?next=%2Finvitations%2F{token}%2F").status_code
            == 200
        )
        logged = wait_for_output(capfd, '"GET /accounts/login/')
    finally:
        server.stop()
    out, err = capfd.readouterr()
    logged += out + err
    assert "GET /invitations/[scrubbed]/ HTTP/1.1" in logged
    assert token not in logged and reset_token not in logged
