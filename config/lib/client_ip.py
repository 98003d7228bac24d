"""The client's address, believing X-Forwarded-For only from the proxies in FORWARDED_ALLOW_IPS.

Used by login throttling (axes) and the mail rate limits. Behind a reverse
proxy every request comes from the proxy's address; the proxy appends the
address it saw to X-Forwarded-For. Entries are read from the right, skipping
trusted proxies: the first untrusted one is the client (anything to its left
was written by the client and may be made up). A request whose peer is not a
trusted proxy is taken at its peer's address, whatever its headers say.
uvicorn applies the same rule to the same variable (`--forwarded-allow-ips`),
so reading the header again here after uvicorn rewrote the peer is harmless.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...]) -> tuple[bool, tuple[Network, ...]]:
    """(trust everyone, the trusted networks) for FORWARDED_ALLOW_IPS's entries."""
    if "*" in entries:
        return True, ()
    return False, tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def is_trusted_proxy(address: str) -> bool:
    everyone, networks = _trusted(tuple(settings.FORWARDED_ALLOW_IPS))
    ip = _address(address)
    return ip is not None and (everyone or any(ip in network for network in networks))


def client_ip(request: HttpRequest) -> str:
    peer = request.META.get("REMOTE_ADDR", "") or ""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not forwarded or not is_trusted_proxy(peer):
        return peer
    for entry in reversed(forwarded.split(",")):
        ip = _address(entry)
        if ip is None:  # garbage: stop believing the header here
            return peer
        if not is_trusted_proxy(str(ip)):
            return str(ip)
        peer = str(ip)
    return peer
