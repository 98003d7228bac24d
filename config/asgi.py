"""ASGI entry point (the web processes): webhook and API callers waiting for a result
hold no thread and no database connection (workflows.integrations.webhooks.wait_for_finish),
and a request waits for a pooled connection only briefly (DB_POOL_WEB_TIMEOUT).
The MCP endpoint (/mcp) is a Django view too: workflows.integrations.mcp_server.

Django's application is wrapped in the body size limit (config/lib/body_limit.py),
which refuses a too-large request before Django reads its body.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from config.lib.body_limit import BodySizeLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

# This is a web process: a request waits at most DB_POOL_WEB_TIMEOUT for a pooled
# connection (workers and commands wait DB_POOL_TIMEOUT), and beyond it the webhook,
# the API and /mcp answer 503 with Retry-After. Set here, before the first query makes
# the pool, from the options every connection of the process shares.
_pool_options = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
if _pool_options:
    _pool_options["timeout"] = settings.DB_POOL_WEB_TIMEOUT

from workflows.integrations.webhooks import MAX_BODY_BYTES as WEBHOOK_MAX_BODY_BYTES  # noqa: E402  (needs the apps loaded)

application = BodySizeLimit(
    django_application,
    limit=settings.MAX_REQUEST_BODY_BYTES,
    prefix_limits={"/hooks/": WEBHOOK_MAX_BODY_BYTES},
)
