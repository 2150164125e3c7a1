"""Where a user-configured vendor address may point (server-side request forgery guard).

A vendor URL typed into the admin page is fetched by our servers, so it must not reach
what only our servers can reach: loopback, private networks, link-local (cloud metadata
at 169.254.169.254), and the same hidden behind IPv6 (IPv4-mapped, NAT64, 6to4). The
rules: https only unless plain http is explicitly allowed; every address the host name
resolves to must be public unless the integration explicitly allows a private target
(an on-premises Splunk is legitimate — the choice must be explicit)::

    check_url("https://http-inputs.example.splunkcloud.com:443")               # ok, or UnsafeTarget
    check_url("http://10.0.0.5:8088", allow_http=True, allow_private=True)     # on-prem, explicit
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Resolver = Callable[[str], list[str]]


class UnsafeTarget(ValueError):
    """The address may not be used; the message says why and what would allow it."""


class Unresolvable(UnsafeTarget):
    """The host name does not resolve (now): a form error when typed in, a transient
    failure (retried) when met at connection time."""


def resolve(host: str) -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host!r} ({exc})") from None


def classify(address: str) -> str | None:
    """None for a public address, else what kind of non-public address it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            kind = classify(str(embedded))
            return f"{kind} (inside an IPv6 address)" if kind else None
    for kind, test in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local (cloud metadata lives here)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if test:
            return kind
    return None if ip.is_global else "not globally routable"


def check_host(host: str, *, allow_private: bool = False, resolver: Resolver = resolve) -> list[str]:
    """The addresses ``host`` resolves to, each checked; raises :class:`UnsafeTarget`."""
    if not host:
        raise UnsafeTarget("no host given")
    addresses = resolver(host)
    if not addresses:
        raise Unresolvable(f"{host!r} resolves to no address")
    if not allow_private:
        for address in addresses:
            kind = classify(address)
            if kind:
                raise UnsafeTarget(
                    f"{host} resolves to {address}, a {kind} address; allow a private target "
                    "explicitly for an on-premises receiver"
                )
    return addresses


def check_url(
    url: str, *, allow_http: bool = False, allow_private: bool = False, resolver: Resolver = resolve
) -> list[str]:
    """Check a vendor base URL; returns the checked addresses or raises :class:`UnsafeTarget`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise UnsafeTarget(f"not a URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeTarget("expected an https:// URL with a host name")
    if parts.scheme == "http" and not allow_http:
        raise UnsafeTarget(
            "plain http sends credentials unencrypted: use https, or allow http explicitly for an on-premises receiver"
        )
    if parts.username or parts.password:
        raise UnsafeTarget("credentials do not belong in the URL: use the secret fields")
    return check_host(parts.hostname, allow_private=allow_private, resolver=resolver)


# -- at connection time ------------------------------------------------------------------
@dataclass(frozen=True)
class TargetPolicy:
    """What an integration's sends may reach, applied at every connection (not only when
    the address is typed in): the host is resolved, each address checked, and the
    connection made to a checked address — so a DNS answer that changes after the check
    (rebinding) cannot steer a send to loopback or the metadata service."""

    allow_private: bool = False
    allow_http: bool = False
    resolver: Resolver = field(default=resolve, compare=False, repr=False)

    def check_scheme(self, scheme: str) -> None:
        if scheme == "http" and not self.allow_http:
            raise UnsafeTarget(
                "plain http sends credentials unencrypted: use https, or allow http explicitly "
                "for an on-premises receiver"
            )

    def addresses(self, host: str) -> list[str]:
        """The checked addresses to connect to, in resolver order; raises :class:`UnsafeTarget`."""
        return check_host(host, allow_private=self.allow_private, resolver=self.resolver)


def connect(host: str, port: int, timeout: float, policy: TargetPolicy | None) -> socket.socket:
    """A TCP connection to ``host``:``port`` through ``policy`` (None: no address rules)."""
    if policy is None:
        return socket.create_connection((host, port), timeout=timeout)
    last: OSError | None = None
    for address in policy.addresses(host):
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last
