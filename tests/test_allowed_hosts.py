"""OUTBOUND_ALLOWED_HOSTS: the internal hosts an operator lets http steps reach, read loudly."""

from __future__ import annotations

import ipaddress

import pytest

from config.lib.allowed_hosts import parse_allowed_hosts
from config.lib.outbound import Allowance
from tests.test_deployment import PRODUCTION, _manage


def test_it_reads_ranges_addresses_and_names_with_optional_ports() -> None:
    entries = parse_allowed_hosts(
        "10.0.0.0/8, api.internal:8443,[fd00::1]:9000\n10.1.2.3:80 API.Internal."
    )
    assert [entry.text for entry in entries] == [
        "10.0.0.0/8",
        "api.internal:8443",
        "[fd00::1]:9000",
        "10.1.2.3:80",
        "api.internal",
    ]


@pytest.mark.parametrize(
    "entry", ["not a host!", "api.internal:0", "api.internal:http", "[10.0.0.1]:80", "10.0.0.0/33"]
)
def test_a_malformed_entry_is_refused_with_its_text(entry: str) -> None:
    with pytest.raises(ValueError, match="must be|is not|only an IPv6"):
        parse_allowed_hosts(entry)


def test_an_allowance_needs_the_operator_and_a_narrowing_workspace_to_agree() -> None:
    ip = ipaddress.ip_address("10.1.2.3")
    operator = tuple(parse_allowed_hosts("10.0.0.0/8,api.internal:8443"))
    assert Allowance(operator).allows("x", ip, 80)
    assert not Allowance(operator).allows("x", ipaddress.ip_address("192.168.0.1"), 80)
    assert Allowance(operator).allows("api.internal", ipaddress.ip_address("192.168.0.1"), 8443)
    assert not Allowance(operator).allows("api.internal", ipaddress.ip_address("192.168.0.1"), 443)
    assert not Allowance(operator, narrowed_to=()).allows("x", ip, 80)
    narrowed = tuple(parse_allowed_hosts("10.1.0.0/16"))
    assert Allowance(operator, narrowed_to=narrowed).allows("x", ip, 80)
    assert not Allowance(operator, narrowed_to=narrowed).allows(
        "x", ipaddress.ip_address("10.2.0.1"), 80
    )
    # A workspace cannot widen what the operator allows.
    wide = tuple(parse_allowed_hosts("0.0.0.0/0"))
    assert not Allowance((), narrowed_to=wide).allows("x", ip, 80)


def test_the_server_refuses_to_start_with_a_malformed_entry() -> None:
    result = _manage("check", env={**PRODUCTION, "OUTBOUND_ALLOWED_HOSTS": "10.0.0.0/8,bad host!"})
    assert result.returncode != 0
    assert "OUTBOUND_ALLOWED_HOSTS" in result.stderr and "bad host!" in result.stderr
