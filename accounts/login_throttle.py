"""Login throttling: django-axes with a separate limit per address, per account and per pair.

Axes alone keys its count on (username, address) with one limit, so spraying
one password over many accounts from one address, or guessing one account
from many addresses, is never limited, and behind a shared proxy five wrong
guesses by anyone lock the real person out. This handler counts three keys,
each against its own limit within the cool-off window (settings.py):

- the pair (account, address): `AXES_FAILURE_LIMIT` (5);
- the account from every address: `AXES_FAILURE_LIMIT_PER_USERNAME` (20), higher, so that
  strangers cannot lock a person out with a few guesses; it pauses the account only for the
  cool-off, never for good;
- the address across every account: `AXES_FAILURE_LIMIT_PER_IP` (50), against password spraying.

A successful login clears only its own pair's failures: logging in to one's own account must not
reset the count of the address's failures on other accounts, nor strangers' failures on this one.
"""

from __future__ import annotations

from datetime import datetime

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def _limits() -> dict[str, int]:
    """The limit of each key, by the lookup that selects its attempts."""
    return {
        "pair": settings.AXES_FAILURE_LIMIT,
        "username": settings.AXES_FAILURE_LIMIT_PER_USERNAME,
        "ip_address": settings.AXES_FAILURE_LIMIT_PER_IP,
    }


class LoginThrottleHandler(AxesDatabaseHandler):
    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """What axes compares with AXES_FAILURE_LIMIT: reached exactly when one key reaches its own
        limit.

        Axes has one limit for every key; this expresses each key's count as
        `AXES_FAILURE_LIMIT - failures it has left`, and returns the highest.
        """
        username = get_client_username(request, credentials)
        ip = request.axes_ip_address  # type: ignore[attr-defined]  # set by axes before it asks
        since = get_cool_off_threshold(request)
        keys = {
            "pair": {"username": username, "ip_address": ip},
            "username": {"username": username},
            "ip_address": {"ip_address": ip},
        }
        limits = _limits()
        left = [
            limits[key] - _failures(filters, since)
            for key, filters in keys.items()
            if None not in filters.values()
        ]
        return max(0, settings.AXES_FAILURE_LIMIT - min(left, default=settings.AXES_FAILURE_LIMIT))

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        count: int
        count, _ = AccessAttempt.objects.filter(
            username=username,
            ip_address=request.axes_ip_address,  # type: ignore[attr-defined]  # set by axes
        ).delete()
        return count


def _failures(filters: dict[str, str], since: datetime) -> int:
    total = AccessAttempt.objects.filter(attempt_time__gte=since, **filters).aggregate(
        total=Sum("failures_since_start")
    )["total"]
    return total or 0


def username_of(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The login name the attempt is counted under:
    emails are case-insensitive here, so is the count."""
    value = (credentials or {}).get("username") or request.POST.get(
        settings.AXES_USERNAME_FORM_FIELD
    )
    return value.strip().lower()[:255] if isinstance(value, str) else None
