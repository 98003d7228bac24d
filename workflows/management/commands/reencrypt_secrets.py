"""`python manage.py reencrypt_secrets`: re-encrypt webhook and workspace secrets under the
current SECRET_KEY.

Run it after moving the old key to SECRET_KEY_FALLBACKS; then the old key may be dropped.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.services import secrets_reencrypt as workspace_secrets_reencrypt
from workflows.integrations.failure_alerts import (
    secrets_reencrypt as failure_alert_secrets_reencrypt,
)
from workflows.integrations.triggers import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every webhook and workspace secret under the current SECRET_KEY "
        "(after a key rotation)."
    )

    def handle(self, *args: object, **options: object) -> None:
        done, unreadable = secrets_reencrypt()
        self.stdout.write(f"{done} webhook secrets re-encrypted under the current SECRET_KEY.")
        kept, lost = workspace_secrets_reencrypt()
        self.stdout.write(f"{kept} workspace secrets re-encrypted under the current SECRET_KEY.")
        alerts, alerts_lost = failure_alert_secrets_reencrypt()
        self.stdout.write(
            f"{alerts} failure alert secrets re-encrypted under the current SECRET_KEY."
        )
        if alerts_lost:
            raise CommandError(
                f"{alerts_lost} failure alert secrets are readable under neither SECRET_KEY nor "
                "SECRET_KEY_FALLBACKS: rotate them in Settings → When a run fails."
            )
        if lost:
            raise CommandError(
                f"{lost} workspace secrets are readable under neither SECRET_KEY nor "
                "SECRET_KEY_FALLBACKS: put the key they were made with in SECRET_KEY_FALLBACKS "
                "and run this again, or replace their values in Settings → Secrets."
            )
        if unreadable:
            raise CommandError(
                f"{unreadable} secrets are readable under neither SECRET_KEY nor "
                "SECRET_KEY_FALLBACKS: "
                "put the key they were made with in SECRET_KEY_FALLBACKS and run this again, "
                "or rotate those webhooks' secrets on their triggers pages."
            )
