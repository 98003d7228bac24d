"""Stepwise settings: one module, driven by environment variables.

Every value can come from the environment or an optional `.env` file at the
project root; secrets can also be read from a file named by `NAME_FILE`
(Docker and Kubernetes secrets). A malformed value stops the process at start
with a message naming the variable, instead of surfacing later as odd
behaviour.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, overload
from urllib.parse import urlparse

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key
from django.utils.csp import CSP
from dotenv import load_dotenv

from config.lib.allowed_hosts import parse_allowed_hosts

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)


@overload
def env(name: str) -> str | None: ...
@overload
def env(name: str, default: str) -> str: ...
def env(name: str, default: str | None = None) -> str | None:
    """The variable `name`, or the contents of the file named by `name_FILE`."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {e}") from e
    return default


def envbool(name: str, default: str) -> bool:
    value = env(name, default)
    if value in ("True", "true", "1", "yes"):
        return True
    if value in ("False", "false", "0", "no", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: str) -> int:
    value = env(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name: str, default: str) -> float:
    value = env(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DEBUG = envbool("DEBUG", "False")
VAR_DIR = Path(env("STEPWISE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# `make run` and `make demo` set this: the embedded setup on one machine
# (SQLite, the filesystem broker), where nobody has to invent a secret key.
LOCAL = envbool("STEPWISE_LOCAL", "False")


def _local_secret_key(path: Path) -> str:
    """A random key made on the first start and kept in `path`, readable by this user only.

    Web, worker and beat may start at once: the key is written to a private
    temporary file, then linked into place, so nobody reads half a key and
    the first process to link wins."""
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(get_random_secret_key() + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} does not hold a secret key: delete it and start again.")
    return key


SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"
    elif LOCAL:
        SECRET_KEY = _local_secret_key(VAR_DIR / "secret_key")
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (see README.md; `make run` makes one)."
        )
# Rotating SECRET_KEY: move the old key here (comma-separated, or one per line
# in SECRET_KEY_FALLBACKS_FILE). Sessions, password-reset links and the
# webhook secrets encrypted under an old key stay readable; everything new is
# signed and encrypted with SECRET_KEY.
SECRET_KEY_FALLBACKS = [
    key.strip()
    for key in (env("SECRET_KEY_FALLBACKS", "") or "").replace("\n", ",").split(",")
    if key.strip()
]

# The public address, for links sent by email and in API/webhook answers.
# Unset, it is this machine at the port the web server listens on (PORT, as
# the Makefile and Procfile pass it), and pages show the address they were
# loaded from (config/lib/site.py).
SITE_URL_CONFIGURED = bool(env("SITE_URL"))
SITE_URL = (env("SITE_URL") or f"http://127.0.0.1:{envint('PORT', '8000')}").rstrip("/")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    # Only for its static files and templates: the API docs page (Swagger UI) without a CDN.
    "ninja",
    "axes",
    "accounts",
    "workflows",
]

MIDDLEWARE = [
    # Outermost, so a failed htmx request gets its error toast whoever refused it.
    "config.lib.htmx_errors.HtmxErrorToastMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A GET of a POST-only address goes to the page with its form, not an empty 405.
    "config.lib.post_only.FormPageRedirectMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After authentication, so it sees its outcome in the views.
    "axes.middleware.AxesMiddleware",
    # Innermost on purpose. Under ASGI, Django runs every async-capable
    # middleware in async mode and sends each of its process_request and
    # process_response through sync_to_async: a dozen thread hops per
    # request, which cost more CPU than the view (docs/benchmarks.md).
    # WhiteNoise is sync-only, so placed last it makes the whole stack
    # above it run synchronously in one thread; async views (webhooks) still
    # run on the event loop beneath it. Static files are still served
    # before any view runs.
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            # APP_DIRS, plus each step kind's own templates (workflows/steps/<kind>/templates/).
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                        "workflows.steps.loader.Loader",
                    ],
                )
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.workspaces",
                "accounts.context_processors.budget_banner",
                "accounts.context_processors.mail",
                "workflows.context_processors.llm_status",
            ],
        },
    },
]

# Database: SQLite under var/ by default, so a bare machine runs the product.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'stepwise.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the
    # writer, IMMEDIATE transactions take the write lock up front so two
    # writers queue on the busy timeout instead of failing with "locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: the tests' Celery worker process opens it too.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
# PostgreSQL connections are pooled by default (DB_POOL_MAX_SIZE=0 turns the
# pool off, and DB_CONN_MAX_AGE then applies): without a pool every request and
# every run opens a connection, which costs more CPU than the work it does. A
# worker's hundreds of threads mostly wait on OpenAI and share the pool (the
# engine returns its connection during each call); a web process needs a few at
# once. 10 per process keeps compose's `--scale worker=4` (2 web processes, 4
# workers, beat: 7 processes, 70 connections at most) under PostgreSQL's
# default max_connections of 100.
DB_POOL_MAX_SIZE = envint("DB_POOL_MAX_SIZE", "10")
# How long a process waits for a pooled connection before the query fails. A worker
# or a command can wait; a web process (config/asgi.py applies DB_POOL_WEB_TIMEOUT
# there) must not: a caller beyond capacity is better answered 503 with Retry-After
# at once than 500 after half a minute.
DB_POOL_TIMEOUT = envfloat("DB_POOL_TIMEOUT", "30")
DB_POOL_WEB_TIMEOUT = envfloat("DB_POOL_WEB_TIMEOUT", "1")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (accounts/login_throttle.py): failures within the cool-off
# are counted per account at one address, per account from everywhere
# (higher, so strangers cannot lock a person out with a few guesses) and per
# address across accounts (password spraying); each key has its own limit,
# and a lock lasts only the cool-off.
AXES_HANDLER = "accounts.login_throttle.LoginThrottleHandler"
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_FAILURE_LIMIT_PER_USERNAME = envint("AXES_FAILURE_LIMIT_PER_USERNAME", "20")
AXES_FAILURE_LIMIT_PER_IP = envint("AXES_FAILURE_LIMIT_PER_IP", "50")
AXES_COOLOFF_TIME = envfloat("AXES_COOLOFF_MINUTES", "15") / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]
# X-Forwarded-For is believed only from these proxies (addresses or networks, `*` for any),
# by the login throttle and the mail rate limits as by uvicorn, which reads the same variable.
FORWARDED_ALLOW_IPS = envlist("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
AXES_CLIENT_IP_CALLABLE = "config.lib.client_ip.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.login_throttle.username_of"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

# A new account confirms its address through a signed link before it can log in.
EMAIL_VERIFICATION_HOURS = envint("EMAIL_VERIFICATION_HOURS", "48")
# Mail people can make the server send, per hour (accounts/mail.py): invitations by one member,
# mail requests of any kind from one client address, reset and sign-up mails to one address.
MAIL_LIMIT_PER_USER = envint("MAIL_LIMIT_PER_USER", "30")
MAIL_LIMIT_PER_IP = envint("MAIL_LIMIT_PER_IP", "30")
MAIL_LIMIT_PER_RECIPIENT = envint("MAIL_LIMIT_PER_RECIPIENT", "3")
# Approval steps' emails, per hour (workflows/steps/approval/mail.py): to one approver, and for
# the runs one member starts. Higher than the above: approving is work people do all day.
APPROVAL_MAILS_PER_APPROVER = envint("APPROVAL_MAILS_PER_APPROVER", "60")
APPROVAL_MAILS_PER_STARTER = envint("APPROVAL_MAILS_PER_STARTER", "300")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if envbool("STATIC_MANIFEST", "False")
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not envbool("STATIC_MANIFEST", "False")

DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Stepwise <stepwise@localhost>")
# Without EMAIL_URL (smtp+tls://user:pw@host:587, smtps://…, smtp://…) mail is
# written to the console, i.e. the server's log: a fresh `make run` works (the
# sign-up link is in the log), and a system check and the pages that send mail
# say that mail is not configured (accounts/mail.py).
MAIL_CONFIGURED = bool(env("EMAIL_URL"))
MAILERS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
}
if env("EMAIL_URL"):
    _email = urlparse(env("EMAIL_URL"))
    MAILERS["default"] = {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": _email.hostname or "localhost",
            "port": _email.port or 587,
            "username": _email.username or "",
            "password": _email.password or "",
            "use_tls": _email.scheme == "smtp+tls",
            "use_ssl": _email.scheme == "smtps",
        },
    }

# Security. Every page's scripts and styles come from our own static files;
# the policy forbids anything else, inline code included.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "False" if DEBUG else "True")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False")
# Health checks (compose, load balancers) ask over plain http from inside.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if envbool("BEHIND_PROXY", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Celery. The database is the source of truth for runs: messages carry ids
# only, so no result backend is configured.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message whose worker died is redelivered after this; the reaper
        # recovers such runs much sooner through their expired lease.
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "3600"),
    }
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_POOL = env("CELERY_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = envint("CELERY_WORKER_CONCURRENCY", "32")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# The engine. Leases let a second worker take over a run whose worker died.
RUN_LEASE_SECONDS = envint("RUN_LEASE_SECONDS", "30")
RUN_REAPER_INTERVAL_SECONDS = envfloat("RUN_REAPER_INTERVAL_SECONDS", "10")
RUN_QUEUED_GRACE_SECONDS = envint("RUN_QUEUED_GRACE_SECONDS", "60")
RUN_TIME_LIMIT_SECONDS = envint("RUN_TIME_LIMIT_SECONDS", "3600")
# Runs of one workspace sent to the workers at once; the rest wait their turn,
# so one workspace's flood cannot queue ahead of everyone else. Keep it at or
# below the total worker threads.
RUN_MAX_IN_FLIGHT_PER_WORKSPACE = envint("RUN_MAX_IN_FLIGHT_PER_WORKSPACE", "50")
# The most items a `map` step runs over (a longer list fails the step).
MAP_MAX_ITEMS = envint("MAP_MAX_ITEMS", "1000")
# The most child runs started below one top-level run, at every depth together (nested
# maps multiply): a step that would start more fails, saying so. 0: no cap.
RUN_MAX_DESCENDANTS = envint("RUN_MAX_DESCENDANTS", "10000")
if RUN_MAX_DESCENDANTS < 0:
    raise ImproperlyConfigured(
        f"RUN_MAX_DESCENDANTS must be 0 (no cap) or more, not {RUN_MAX_DESCENDANTS}"
    )
# Run retention (workflows/retention.py): the most days a workspace owner may keep finished
# runs' details; 0 (the default) lets each owner choose (30 days unless they change it).
RUN_RETENTION_MAX_DAYS = envint("RUN_RETENTION_MAX_DAYS", "0")
if RUN_RETENTION_MAX_DAYS < 0:
    raise ImproperlyConfigured(
        f"RUN_RETENTION_MAX_DAYS must be 0 (no maximum) or more, not {RUN_RETENTION_MAX_DAYS}"
    )
STEP_TIMEOUT_SECONDS = envfloat("STEP_TIMEOUT_SECONDS", "120")
LLM_MAX_ATTEMPTS = envint("LLM_MAX_ATTEMPTS", "5")
LLM_RETRY_BASE_SECONDS = envfloat("LLM_RETRY_BASE_SECONDS", "1")
LLM_RETRY_MAX_SECONDS = envfloat("LLM_RETRY_MAX_SECONDS", "30")
# A streamed answer's text so far is written to its step at most this often
# (one small UPDATE each), for the run page, the editor and the events API.
STREAM_PERSIST_SECONDS = envfloat("STREAM_PERSIST_SECONDS", "0.25")
# How often a web process reads a run that someone watches live (once per run,
# whatever the number of viewers: workflows/integrations/run_events.py).
RUN_EVENTS_POLL_SECONDS = envfloat("RUN_EVENTS_POLL_SECONDS", "0.2")
# Live event streams one member (their pages) or one API token may hold open at once, across
# every web process: one more is answered 429 (workflows/integrations/stream_slots.py). 0: no cap.
STREAMS_PER_USER = envint("STREAMS_PER_USER", "20")
if STREAMS_PER_USER < 0:
    raise ImproperlyConfigured(
        f"STREAMS_PER_USER must be 0 (no cap) or more, not {STREAMS_PER_USER}"
    )

# The largest request body anywhere but /hooks/ (1 MB there): refused with a
# 413 before it is read (config/lib/body_limit.py); Django's own check agrees.
MAX_REQUEST_BODY_BYTES = envint("MAX_REQUEST_BODY_BYTES", "2500000")
if MAX_REQUEST_BODY_BYTES < 1:
    raise ImproperlyConfigured(
        f"MAX_REQUEST_BODY_BYTES must be at least 1, not {MAX_REQUEST_BODY_BYTES}"
    )
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Evals (docs/evals.md): a dataset's rows, an upload's size, an eval's runs in flight.
DATASET_MAX_ROWS = envint("DATASET_MAX_ROWS", "1000")
DATASET_MAX_UPLOAD_BYTES = envint("DATASET_MAX_UPLOAD_BYTES", "2000000")
EVAL_MAX_CONCURRENCY = envint("EVAL_MAX_CONCURRENCY", "10")

# Webhooks, API and callbacks (workflows/integrations/: webhooks.py, api.py, callbacks.py;
# config/lib/outbound.py).
RUN_WAIT_MAX_SECONDS = envint(
    "RUN_WAIT_MAX_SECONDS", "60"
)  # ?wait=N is capped here (N <= 60 anyway)
# Webhook requests a web process works on at once (checks, run start; not callers
# waiting for a result): beyond it a webhook is answered 503 with Retry-After at
# once, costing no thread and no database connection. 0: no cap.
WEBHOOK_MAX_IN_PROGRESS = envint("WEBHOOK_MAX_IN_PROGRESS", "20")
# How long a tool call at /mcp waits for its run before answering its id and status.
MCP_CALL_WAIT_SECONDS = envint("MCP_CALL_WAIT_SECONDS", "60")
if MCP_CALL_WAIT_SECONDS < 0:
    raise ImproperlyConfigured(
        f"MCP_CALL_WAIT_SECONDS must be 0 or more, not {MCP_CALL_WAIT_SECONDS}"
    )
CALLBACK_MAX_ATTEMPTS = envint("CALLBACK_MAX_ATTEMPTS", "8")
CALLBACK_RETRY_BASE_SECONDS = envfloat("CALLBACK_RETRY_BASE_SECONDS", "10")
CALLBACK_RETRY_MAX_SECONDS = envfloat("CALLBACK_RETRY_MAX_SECONDS", "3600")
CALLBACK_TIMEOUT_SECONDS = envfloat("CALLBACK_TIMEOUT_SECONDS", "10")
# "When a run fails" (workflows/integrations/failure_alerts.py): failures older than this are
# never notified (beat was down; the setting was just turned on); a digest lists this many
# runs; a workspace's owners and admins get at most this many such emails an hour.
FAILURE_ALERT_RECENT_SECONDS = envint("FAILURE_ALERT_RECENT_SECONDS", "3600")
FAILURE_ALERT_LISTED = envint("FAILURE_ALERT_LISTED", "20")
FAILURE_EMAILS_PER_HOUR = envint("FAILURE_EMAILS_PER_HOUR", "30")
# Internal hosts http steps may reach on purpose (config/lib/allowed_hosts.py): addresses,
# ranges or names, each with an optional port, e.g. "10.0.0.0/8,api.internal:8443".
# Empty (the default): nothing internal. A workspace owner can narrow it further.
OUTBOUND_ALLOWED_HOSTS = envlist("OUTBOUND_ALLOWED_HOSTS", "")
try:
    parse_allowed_hosts(OUTBOUND_ALLOWED_HOSTS)
except ValueError as _error:
    raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_HOSTS: {_error}") from None
# Lets the guarded HTTP client reach private addresses. Only for tests that
# receive callbacks on 127.0.0.1; never set it in production.
OUTBOUND_ALLOW_PRIVATE_FOR_TESTS = envbool("OUTBOUND_ALLOW_PRIVATE_FOR_TESTS", "False")

# OpenAI. One key for the whole server; users never hold one.
OPENAI_API_KEY = env("OPENAI_API_KEY", "") or ""
OPENAI_BASE_URL = env("OPENAI_BASE_URL", "") or None
# Answers come from `python -m dev.fake_openai` (make demo): the UI says so.
STEPWISE_SIMULATED_LLM = envbool("STEPWISE_SIMULATED_LLM", "False")

# Prices in integer nano-USD per token; limits in tokens.
LLM_MODELS: dict[str, dict[str, int]] = {
    "gpt-4.1-mini": {
        "input_nanousd": 400,
        "cached_input_nanousd": 100,
        "output_nanousd": 1600,
        "context_tokens": 1_047_576,
        "max_output_tokens": 32_768,
    },
}
LLM_DEFAULT_MODEL = "gpt-4.1-mini"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Webhook trigger ids are capabilities: request lines must not carry them into logs.
    "filters": {"scrub_hook_ids": {"()": "config.lib.log_scrub.ScrubHookIds"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["scrub_hook_ids"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Their INFO and DEBUG lines carry URLs and headers, which may hold a workspace
        # secret an http step sent (or an answer echoed back): never logged, even at DEBUG.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        # The MCP SDK logs a line per request at /mcp (a session manager starting and stopping).
        "mcp": {"level": "WARNING"},
        # Request lines (uvicorn, runserver) go through the console handler and its scrubber.
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
        # Django's default handler for "django" (DEBUG only) would print 4xx paths unfiltered.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["console"], "propagate": False},
    },
}

CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "reap-runs": {
        "task": "workflows.reap_runs",
        "schedule": RUN_REAPER_INTERVAL_SECONDS,
        # A reaper message nobody picked up in time is useless: the next one comes.
        "options": {"expires": RUN_REAPER_INTERVAL_SECONDS},
    },
    # Cron schedules (workflows/integrations/schedules.py; django-celery-beat does not
    # support Django 6.1).
    "schedules-tick": {
        "task": "workflows.schedules_tick",
        "schedule": envfloat("SCHEDULES_TICK_SECONDS", "30"),
        "options": {"expires": envfloat("SCHEDULES_TICK_SECONDS", "30")},
    },
    # Completion callbacks that are due and were not sent (workflows/integrations/callbacks.py).
    "callbacks-sweep": {
        "task": "workflows.callbacks_sweep",
        "schedule": envfloat("SCHEDULES_TICK_SECONDS", "30"),
        "options": {"expires": envfloat("SCHEDULES_TICK_SECONDS", "30")},
    },
    # "When a run fails": a notice per workspace per tick (integrations/failure_alerts.py).
    "failures-notify": {
        "task": "workflows.failures_notify",
        "schedule": envfloat("SCHEDULES_TICK_SECONDS", "30"),
        "options": {"expires": envfloat("SCHEDULES_TICK_SECONDS", "30")},
    },
    # Webhook deliveries older than a week (the triggers page lists recent ones).
    "deliveries-prune": {
        "task": "workflows.deliveries_prune",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    # Run details past their workspace's retention (workflows/retention.py), nightly at 03:17 UTC.
    "runs-prune": {
        "task": "workflows.runs_prune",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 6 * 3600},
    },
}
# Tests and side-by-side installs on one broker pick their own queue.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "stepwise")
# Beat's tasks, the reaper first, go to the recovery queue that re-sent runs go
# to (workflows/broker.py, recovery_queue): on the main queue, behind a backlog
# of new runs, a reaper message expired before a worker reached it, so the runs
# of a dead worker were not re-sent until the backlog had drained.
for _entry in CELERY_BEAT_SCHEDULE.values():
    _entry.setdefault("options", {})["queue"] = f"{CELERY_TASK_DEFAULT_QUEUE}.recovery"
