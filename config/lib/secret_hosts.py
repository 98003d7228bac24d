"""The hosts a workspace secret may be sent to: parsing the list, matching a request's host.

An entry is a host name (`api.stripe.com`), a wildcard for the subdomains of
one (`*.example.com` matches `a.example.com` and `a.b.example.com`, never
`example.com` itself), or an IP address. No scheme, port or path: a secret
is bound to a host, whatever the port. Names are compared as the DNS sees
them: lower case, without the trailing dot, internationalised names in
their IDNA (punycode) form, so `BÜCHER.example` and `xn--bcher-kva.example`
are one entry. Pure, no Django: a form, a service and the http step share it.
"""

from __future__ import annotations

import ipaddress
import re

import idna

# One label of a host name as sent: letters, digits, hyphens (and underscores, which
# some internal names use), at most 63 characters, no hyphen at either end.
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
MAX_ENTRIES = 20


def normalise_host(host: str) -> str:
    """`host` as an entry or a request's host is compared: ValueError when it is not a host."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        # UTS 46 maps case, full-width dots and compatibility forms first.
        mapped = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except idna.IDNAError:
        raise ValueError(f"{host!r} is not a host name.") from None
    mapped = mapped.rstrip(".")
    labels = mapped.split(".")
    encoded: list[str] = []
    for label in labels:
        if not label.isascii():
            try:
                label = idna.alabel(label).decode("ascii")
            except idna.IDNAError:
                raise ValueError(f"{host!r} is not a valid international host name.") from None
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(f"{host!r} is not a host name.")
        encoded.append(label)
    name = ".".join(encoded)
    if len(name) > 253:
        raise ValueError(f"{host!r} is longer than a host name may be.")
    return name


def parse_entry(entry: str) -> str:
    """One entry of a secret's hosts, normalised; ValueError says what is wrong with it."""
    text = entry.strip()
    if "://" in text or "/" in text or "?" in text or "#" in text or "@" in text:
        raise ValueError(
            f"{entry!r}: write the host only, e.g. api.stripe.com (no scheme or path)."
        )
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if "*" in name:
        raise ValueError(f"{entry!r}: a wildcard is allowed only as *.example.com.")
    if ":" in name and not _is_ip(name):
        raise ValueError(f"{entry!r}: no port; a secret is bound to a host, whatever the port.")
    host = normalise_host(name)
    if wildcard:
        if _is_ip(host):
            raise ValueError(f"{entry!r}: a wildcard goes before a host name, not an address.")
        if "." not in host:
            raise ValueError(f"{entry!r}: too broad; name a domain, e.g. *.example.com.")
        return f"*.{host}"
    return host


def parse_hosts(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """The normalised entries of a comma-, space- or line-separated list, each once, in
    order; ValueError names a bad entry."""
    items = text if isinstance(text, (list, tuple)) else re.split(r"[,\s]+", text)
    entries: dict[str, None] = {}
    for item in items:
        if item.strip():
            entries[parse_entry(item)] = None
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"At most {MAX_ENTRIES} hosts.")
    return list(entries)


def host_allowed(entries: list[str] | tuple[str, ...], host: str) -> bool:
    """Whether a request to `host` (as in its URL) may carry a secret bound to `entries`."""
    try:
        name = normalise_host(host)
    except ValueError:
        return False
    for entry in entries:
        if entry.startswith("*."):
            if name.endswith(entry[1:]) and not _is_ip(name):
                return True
        elif name == entry:
            return True
    return False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
