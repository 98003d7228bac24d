"""The links the product shows and sends name the address it is really reached at.

Without SITE_URL, links sent (invitation emails, webhook answers' status_url) point to this
machine at the port the server listens on (PORT, as the Makefile and Procfile pass it), and pages
show the address they were loaded from. With SITE_URL, every link uses it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client

from tests.conftest import Personas
from tests.factories import published_workflow
from workflows.integrations import triggers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def _site_url_with(env: dict[str, str]) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SITE_URL", "PORT", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.SITE_URL)",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_without_site_url_links_use_the_port_the_server_listens_on() -> None:
    assert _site_url_with({"PORT": "8811"}) == "http://127.0.0.1:8811"
    assert _site_url_with({}) == "http://127.0.0.1:8000"
    assert (
        _site_url_with({"PORT": "8811", "SITE_URL": "https://stepwise.example.com/"})
        == "https://stepwise.example.com"
    )


def test_the_makefile_and_procfiles_pass_the_port() -> None:
    for procfile in ("Procfile", "Procfile.demo"):
        web = next(
            line for line in (ROOT / procfile).read_text().splitlines() if line.startswith("web:")
        )
        assert "--port $PORT" in web
    assert "PORT=$(PORT)" in (ROOT / "Makefile").read_text()


@pytest.fixture
def no_site_url(settings):  # type: ignore[no-untyped-def]
    settings.SITE_URL = "http://127.0.0.1:8000"
    settings.SITE_URL_CONFIGURED = False
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    return settings


def test_without_site_url_the_triggers_page_shows_the_address_it_was_loaded_from(
    personas: Personas, no_site_url
) -> None:  # type: ignore[no-untyped-def]
    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    client = Client(HTTP_HOST="localhost:8811")
    client.force_login(personas.alice)
    html = client.get(
        f"/w/{personas.workspace.slug}/workflows/{made.trigger.workflow_id}/triggers/"
    ).content.decode()
    assert f"http://localhost:8811/hooks/{made.trigger.public_id}" in html
    assert "127.0.0.1:8000" not in html


def test_with_site_url_the_triggers_page_shows_it(personas: Personas, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SITE_URL, settings.SITE_URL_CONFIGURED = "https://stepwise.example.com", True
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    made = triggers.trigger_create(
        workflow=published_workflow(personas.workspace), user=personas.alice
    )
    client = Client(HTTP_HOST="localhost:8811")
    client.force_login(personas.alice)
    html = client.get(
        f"/w/{personas.workspace.slug}/workflows/{made.trigger.workflow_id}/triggers/"
    ).content.decode()
    assert f"https://stepwise.example.com/hooks/{made.trigger.public_id}" in html


def test_without_site_url_the_invitation_link_shown_is_the_pages_address(
    personas: Personas, no_site_url, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client = Client(HTTP_HOST="localhost:8811")
    client.force_login(personas.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/w/{personas.workspace.slug}/invitations/",
            {"email": "dana@example.com", "role": "editor"},
            follow=True,
        )
    # POST-redirect-GET: the link is shown once, on the page the redirect leads to.
    assert response.redirect_chain[0][1] == 303
    assert response.status_code == 200
    shown = re.search(r"http://[^\s\"<]+/invitations/[A-Za-z0-9_-]+/", response.content.decode())
    assert shown and shown.group(0).startswith("http://localhost:8811/invitations/")
    # The email cannot know the page: it uses SITE_URL's default, this machine at the server's port.
    assert "http://127.0.0.1:8000/invitations/" in mail.outbox[0].body
