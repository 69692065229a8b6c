"""Findings of the delivery security review, at the webhook adapter (no database, no network):
the SSRF guard's deny-list, refusals that do not name the address, port 0.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from fit_service.adapters.webhooks import (
    HttpWebhookSender,
    InvalidWebhookUrl,
    UnsafeWebhookUrl,
    WebhookEndpoint,
    check_webhook_url,
    generate_secret,
    unsafe_address_reason,
)
from fit_service.domain.delivery import WebhookMessage

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _resolver(table: dict[str, list[str]]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


# --- the deny-list -------------------------------------------------------------------------

#: Special-purpose addresses that Python 3.11's is_private / is_global flags let through.
MISSED_BY_THE_FLAGS = [
    "fec0::1",  # IPv6 site-local (deprecated, still routed inside some networks)
    "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # the last site-local address
    "192.0.0.9",  # IETF protocol assignments: PCP anycast
    "192.0.0.10",  # TURN anycast
    "192.0.0.200",  # the rest of 192.0.0.0/24
    "3fff::1",  # IPv6 documentation (RFC 9637)
    "3fff:fff:ffff::1",
    "192.31.196.1",  # AS112
    "192.175.48.1",  # AS112 direct delegation
    "192.52.193.1",  # AMT
    "192.88.99.1",  # deprecated 6to4 relay anycast
    "2620:4f:8000::1",  # AS112 (IPv6)
]


@pytest.mark.parametrize("address", MISSED_BY_THE_FLAGS)
def test_special_purpose_addresses_the_stdlib_flags_miss_are_refused(address: str) -> None:
    """Site-local fec0::/10, all of 192.0.0.0/24, the 3fff::/20 documentation block and the
    other IANA special-purpose blocks are refused, as a resolved name and as a literal."""
    ip = ipaddress.ip_address(address)
    assert unsafe_address_reason(ip) is not None
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url("https://hook.example/x", resolver=_resolver({"hook.example": [address]}))
    literal = f"[{address}]" if ip.version == 6 else address
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(f"https://{literal}/x", resolver=_resolver({}))


def _flags_refuse(ip: IPAddress) -> bool:
    """What the guard refused before the deny-list: the stdlib flags of this Python."""
    return (
        ip.is_unspecified
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_private
        or ip.is_reserved
        or not ip.is_global
    )


def _stdlib_networks() -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every network the running Python's ipaddress flags are built from (private tables)."""
    for constants in (ipaddress.IPv4Address._constants, ipaddress.IPv6Address._constants):  # type: ignore[attr-defined]
        for value in vars(constants).values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
                    yield item


def _samples() -> Iterator[IPAddress]:
    for net in _stdlib_networks():
        yield net.network_address
        yield net.broadcast_address
        yield net.network_address + net.num_addresses // 2
    rng = random.Random(20250301)
    for _ in range(20_000):
        yield ipaddress.IPv4Address(rng.getrandbits(32))
        yield ipaddress.IPv6Address(rng.getrandbits(128))
        yield ipaddress.IPv6Address((0x2 << 125) | rng.getrandbits(125))  # 2000::/3


def test_every_address_the_stdlib_flags_refuse_is_still_refused() -> None:
    """The explicit deny-list refuses at least what the flags did (on this interpreter): the
    block boundaries behind each flag and 60 000 random addresses, 6to4 forms included."""
    missed = []
    for ip in _samples():
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv4Address):  # 6to4 around it: judged by ip
            forms.append(ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80)))
        missed += [f for f in forms if _flags_refuse(ip) and unsafe_address_reason(f) is None]
    assert missed == []


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "2001:4860:4860::8888", "2002:808:808::1"],
)
def test_public_addresses_are_still_allowed(address: str) -> None:
    assert unsafe_address_reason(ipaddress.ip_address(address)) is None


# --- refusals do not map the network -------------------------------------------------------

NAMES = {
    "intranet.example": ["10.0.0.1"],
    "mixed.example": ["93.184.215.14", "10.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "v6.example": ["fd00:ec2::254"],
}


def test_a_refused_host_is_answered_without_its_address_and_like_one_that_does_not_resolve() -> (
    None
):
    """An admin registering internal names learns neither where they point nor whether they
    exist: a name resolving to a private address and one that does not resolve at all get
    the same rule and detail, without any address."""
    answers = []
    for name in [*NAMES, "nowhere.example"]:
        with pytest.raises(InvalidWebhookUrl) as refused:
            check_webhook_url(f"https://{name}/hook", resolver=_resolver(NAMES))
        answers.append((refused.value.rule, refused.value.detail, refused.value.field))
    assert len(set(answers)) == 1, answers
    ((rule, detail, field),) = set(answers)
    assert (rule, field) == ("unsafe_webhook_url", "url")
    for text in ("10.0.0", "169.254", "fd00", "private", "link-local", "resolve ("):
        assert text not in detail
    assert "address this service may" in detail


@pytest.mark.parametrize("name", [*NAMES, "nowhere.example"])
def test_a_send_refused_at_send_time_stores_and_logs_no_address(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox's last_error and the worker's log say the same generic reason, retried."""
    sender = HttpWebhookSender(resolver=_resolver(NAMES))
    with caplog.at_level(logging.DEBUG):
        result = sender.send(
            WebhookEndpoint(f"https://{name}/hook", generate_secret()),
            WebhookMessage("msg_1", '{"a":1}'),
        )
    assert (result.delivered, result.retryable) == (False, True)
    assert result.reason.startswith("refused: ")
    assert "address this service may" in result.reason
    for text in ("10.0.0", "169.254", "fd00", "private", "link-local"):
        assert text not in result.reason
        assert text not in caplog.text


# --- port 0 --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://93.184.215.14:0/", "https://hook.example:0/x"])
def test_port_zero_is_refused(url: str) -> None:
    """Nothing listens on port 0: refused as a malformed URL (not retried for days)."""
    with pytest.raises(InvalidWebhookUrl) as refused:
        check_webhook_url(url, resolver=_resolver({"hook.example": ["93.184.215.14"]}))
    assert not isinstance(refused.value, UnsafeWebhookUrl)
    assert (refused.value.rule, refused.value.field) == ("invalid_webhook_url", "url")
    result = HttpWebhookSender(allow_private=True, timeout=1).send(
        WebhookEndpoint(url, generate_secret()), WebhookMessage("msg_1", '{"a":1}')
    )
    assert (result.delivered, result.retryable) == (False, False)
