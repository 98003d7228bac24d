"""ASGI entry point (the web processes): webhook and API callers waiting for a result
hold no thread and no database connection (workflows.integrations.webhooks.wait_for_finish),
and a request waits for a pooled connection only briefly (DB_POOL_WEB_TIMEOUT).
The MCP endpoint (/mcp) is a Django view too: workflows.integrations.mcp_server.

Django's application is wrapped in the body size limit (config/lib/body_limit.py),
which refuses a too-large request before Django reads its body, and in the webhooks'
in-progress cap (config/lib/in_progress.py), which refuses a webhook with 503 while the
process already works on WEBHOOK_MAX_IN_PROGRESS of them, before Django sees it.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from config.lib.body_limit import BodySizeLimit
from config.lib.in_progress import RefuseWhileFull

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

# This is a web process: a request waits at most DB_POOL_WEB_TIMEOUT for a pooled
# connection (workers and commands wait DB_POOL_TIMEOUT), and beyond it the webhook,
# the API and /mcp answer 503 with Retry-After. Set here, before the first query makes
# the pool, from the options every connection of the process shares.
_pool_options = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
if _pool_options:
    _pool_options["timeout"] = settings.DB_POOL_WEB_TIMEOUT

from workflows.integrations import webhooks  # noqa: E402  (needs the apps loaded)

application = RefuseWhileFull(
    BodySizeLimit(
        django_application,
        limit=settings.MAX_REQUEST_BODY_BYTES,
        prefix_limits={"/hooks/": webhooks.MAX_BODY_BYTES},
    ),
    # Beyond WEBHOOK_MAX_IN_PROGRESS webhooks at once, a 503 before Django's
    # thread hop and middleware: refusals stay cheap, so they stay fast.
    prefix="/hooks/",
    counter=webhooks.IN_PROGRESS,
    body=webhooks.overloaded_body(),
    retry_after=webhooks.OVERLOADED_RETRY_AFTER_SECONDS,
)
