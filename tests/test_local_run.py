"""`make run` shows the real product, not Django's debug mode: its own 404 page, static files
served by WhiteNoise, a secret key generated once under var/ (0600), cookies usable over plain
http on 127.0.0.1. Debug mode is a deliberate choice (`DEBUG=true make run`).

The server is started as the Makefile and the Procfile start it (same environment, same command),
on a fresh var/ directory, without reinstalling anything.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.polling import wait_http
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def makefile_exports(target: str) -> dict[str, str]:
    """The `target: export NAME ?= VALUE` lines of the Makefile."""
    found = re.findall(
        rf"^{target}: export (\w+) \??= (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE
    )
    return {name: value.strip() for name, value in found}


def local_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """A bare machine's environment plus what `make run`
    exports: no SECRET_KEY, no DEBUG, no DATABASE_URL."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    }
    return {**keep, **makefile_exports("run"), "STEPWISE_VAR_DIR": str(var_dir), **extra}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _secret_key(env: dict[str, str]) -> str:
    result = _manage(
        "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)", env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("target", ["run", "demo"])
def test_make_run_and_demo_do_not_turn_debug_mode_on(target: str) -> None:
    exports = makefile_exports(target)
    assert "DEBUG" not in exports
    assert exports["STEPWISE_LOCAL"] == "true"
    assert exports["SECURE_COOKIES"] == "false"


def test_the_local_setup_generates_a_secret_key_once_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    first = _secret_key(local_env(tmp_path / "a"))
    assert len(first) >= 50
    key_file = tmp_path / "a" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == first
    assert _secret_key(local_env(tmp_path / "a")) == first  # kept
    assert _secret_key(local_env(tmp_path / "b")) != first  # made per installation
    assert not list((tmp_path / "a").glob(".secret_key.*"))  # no temporary file left


def test_a_secret_key_from_the_environment_wins_and_nothing_is_written(tmp_path: Path) -> None:
    assert _secret_key(local_env(tmp_path, SECRET_KEY="k" * 60)) == "k" * 60
    assert not (tmp_path / "secret_key").exists()


def test_outside_the_local_setup_a_missing_secret_key_still_stops_the_start(tmp_path: Path) -> None:
    env = {k: v for k, v in local_env(tmp_path).items() if k != "STEPWISE_LOCAL"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[str]:
    """`make run`'s web process: migrate, then the Procfile's
    uvicorn command, with the Makefile's environment."""
    port = free_port()
    env = local_env(tmp_path, PORT=str(port))
    migrated = _manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    web = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = web.removeprefix("web:").strip().replace("$PORT", str(port)).split()
    command[0] = str(
        Path(sys.executable).parent / Path(command[0]).name
    )  # the venv in use, not ./.venv
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", timeout=60)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_make_run_shows_the_product_not_the_debug_pages(local_server: str) -> None:
    home = httpx.get(local_server + "/")
    assert home.status_code == 200
    signup = httpx.get(local_server + "/accounts/signup/")
    assert 'name="email"' in signup.text
    # Cookies work over plain http on 127.0.0.1: not marked Secure.
    assert "csrftoken" in signup.cookies
    assert "secure" not in signup.headers["set-cookie"].lower()

    missing = httpx.get(local_server + "/no/such/page/")
    assert missing.status_code == 404
    assert "Nothing here" in missing.text
    assert "URLconf" not in missing.text and "Django tried these URL patterns" not in missing.text

    for name in ("tokens", "base", "components", "pages"):
        css = httpx.get(local_server + f"/static/css/{name}.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    links = re.findall(r'href="(/static/[^"]+)"', signup.text)
    assert links and all(httpx.get(local_server + link).status_code == 200 for link in links)
