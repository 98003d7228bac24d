"""Internal hosts the guarded client may reach on purpose (`OUTBOUND_ALLOWED_HOSTS`).

An operator who wants http steps to call services inside their network names
them: an address or a range (`10.0.0.0/8`, `fd00::/8`, `10.1.2.3`), or a host
name (`api.internal`), each optionally with a port (`api.internal:8443`,
`10.1.2.3:8080`, `[fd00::1]:8443`), separated by commas. A name entry allows
whatever that name resolves to; a range entry any name that resolves inside
it. A workspace owner can narrow the operator's list for their workspace
(an address must then be allowed by both). Nothing internal is allowed by
default. Pure parsing, no Django: settings imports it to fail loudly.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*"
)


@dataclass(frozen=True)
class AllowedHost:
    text: str  # the entry, normalised
    network: IPNetwork | None
    host: str | None  # a lower-case name, without the trailing dot
    port: int | None

    def matches(self, host: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.network is not None:
            return ip.version == self.network.version and ip in self.network
        return host.lower().rstrip(".") == self.host


def _network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _text(network: IPNetwork) -> str:
    """A range as written, a single address without its /32 or /128."""
    single = network.prefixlen == network.max_prefixlen
    return str(network.network_address) if single else str(network)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535.")
    return int(text)


def parse_entry(entry: str) -> AllowedHost:
    entry = entry.strip()
    network = _network(entry)
    if network is not None:
        return AllowedHost(text=_text(network), network=network, host=None, port=None)
    port: int | None = None
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r} is not an address, a range or a host name.")
            port = _port(rest[1:], entry)
        network = _network(inside)
        if network is None or network.version != 6:
            raise ValueError(f"{entry!r}: only an IPv6 address goes between brackets.")
        text = f"[{_text(network)}]" + (f":{port}" if port else "")
        return AllowedHost(text=text, network=network, host=None, port=port)
    name = entry
    if entry.count(":") == 1:
        name, _, port_text = entry.partition(":")
        port = _port(port_text, entry)
    network = _network(name)
    suffix = f":{port}" if port else ""
    if network is not None:
        return AllowedHost(text=f"{_text(network)}{suffix}", network=network, host=None, port=port)
    host = name.lower().rstrip(".")
    if not _HOST_RE.fullmatch(host):
        raise ValueError(f"{entry!r} is not an address, a range or a host name.")
    return AllowedHost(text=f"{host}{suffix}", network=None, host=host, port=port)


def parse_allowed_hosts(text: str | list[str] | tuple[str, ...]) -> list[AllowedHost]:
    """The entries of a comma-, space- or line-separated list; ValueError names a bad one."""
    items = text if isinstance(text, (list, tuple)) else re.split(r"[,\s]+", text)
    return [parse_entry(item) for item in items if item.strip()]
