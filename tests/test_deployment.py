from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-like-secret-with-enough-entropy-9f8e7d6c5b4a",
    "ALLOWED_HOSTS": "stepwise.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://stepwise.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_COOKIES": "true",
    "EMAIL_URL": "smtp+tls://stepwise:pw@smtp.example.com:587",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_check_passes_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_warns_at_start_when_mail_is_not_configured() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_URL"}
    result = _manage("check", env=env)
    assert result.returncode == 0
    assert (
        "accounts.W001" in result.stderr
        and "Mail is not configured on this server (EMAIL_URL)" in result.stderr
    )


def test_it_refuses_to_start_without_a_secret_key_in_production() -> None:
    env = {**PRODUCTION, "SECRET_KEY": ""}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_fails_loudly_on_a_malformed_boolean() -> None:
    result = _manage("check", env={**PRODUCTION, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_it_fails_loudly_on_a_malformed_number() -> None:
    result = _manage("check", env={**PRODUCTION, "RUN_LEASE_SECONDS": "thirty"})
    assert result.returncode != 0
    assert "RUN_LEASE_SECONDS must be a whole number" in result.stderr


def test_it_reads_a_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PRODUCTION["SECRET_KEY"] + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"} | {
        "SECRET_KEY_FILE": str(secret)
    }
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_reads_secret_key_fallbacks_comma_separated_or_from_a_file(tmp_path: Path) -> None:
    show = ("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)")
    result = _manage(*show, env={**PRODUCTION, "SECRET_KEY_FALLBACKS": "old-key-1, old-key-2,"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['old-key-1', 'old-key-2']"
    keys = tmp_path / "fallbacks"
    keys.write_text("old-key-1\nold-key-2\n")
    result = _manage(*show, env={**PRODUCTION, "SECRET_KEY_FALLBACKS_FILE": str(keys)})
    assert result.stdout.strip().splitlines()[-1] == "['old-key-1', 'old-key-2']", result.stderr


def test_the_compose_file_validates() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "POSTGRES_PASSWORD": "pw", "SECRET_KEY": "s"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_scales_workers_without_fixed_names_or_ports() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    worker = text.split("\n  worker:\n", 1)[1].split("\n  beat:\n", 1)[0]
    assert "container_name" not in worker
    assert "ports:" not in worker


def compose_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The environment compose gives `service`, with `dotenv` as the .env file: ${X:-default} and
    ${X:?message} resolved as compose does (docker-compose itself is not needed)."""
    config = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    def resolve(value: object) -> str:
        def one(match: re.Match[str]) -> str:
            name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
            if op == ":-":
                return dotenv.get(name) or arg
            if op == ":?" and not dotenv.get(name):
                raise AssertionError(f"compose requires {name}: {arg}")
            return dotenv.get(name, "")

        return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, str(value))

    return {
        name: resolve(value) for name, value in config["services"][service]["environment"].items()
    }


MINIMAL_DOTENV = {
    "SECRET_KEY": PRODUCTION["SECRET_KEY"],
    "POSTGRES_PASSWORD": "pw",
    "ALLOWED_HOSTS": "stepwise.example.com",
    "SITE_URL": "https://stepwise.example.com",
    "EMAIL_URL": "smtp+tls://stepwise:pw@smtp.example.com:587",
}


def _compose_check(dotenv: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = compose_environment("web", dotenv)
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in env and k not in PRODUCTION and k not in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_check_passes_under_composes_environment_with_only_the_required_values() -> None:
    env = compose_environment("web", MINIMAL_DOTENV)
    assert env["SECURE_SSL_REDIRECT"] == "true"
    assert int(env["SECURE_HSTS_SECONDS"]) >= 31536000
    assert env["SECURE_COOKIES"] == "true"
    result = _compose_check(MINIMAL_DOTENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_check_warns_when_compose_has_no_mail_configuration() -> None:
    dotenv = {k: v for k, v in MINIMAL_DOTENV.items() if k != "EMAIL_URL"}
    result = _compose_check(dotenv)
    assert result.returncode != 0
    assert "accounts.W001" in result.stdout + result.stderr


def test_composes_https_settings_can_be_turned_off_in_the_dotenv_file() -> None:
    dotenv = {
        **MINIMAL_DOTENV,
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "SECURE_COOKIES": "false",
    }
    env = compose_environment("web", dotenv)
    assert (env["SECURE_SSL_REDIRECT"], env["SECURE_HSTS_SECONDS"], env["SECURE_COOKIES"]) == (
        "false",
        "0",
        "false",
    )
    result = _compose_check(dotenv)
    assert result.returncode != 0
    assert (
        "security.W004" in result.stdout + result.stderr
    )  # the deploy check says what was turned off


def test_every_app_service_gets_the_same_environment() -> None:
    envs = [
        compose_environment(name, MINIMAL_DOTENV) for name in ("web", "worker", "beat", "migrate")
    ]
    assert all(env == envs[0] for env in envs)
    assert "SECRET_KEY_FALLBACKS" in envs[0]


def test_the_health_check_is_not_redirected_to_https() -> None:
    from django.conf import settings

    assert any(re.match(pattern, "healthz") for pattern in settings.SECURE_REDIRECT_EXEMPT)


SHOW_DATABASE = (
    "shell",
    "-c",
    "import json; from django.conf import settings; d = settings.DATABASES['default'];"
    " print(json.dumps([d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool')]))",
)
POSTGRES_ONLY = {**PRODUCTION, "DATABASE_URL": "postgres://stepwise:pw@db.example.com/stepwise"}


def _database_settings(env: dict[str, str]) -> list:  # type: ignore[type-arg]
    """CONN_MAX_AGE and the pool options of a process started with `env` (no connection made)."""
    import json

    result = _manage(*SHOW_DATABASE, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_postgres_database_url_alone_pools_the_connections(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DB_POOL_MAX_SIZE", raising=False)
    monkeypatch.delenv("DB_CONN_MAX_AGE", raising=False)
    conn_max_age, pool = _database_settings(POSTGRES_ONLY)
    assert pool == {"min_size": 2, "max_size": 10, "timeout": 30}
    assert conn_max_age == 0  # Django refuses persistent connections beside a pool


def test_the_pool_size_is_set_by_db_pool_max_size_and_zero_turns_it_off(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DB_CONN_MAX_AGE", raising=False)
    assert _database_settings({**POSTGRES_ONLY, "DB_POOL_MAX_SIZE": "25"})[1]["max_size"] == 25
    assert _database_settings(
        {**POSTGRES_ONLY, "DB_POOL_MAX_SIZE": "0", "DB_CONN_MAX_AGE": "60"}
    ) == [60, None]


def test_sqlite_has_no_pool(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DB_POOL_MAX_SIZE", raising=False)
    sqlite = {**PRODUCTION, "DATABASE_URL": "sqlite:////tmp/stepwise-settings-test.sqlite3"}
    assert _database_settings(sqlite)[1] is None
