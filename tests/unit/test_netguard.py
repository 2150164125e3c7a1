"""The address rules for vendor URLs typed by users (server-side request forgery)."""

from __future__ import annotations

import pytest

from continuum_events.netguard import UnsafeTarget, check_host, check_url, classify


def resolver(table: dict[str, list[str]]):
    return lambda host: table[host]


PUBLIC = resolver({"splunk.example.com": ["93.184.215.14"]})


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback (inside an IPv6 address)"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private (inside an IPv6 address)"),
        ("2002:7f00:1::", "loopback (inside an IPv6 address)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not globally routable"),
        ("fd00::1", "private"),
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    assert classify(address).startswith(kind.split(" (")[0])
    if "inside" in kind:
        assert "inside an IPv6 address" in classify(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:85e5"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(address) is None


def test_https_to_a_public_host_is_allowed() -> None:
    assert check_url("https://splunk.example.com:8088", resolver=PUBLIC) == ["93.184.215.14"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://splunk.example.com", "plain http"),
        ("ftp://splunk.example.com", "expected an https:// URL"),
        ("https://", "expected an https:// URL"),
        ("https://user:pw@splunk.example.com", "credentials do not belong in the URL"),
        ("https://splunk.example.com:99999", "not a URL"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(UnsafeTarget, match=message):
        check_url(url, resolver=PUBLIC)


@pytest.mark.parametrize(
    ("addresses", "kind"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.0.0.5"], "private"),
        (["169.254.169.254"], "link-local"),
        (["::ffff:10.0.0.5"], "inside an IPv6 address"),
        (["93.184.215.14", "192.168.0.1"], "private"),
    ],
)
def test_a_name_resolving_to_any_private_address_is_refused_unless_allowed(addresses: list[str], kind: str) -> None:
    lookup = resolver({"intake.example.com": addresses})
    with pytest.raises(UnsafeTarget, match=kind):
        check_url("https://intake.example.com", resolver=lookup)
    assert check_url("https://intake.example.com", allow_private=True, resolver=lookup) == addresses


def test_an_explicit_on_premises_target() -> None:
    lookup = resolver({"splunk.corp": ["10.0.0.5"]})
    assert check_url("http://splunk.corp:8088", allow_http=True, allow_private=True, resolver=lookup)
    assert check_host("splunk.corp", allow_private=True, resolver=lookup) == ["10.0.0.5"]
    with pytest.raises(UnsafeTarget, match="private"):
        check_host("splunk.corp", resolver=lookup)


def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(UnsafeTarget, match="cannot resolve"):
        check_url("https://no-such-host.invalid")
