"""Keep secrets that travel in URLs out of logs and of django-axes' records.

Five paths carry one: a trigger's id in `/hooks/<id>` (a capability: whoever
has it can reach the workflow), an invitation's `/invitations/<token>/`, an
address confirmation's `/accounts/verify/<token>/`, a password reset's
`/accounts/reset/<uidb64>/<token>/` and an approver's decision link
`/decisions/<token>/`. They also appear
URL-encoded, e.g. in a login's `?next=`. Request lines (uvicorn's access log,
runserver) and Django's warnings (django.request, django.security) would write
them, so the console handler, the one every logger ends in, passes records
through `ScrubHookIds`; axes stores the path and the query in its rows, which
`scrub_axes_record` cleans before they are saved. No model imports at import
time: this module is loaded while logging is configured, before the apps.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db.models import Value
from django.db.models.signals import pre_save

_SEP = r"(?:/|%2F)"
_SEGMENT = r"[^\s\"'?&#/%]+"
# The segment after /hooks/, /invitations/, /decisions/, /verify/ (not its
# "resend/" page) or /reset/ (and the reset's token after its uid);
# "/reset/done/" and "/set-password/" are Django's own steps, not secrets.
_SECRET_PATH = re.compile(
    rf"(?P<prefix>{_SEP}(?:hooks|invitations|verify|decisions){_SEP})(?!resend(?:{_SEP}|$)){_SEGMENT}"
    rf"|(?P<reset>{_SEP}reset{_SEP})(?!done(?:{_SEP}|$)){_SEGMENT}(?:{_SEP}(?!set-password){_SEGMENT})?",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    return _SECRET_PATH.sub(
        lambda match: (match.group("prefix") or match.group("reset")) + "[scrubbed]", text
    )


class ScrubHookIds(logging.Filter):
    """Scrubs every secret-bearing path (the name is from when /hooks/ was the only one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if _SECRET_PATH.search(message):
            record.msg = scrub(message)
            record.args = None
        return True


def _scrub_value(value: Any) -> Any:
    """A string scrubbed; in an expression (axes appends with Concat), its literal strings."""
    if isinstance(value, str):
        return scrub(value)
    if hasattr(value, "get_source_expressions"):
        if isinstance(value, Value) and isinstance(value.value, str):
            value.value = scrub(value.value)
        for source in value.get_source_expressions():
            _scrub_value(source)
    return value


def scrub_axes_record(sender: type, instance: Any, **kwargs: object) -> None:
    """pre_save of axes' AccessAttempt, AccessLog and AccessFailureLog."""
    for field in ("path_info", "get_data", "post_data"):
        if hasattr(instance, field):
            setattr(instance, field, _scrub_value(getattr(instance, field)))


def connect_axes_scrubbing() -> None:
    for model in ("axes.AccessAttempt", "axes.AccessLog", "axes.AccessFailureLog"):
        pre_save.connect(scrub_axes_record, sender=model, dispatch_uid=f"scrub_axes_record:{model}")
