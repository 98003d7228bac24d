"""The workspace secrets an http step uses: read for one request, and scrubbed from
everything it records.

`{{ secrets.NAME }}` is refused by validation everywhere but an http step's
URL, query, headers and body (workflows/builder/definition.py), and the
engine never puts secrets among a run's variables: only this step reads
them, for the request it sends, and records the request rendered with
`REDACTED` in their place. What comes back (an answer that echoes a header,
an error that quotes the URL) is scrubbed of their values before it is
stored, logged or passed on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from accounts.models import SECRET_PURPOSE, WorkspaceSecret
from config.lib.sealing import unseal
from workflows.rendering import references
from workflows.steps.context import StepFailed

REDACTED = "•••"
NAMESPACE = "secrets"


def names_used(templates: Iterable[str]) -> list[str]:
    """The secrets these templates reference, in order, once each."""
    names: dict[str, None] = {}
    for template in templates:
        for reference in references(template):
            if reference.name == NAMESPACE and len(reference.path) == 1:
                names[reference.path[0]] = None
    return list(names)


def secret_values(workspace_id: int, names: list[str]) -> dict[str, str]:
    """The values of `names` in clear; StepFailed names one that is missing or unreadable."""
    if not names:
        return {}
    rows = dict(
        WorkspaceSecret.objects.filter(workspace_id=workspace_id, name__in=names).values_list(
            "name", "value_encrypted"
        )
    )
    values: dict[str, str] = {}
    for name in names:
        if name not in rows:
            raise StepFailed(
                f"The secret {name} does not exist in this workspace (Settings → Secrets)."
            )
        value = unseal(SECRET_PURPOSE, rows[name])
        if value is None:
            raise StepFailed(
                f"The secret {name} cannot be read: it was saved under another SECRET_KEY. "
                "Replace its value in Settings → Secrets."
            )
        values[name] = value
    return values


def scrub(value: object, secrets: Iterable[str]) -> object:
    """`value` (text or JSON) with every occurrence of a secret's value replaced by REDACTED."""
    # Each value also as an answer may echo it back: URL-encoded (a query),
    # JSON-escaped, base64; the longest first, so a secret that contains
    # another is replaced whole.
    spellings = {form for secret in secrets if secret for form in _spellings(secret)}
    ordered = sorted(spellings, key=len, reverse=True)
    if not ordered:
        return value
    return _scrub(value, ordered)


def _spellings(secret: str) -> list[str]:
    encoded = secret.encode()
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        base64.b64encode(encoded).decode().rstrip("="),
        base64.urlsafe_b64encode(encoded).decode().rstrip("="),
    ]


def _scrub(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_scrub(key, secrets): _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value
