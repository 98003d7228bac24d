"""ASGI entry point: webhook and API callers waiting for a result hold no thread and no
database connection (workflows.integrations.webhooks.wait_for_finish).

Django's application is wrapped in the body size limit (config/lib/body_limit.py),
which refuses a too-large request before Django reads its body.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from config.lib.body_limit import BodySizeLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

from workflows.integrations.webhooks import MAX_BODY_BYTES as WEBHOOK_MAX_BODY_BYTES  # noqa: E402  (needs the apps loaded)

application = BodySizeLimit(
    django_application,
    limit=settings.MAX_REQUEST_BODY_BYTES,
    prefix_limits={"/hooks/": WEBHOOK_MAX_BODY_BYTES},
)
