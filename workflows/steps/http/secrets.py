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

from collections.abc import Iterable

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
    # The longest first, so a secret that contains another is replaced whole.
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)
    if not ordered:
        return value
    return _scrub(value, ordered)


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
