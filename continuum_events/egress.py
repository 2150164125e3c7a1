"""The way out to the vendors: an HTTP(S) proxy for vendor traffic, as enterprise networks
require (Splunk Cloud, Datadog, PagerDuty … reached only through a proxy).

The proxy is **trusted configuration**, set by the operator and never by an admin-page
user: globally for every connector process by environment variables, or per integration
in the operator's integrations file (``proxy:``), which then replaces the global one::

    CONTINUUM_EGRESS_HTTPS_PROXY=http://proxy.corp.example:3128
    CONTINUUM_EGRESS_NO_PROXY=splunk.corp.example,.internal,10.0.0.0/8
    CONTINUUM_EGRESS_PROXY_USERNAME=svc-continuum
    CONTINUUM_EGRESS_PROXY_PASSWORD_FILE=/run/secrets/proxy-password   # or _PASSWORD_ENV=VAR
    CONTINUUM_EGRESS_CA_BUNDLE=/etc/ssl/corp-ca.pem   # a TLS-inspecting proxy's CA, if any

    integrations:
      - name: splunk-cloud
        vendor: splunk
        proxy: {https_proxy: "http://proxy-eu.corp.example:3128", password: {file: /run/secrets/p}}
      - name: splunk-onprem
        vendor: splunk
        proxy: {https_proxy: null}          # direct, whatever the global setting

An https vendor is reached through an HTTP ``CONNECT`` tunnel: TLS runs end to end with
the vendor and its certificate is verified for the vendor's name; the proxy sees only
the name and port. The address rules (:mod:`continuum_events.netguard`) still apply to
the vendor's name: when it resolves here, every address must be allowed; when it does not
(networks where only the proxy resolves outside names) the proxy resolves it. The proxy's
own address is not checked — it is the operator's. Credentials go in a
``Proxy-Authorization`` header and are concealed from every error and log line.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr


class ProxyError(ValueError):
    """A proxy setting that cannot work; the message names the setting, never a secret."""


@dataclass(frozen=True)
class EgressProxy:
    """The resolved way out: the proxy (``url``; None: direct), what bypasses it, its
    credentials, and the CA bundle vendor certificates are verified with (None: the
    system's; a TLS-inspecting proxy needs its own)."""

    url: str | None
    no_proxy: tuple[str, ...] = ()
    username: str | None = None
    password: SecretStr | None = None
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if self.url is None:
            return
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProxyError(f"https_proxy must be http://host:port or https://host:port, got {_safe(self.url)!r}")
        if parts.username or parts.password:
            raise ProxyError(
                "https_proxy: give the proxy's credentials as username and password (a secret "
                "reference), not inside the URL"
            )

    @property
    def address(self) -> str:
        """host:port of the proxy, for messages (never credentials)."""
        parts = urlsplit(self.url or "")
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

    def bypassed(self, host: str) -> bool:
        """True when ``host`` is in ``no_proxy``: ``*``, a name or ``.suffix`` (a name also
        matches its subdomains), an address, or a network (``10.0.0.0/8``)."""
        host = host.strip("[]").lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self.no_proxy:
            entry = entry.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry == "*":
                return True
            if address is not None:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            suffix = entry.lstrip(".")
            if host == suffix or host.endswith("." + suffix):
                return True
        return False

    def for_url(self, url: str) -> str | None:
        """The proxy URL (with credentials, for the transport only) to reach ``url``, or None
        when it goes direct."""
        host = urlsplit(url).hostname or ""
        if self.url is None or self.bypassed(host):
            return None
        if self.username is None:
            return self.url
        parts = urlsplit(self.url)
        secret = self.password.get_secret_value() if self.password else ""
        userinfo = quote(self.username, safe="") + (":" + quote(secret, safe="") if secret else "")
        return f"{parts.scheme}://{userinfo}@{parts.netloc}"

    def secrets(self) -> tuple[str, ...]:
        """What an error or a log line must never show."""
        if self.password is None:
            return ()
        value = self.password.get_secret_value()
        return (value, quote(value, safe=""))


def _safe(url: str) -> str:
    """``url`` without any userinfo, for an error message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def split_no_proxy(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(i.strip() for i in items if i.strip())


class EgressSettings(BaseModel):
    """The global proxy, for every connector process: ``CONTINUUM_EGRESS_<FIELD>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    https_proxy: str | None = None
    no_proxy: str = ""
    proxy_username: str | None = None
    proxy_password_file: str | None = None
    proxy_password_env: str | None = None
    ca_bundle: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EgressSettings:
        return cls(
            **{
                name: environ[f"{ENV_PREFIX}{name.upper()}"]
                for name in cls.model_fields
                if environ.get(f"{ENV_PREFIX}{name.upper()}")
            }
        )


ENV_PREFIX = "CONTINUUM_EGRESS_"


def global_proxy(environ: Mapping[str, str] = os.environ) -> EgressProxy | None:
    """The way out the environment sets for every integration (a proxy, a CA bundle),
    None when it sets neither.
    Raises :class:`ProxyError` (a bad setting) or IntegrationError (an unreadable password)."""
    from continuum_events.integrations import SecretRef

    settings = EgressSettings.from_environ(environ)
    if not settings.https_proxy and not settings.ca_bundle:
        return None
    password = None
    if settings.proxy_password_file or settings.proxy_password_env:
        if settings.proxy_password_file and settings.proxy_password_env:
            raise ProxyError(f"set one of {ENV_PREFIX}PROXY_PASSWORD_FILE and {ENV_PREFIX}PROXY_PASSWORD_ENV")
        password = SecretRef(file=settings.proxy_password_file, env=settings.proxy_password_env).resolve(environ)
    return EgressProxy(
        settings.https_proxy or None,
        split_no_proxy(settings.no_proxy),
        settings.proxy_username,
        password,
        settings.ca_bundle,
    )
