"""THE guarded HTTP client: every request Stepwise sends to a URL a user gave it.

A URL from a user (a completion callback, later an HTTP step) must not
become a way into our own network, so before each connection:

- only `http` and `https`, no credentials in the URL;
- the host name is resolved here and EVERY address it resolves to must be a
  public one: every block of IANA's special-purpose registries is refused
  from an explicit table (loopback, private 10/8, 172.16/12, 192.168/16,
  fc00::/7 and site-local fec0::/10, link-local 169.254/16 with the cloud
  metadata endpoints and fe80::/10, shared CGNAT 100.64/10, 192.0.0/24,
  multicast, reserved, unspecified, documentation, benchmarking, Teredo),
  also when wrapped in IPv6 (::ffff:a.b.c.d, 6to4, NAT64), and any IPv6
  address outside global unicast 2000::/3. Odd IPv4 spellings (127.1,
  0x7f000001, 2130706433) are resolved by the system first, so they are
  checked as the address they mean;
- the connection goes to the checked address itself (the Host header and
  TLS SNI/certificate check keep the name), so DNS cannot answer differently
  between the check and the connection (rebinding);
- redirects are followed here, one hop at a time, each hop checked the same;
- proxies from the environment are ignored (they would resolve names themselves);
- connect/read timeouts, an overall deadline, and a cap on the response size.

An operator may allow named internal hosts or ranges on purpose
(`OUTBOUND_ALLOWED_HOSTS`, config/lib/allowed_hosts.py), and a workspace may
narrow that list: a client given an `Allowance` lets a non-public address
through when the allowance names it (its host name, or a range holding it,
and the port if the entry has one), at every hop, still pinned.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

from config.lib.allowed_hosts import AllowedHost, parse_allowed_hosts

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECT_CODES = {301, 302, 303, 307, 308}

# Every special-purpose block of IANA's IPv4 and IPv6 Special-Purpose Address
# Registries (RFC 6890 and later), with why it is refused. The list is
# explicit on purpose: `ipaddress.is_global` changed between Python versions
# (192.0.0.0/24 counted as public before 3.12.4) and still misses fec0::/10.
# Addresses that wrap an IPv4 address (mapped, 6to4, NAT64) are judged by the
# IPv4 address they lead to; outside these blocks, IPv6 must be global unicast.
_SPECIAL: list[tuple[str, str]] = [
    ("0.0.0.0/8", 'an unspecified ("this network") address'),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (this includes cloud metadata services)"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
    ("192.0.2.0/24", "a reserved address (documentation)"),
    ("192.31.196.0/24", "a reserved address (AS112)"),
    ("192.52.193.0/24", "a reserved address (AMT)"),
    ("192.88.99.0/24", "a reserved address (6to4 relay)"),
    ("192.168.0.0/16", "a private address"),
    ("192.175.48.0/24", "a reserved address (AS112)"),
    ("198.18.0.0/15", "a reserved address (benchmarking)"),
    ("198.51.100.0/24", "a reserved address (documentation)"),
    ("203.0.113.0/24", "a reserved address (documentation)"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),  # includes 255.255.255.255, the limited broadcast
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "a reserved address (IPv4-compatible, deprecated)"),
    ("::ffff:0:0:0/96", "a reserved address (IPv4-translated)"),
    ("100::/64", "a reserved address (discard-only)"),
    ("2001::/23", "a reserved address (IETF protocol assignments, Teredo)"),
    ("2001:db8::/32", "a reserved address (documentation)"),
    ("2620:4f:8000::/48", "a reserved address (AS112)"),
    ("3fff::/20", "a reserved address (documentation)"),
    ("5f00::/16", "a reserved address (SRv6)"),
    ("fc00::/7", "a private (unique local) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a private (site-local) address"),
    ("ff00::/8", "a multicast address"),
]
_SPECIAL_NETWORKS = [(ipaddress.ip_network(net), reason) for net, reason in _SPECIAL]
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): the operator picks the prefix length, so only
# its /96 form says for sure which IPv4 address it leads to.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_NAT64_LOCAL_96 = ipaddress.ip_network("64:ff9b:1::/96")
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


class OutboundRefused(Exception):
    """The URL or the address it leads to is not allowed: retrying will not help."""


class OutboundError(Exception):
    """The request failed on the way (network, timeout, too large): it may work later."""


@dataclass
class OutboundResponse:
    status_code: int
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""


@dataclass(frozen=True)
class Allowance:
    """Internal hosts a request may reach: the operator's entries, narrowed (when
    `narrowed_to` is not None) to those a workspace lists too."""

    operator: tuple[AllowedHost, ...] = ()
    narrowed_to: tuple[AllowedHost, ...] | None = None

    @classmethod
    def for_workspace(cls, *, narrowed: bool, hosts: str) -> Allowance:
        """The operator's OUTBOUND_ALLOWED_HOSTS (read now), narrowed by a workspace's list."""
        operator = tuple(parse_allowed_hosts(list(settings.OUTBOUND_ALLOWED_HOSTS)))
        return cls(
            operator=operator, narrowed_to=tuple(parse_allowed_hosts(hosts)) if narrowed else None
        )

    def allows(self, host: str, ip: IPAddress, port: int) -> bool:
        if not any(entry.matches(host, ip, port) for entry in self.operator):
            return False
        return self.narrowed_to is None or any(
            entry.matches(host, ip, port) for entry in self.narrowed_to
        )


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be reached, or None when it is a public address.

    Decided by the explicit table above only, never by the `is_*` properties
    of `ipaddress`, so that every supported Python answers the same.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) address"
        embedded: ipaddress.IPv4Address | None = None
        if ip in _IPV4_MAPPED or ip in _NAT64 or ip in _NAT64_LOCAL_96:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip in _SIXTOFOUR:
            embedded = ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
        elif ip in _NAT64_LOCAL:
            return "a reserved address (local-use NAT64 in a form other than /96)"
        if embedded is not None:
            reason = address_refusal(embedded)
            return f"{reason} (wrapped in IPv6)" if reason else None
    for network, reason in _SPECIAL_NETWORKS:
        if ip.version == network.version and ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return "a reserved address (not global unicast)"
    return None


def _allow_private() -> bool:
    # Read at call time so a test can switch it for one test; False by default.
    return bool(getattr(settings, "OUTBOUND_ALLOW_PRIVATE_FOR_TESTS", False))


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # as written in the URL (no brackets), for Host and SNI
    port: int
    path: str
    ip: IPAddress

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def pinned_url(self) -> str:
        ip = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"{self.scheme}://{ip}:{self.port}{self.path}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _shape_refusal(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Only http:// and https:// URLs are allowed."
    if not parts.hostname:
        return "The URL has no host."
    if parts.username is not None or parts.password is not None:
        return "Credentials in the URL are not allowed."
    return None


def url_refusal(url: str, *, allowed: Allowance | None = None) -> str | None:
    """Why `url` may not be used, judged without DNS (for forms): scheme, shape, literal IPs
    (unless `allowed` names them).

    The full check, with name resolution, happens at every request.
    """
    reason = _shape_refusal(url)
    if reason or _allow_private():
        return reason
    parts = urlsplit(url)
    try:
        ip = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if allowed is not None and allowed.allows(parts.hostname or "", ip, port):
        return None
    reason = address_refusal(ip)
    return f"The URL points to {reason}." if reason else None


class GuardedClient:
    """Sends one request, following redirects itself and checking every hop.

    `trust_first_hop_for_tests` lets a test reach its local server on the
    first hop only, to prove that a redirect from there is checked; nothing
    else may pass it. `allowed` lets through the internal hosts it names.
    `cross_origin_headers`, when given, are the only headers of the caller's
    kept when a redirect leads to another origin (scheme, host, port), so a
    credential meant for one service is not handed to the next. `before_hop`,
    when given, is called with the URL of every hop, the first included,
    before its host name is even resolved (a name can carry data to a DNS
    server); it raises OutboundRefused to stop there, nothing sent.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_bytes: int = 1_000_000,
        max_redirects: int = 5,
        trust_first_hop_for_tests: bool = False,
        allowed: Allowance | None = None,
        cross_origin_headers: frozenset[str] | None = None,
        before_hop: Callable[[str], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._trust_first_hop = trust_first_hop_for_tests
        self.allowed = allowed
        self.cross_origin_headers = cross_origin_headers
        self.before_hop = before_hop

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutboundResponse:
        deadline = time.monotonic() + self.timeout
        # No compression: the size cap counts the bytes that arrive.
        headers = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
        headers.setdefault("Accept-Encoding", "identity")
        with httpx.Client(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
        ) as client:
            for hop in range(self.max_redirects + 1):
                if self.before_hop is not None:
                    self.before_hop(url)
                target = self.check(url, trusted=self._trust_first_hop and hop == 0)
                response = self._send(client, method, target, content, headers, deadline)
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_CODES or not location:
                    return OutboundResponse(
                        status_code=response.status_code,
                        url=url,
                        headers=response.headers,
                        content=response.content,
                    )
                previous, url = url, urljoin(url, location)
                if self.cross_origin_headers is not None and _origin(url) != _origin(previous):
                    headers = {
                        k: v for k, v in headers.items() if k.lower() in self.cross_origin_headers
                    }
                    if content is not None and response.status_code in (307, 308):
                        # A 307/308 would send the body again, to another origin: a
                        # body can carry what the headers were cleaned of. Refused.
                        raise OutboundRefused(
                            "Redirected to another origin with the request's body; not followed."
                        )
                if response.status_code in (301, 302, 303) and method.upper() != "HEAD":
                    method, content = "GET", None
                    headers = {
                        k: v
                        for k, v in headers.items()
                        if k.lower() not in ("content-type", "content-length")
                    }
        raise OutboundError(f"More than {self.max_redirects} redirects.")

    def post(
        self, url: str, *, content: bytes, headers: dict[str, str] | None = None
    ) -> OutboundResponse:
        return self.request("POST", url, content=content, headers=headers)

    def get(self, url: str, *, headers: dict[str, str] | None = None) -> OutboundResponse:
        return self.request("GET", url, headers=headers)

    def check(self, url: str, *, trusted: bool = False) -> _Target:
        """Resolve `url` and pick the address to connect to, or raise OutboundRefused."""
        reason = _shape_refusal(url)
        if reason:
            raise OutboundRefused(reason)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise OutboundError(f"The host {host!r} could not be resolved.") from e
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise OutboundError(f"The host {host!r} has no address.")
        if not (trusted or _allow_private()):
            for ip in addresses:
                reason = address_refusal(ip)
                if reason and not (self.allowed and self.allowed.allows(host, ip, port)):
                    raise OutboundRefused(f"The host {host!r} resolves to {reason} ({ip}).")
        path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return _Target(scheme=parts.scheme, host=host, port=port, path=path, ip=addresses[0])

    def _send(
        self,
        client: httpx.Client,
        method: str,
        target: _Target,
        content: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> OutboundResponse:
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            request = client.build_request(
                method,
                target.pinned_url,
                content=content,
                headers={**headers, "Host": target.host_header},
                extensions=extensions,
            )
        except (httpx.InvalidURL, ValueError, UnicodeError) as e:
            # Said without the URL or the headers, which may hold a credential.
            raise OutboundRefused(f"The request cannot be sent: {e.__class__.__name__}.") from None
        try:
            response = client.send(request, stream=True)
            try:
                body = bytearray()
                for chunk in response.iter_raw():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise OutboundError(f"The response is larger than {self.max_bytes} bytes.")
                    if time.monotonic() > deadline:
                        raise OutboundError(f"No complete answer within {self.timeout:g} s.")
            finally:
                response.close()
        except httpx.TimeoutException as e:
            raise OutboundError(f"No answer within {self.timeout:g} s.") from e
        except httpx.HTTPError as e:
            raise OutboundError(f"The request failed: {e.__class__.__name__}.") from e
        return OutboundResponse(
            status_code=response.status_code,
            url=str(request.url),
            headers={k.lower(): v for k, v in response.headers.items()},
            content=bytes(body),
        )
