"""The workspace secrets an http step uses: read for one request, and scrubbed from
everything it records.

`{{ secrets.NAME }}` is refused by validation everywhere but an http step's
URL, query, headers and body (workflows/builder/definition.py), and the
engine never puts secrets among a run's variables: only this step reads
them, for the request it sends (only to the hosts each secret names, at
every hop: `UsedSecrets.refusal`), and records the request rendered with
`REDACTED` in their place. What comes back (an answer that echoes a header,
an error that quotes the URL) is scrubbed of their values before it is
stored, logged or passed on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlsplit

from accounts.models import SECRET_PURPOSE, WorkspaceSecret
from config.lib.outbound import OutboundRefused
from config.lib.sealing import unseal
from config.lib.secret_hosts import host_allowed
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


@dataclass(frozen=True)
class UsedSecrets:
    """The secrets one request uses: their values, and the hosts each may be sent to
    (None: any host, a secret saved before secrets named their hosts)."""

    values: dict[str, str]
    hosts: dict[str, tuple[str, ...] | None]

    def refusal(self, url: str) -> str | None:
        """Why a request (or a redirect) to `url` may not carry these secrets, or None.

        THE check of where a secret may go: the http step runs it on every hop of
        every request, whatever started the run (a page, a test run, the API, a
        webhook, a schedule, MCP). The answer names the secret and the host, never
        a value; the host may hold one, so the caller scrubs it as anything else."""
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        for name, allowed in self.hosts.items():
            if allowed is not None and not host_allowed(allowed, host):
                there = host or "this URL"
                return (
                    f"The secret {name} may be sent only to {', '.join(allowed)} "
                    f"(Settings → Secrets), not to {there}: nothing was sent to {there}."
                )
        return None

    def guard(self, url: str) -> None:
        """`refusal` for the guarded client's hops: OutboundRefused before anything leaves."""
        reason = self.refusal(url)
        if reason:
            raise OutboundRefused(reason)


def secrets_for(workspace_id: int, names: list[str]) -> UsedSecrets:
    """The values of `names` in clear and their hosts; StepFailed names one that is missing
    or unreadable."""
    if not names:
        return UsedSecrets(values={}, hosts={})
    rows = {
        name: (sealed, hosts, any_host)
        for name, sealed, hosts, any_host in WorkspaceSecret.objects.filter(
            workspace_id=workspace_id, name__in=names
        ).values_list("name", "value_encrypted", "allowed_hosts", "any_host")
    }
    values: dict[str, str] = {}
    allowed: dict[str, tuple[str, ...] | None] = {}
    for name in names:
        if name not in rows:
            raise StepFailed(
                f"The secret {name} does not exist in this workspace (Settings → Secrets)."
            )
        sealed, hosts, any_host = rows[name]
        value = unseal(SECRET_PURPOSE, sealed)
        if value is None:
            raise StepFailed(
                f"The secret {name} cannot be read: it was saved under another SECRET_KEY. "
                "Replace its value in Settings → Secrets."
            )
        values[name] = value
        allowed[name] = None if any_host else tuple(hosts or ())
    return UsedSecrets(values=values, hosts=allowed)


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
