"""Values encrypted at rest under SECRET_KEY, readable across a key rotation.

Fernet under a key derived from SECRET_KEY and, for reading, from each of
SECRET_KEY_FALLBACKS: after an operator moves the old key to the fallbacks,
old values stay readable and `reseal` re-encrypts them under the new key
(`python manage.py reencrypt_secrets`). Each use names its own `purpose`, so
a value sealed for one use cannot be read as another's.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac


def _fernet(purpose: str) -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(
                    salted_hmac(purpose, "", secret=key, algorithm="sha256").digest()
                )
            )
            for key in keys
        ]
    )


def seal(purpose: str, value: str) -> str:
    return _fernet(purpose).encrypt(value.encode()).decode()


def unseal(purpose: str, token: str) -> str | None:
    """The value in clear, or None when no key reads it (SECRET_KEY changed)."""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def reseal(purpose: str, token: str) -> str | None:
    """`token` re-encrypted under the current SECRET_KEY, or None when no key reads it."""
    try:
        return _fernet(purpose).rotate(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
