"""System checks run at start (`migrate`, `check`; `make
run` and the compose `migrate` service run them)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.compatibility)
def mail_configured_check(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    if settings.MAIL_CONFIGURED:
        return []
    return [
        Warning(
            "Mail is not configured on this server (EMAIL_URL): invitation, password-reset "
            "and sign-up "
            "emails are written to the server's log instead of being sent.",
            hint=(
                "Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587 (README.md, "
                "Configuration)."
            ),
            id="accounts.W001",
        )
    ]
