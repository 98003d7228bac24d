"""Standard Webhooks signatures (https://www.standardwebhooks.com): checking
the ones an inbound webhook carries, and signing the callbacks we send.

A secret is `whsec_` and the base64 of its key; the signature of a message is
the HMAC-SHA256 of `<id>.<timestamp>.<body>` under that key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for."""
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


class SignatureInvalid(Exception):
    pass


def signature_verify(
    *, secrets: list[str], headers: dict[str, str], body: bytes, now: float | None = None
) -> None:
    """Accept the request if one `v1,` signature matches one secret; else SignatureInvalid.

    `headers` must have lower-case names.
    """
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise SignatureInvalid(
            "This webhook requires a Standard Webhooks signature: the webhook-id, "
            "webhook-timestamp and webhook-signature headers."
        )
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureInvalid(
            "webhook-timestamp must be whole seconds since 1970 (UTC)."
        ) from None
    if abs((time.time() if now is None else now) - sent_at) > TOLERANCE_SECONDS:
        raise SignatureInvalid("webhook-timestamp is more than 5 minutes away from our clock.")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = [
        hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest() for secret in secrets
    ]
    for part in signatures.split(" "):
        version, _, encoded = part.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if any(hmac.compare_digest(given, digest) for digest in expected):
            return
    raise SignatureInvalid("No signature in webhook-signature matches this webhook's secret.")


def signature_headers(
    *, secret: str, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers for sending `body` signed with `secret`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret_key_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256
    ).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
