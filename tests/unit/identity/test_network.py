"""The client-address rule: trusted proxies read right to left, and the UI's signed browser address."""

from __future__ import annotations

import ipaddress

import pytest

from sluice.identity.network import TrustedProxies, normalise_networks, vouch_key

KEY = vouch_key("a-jwt-secret-of-enough-length-0123456789")
BROWSER = ipaddress.ip_address("203.0.113.9")


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    proxies = TrustedProxies([], KEY)
    assert proxies.client_address("198.51.100.1", b"10.0.0.1") == ipaddress.ip_address("198.51.100.1")


def test_forwarded_for_is_read_right_to_left_past_trusted_proxies_only() -> None:
    proxies = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8"], KEY)
    assert proxies.client_address("127.0.0.1", b"192.0.2.7, 10.1.1.1") == ipaddress.ip_address("192.0.2.7")
    # a client prepending a forged hop does not get past the first untrusted one
    assert proxies.client_address("127.0.0.1", b"10.9.9.9, 192.0.2.7") == ipaddress.ip_address("192.0.2.7")
    assert proxies.client_address("127.0.0.1", b"not-an-address") == ipaddress.ip_address("127.0.0.1")


def test_the_uis_signed_browser_address_is_believed_from_loopback() -> None:
    proxies = TrustedProxies([], KEY)
    header = proxies.vouch(BROWSER).encode()
    assert proxies.client_address("127.0.0.1", None, header) == BROWSER
    assert proxies.client_address("::1", None, header) == BROWSER


def test_a_signed_browser_address_from_another_host_is_ignored() -> None:
    proxies = TrustedProxies(["192.0.2.0/24"], KEY)
    header = proxies.vouch(BROWSER).encode()
    assert proxies.client_address("192.0.2.1", None, header) == ipaddress.ip_address("192.0.2.1")


@pytest.mark.parametrize(
    "header",
    [
        b"203.0.113.9",
        b"203.0.113.9 " + b"0" * 64,
        b"10.0.0.1 " + TrustedProxies([], KEY).vouch(BROWSER).split(" ")[1].encode(),  # MAC of another address
        b"\xff\xfe garbage",
        b"",
    ],
)
def test_an_unsigned_or_wrongly_signed_browser_address_is_ignored(header: bytes) -> None:
    proxies = TrustedProxies([], KEY)
    assert proxies.client_address("127.0.0.1", None, header) == ipaddress.ip_address("127.0.0.1")


def test_another_gateways_signature_is_not_believed() -> None:
    ours = TrustedProxies([], KEY)
    theirs = TrustedProxies([], vouch_key("another-jwt-secret-entirely-0123456789"))
    assert ours.client_address("127.0.0.1", None, theirs.vouch(BROWSER).encode()) == ipaddress.ip_address("127.0.0.1")


def test_a_resolver_without_a_key_believes_no_browser_header_and_cannot_sign() -> None:
    proxies = TrustedProxies([])
    signed = TrustedProxies([], KEY).vouch(BROWSER).encode()
    assert proxies.client_address("127.0.0.1", None, signed) == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(RuntimeError):
        proxies.vouch(BROWSER)


def test_changing_the_proxies_keeps_the_signing_key() -> None:
    proxies = TrustedProxies([], KEY).with_cidrs(["127.0.0.1/32"])
    assert proxies.cidrs == ["127.0.0.1/32"]
    assert proxies.client_address("127.0.0.1", None, proxies.vouch(BROWSER).encode()) == BROWSER


def test_network_lists_are_normalised_and_a_bad_entry_is_named() -> None:
    assert normalise_networks(["10.1.2.3/8", " 2001:db8::1 "]) == ["10.0.0.0/8", "2001:db8::1/128"]
    with pytest.raises(ValueError, match=r"entry 1: '10\.0\.0\.300' is not a valid IP network"):
        normalise_networks(["127.0.0.1", "10.0.0.300"])
