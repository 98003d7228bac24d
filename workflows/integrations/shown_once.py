"""A secret shown once, across the redirect after the POST that made it (POST-redirect-GET).

The POST keeps the new secret in the session, encrypted like trigger secrets,
for the page it redirects to; that page's next GET takes it out and shows it,
so a reload, Back or Forward asks the server again and finds nothing. Pages
that show one answer `Cache-Control: no-store` (see `trigger_views`) and mark
it `data-shown-once` (static/js/app.js drops it from the back/forward cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.http import HttpRequest

from workflows.integrations.triggers import secret_decrypt, secret_encrypt

SESSION_KEY = "shown_once"
# Long enough for the redirect, short enough that an unfollowed one does not linger.
LIFETIME_SECONDS = 120


@dataclass(frozen=True)
class ShownOnce:
    object_id: int
    secret: str
    detail: str  # not secret, e.g. why an invitation's email was not sent


def shown_once_keep(
    request: HttpRequest, *, page: str, object_id: int, secret: str, detail: str = ""
) -> None:
    """Hold `secret` for the next GET of `page` (a path); replaces any held one."""
    request.session[SESSION_KEY] = {
        "page": page,
        "id": object_id,
        "secret": secret_encrypt(secret),
        "detail": detail,
        "until": time.time() + LIFETIME_SECONDS,
    }


def shown_once_take(request: HttpRequest, *, page: str) -> ShownOnce | None:
    """What is held for `page`, removed from the session; None if nothing is."""
    held = request.session.get(SESSION_KEY)
    if not isinstance(held, dict) or held.get("page") != page:
        return None
    del request.session[SESSION_KEY]
    secret = secret_decrypt(str(held.get("secret", "")))
    if secret is None or float(held.get("until", 0)) < time.time():
        return None
    return ShownOnce(object_id=int(held["id"]), secret=secret, detail=str(held.get("detail") or ""))
