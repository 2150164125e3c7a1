"""HTTP plumbing shared by the HTTP connectors: one session, a hard deadline per request,
no redirects, the address rules at every connection, gzip, and error text that never
carries a credential (headers and URLs are not echoed).

* **Deadline.** ``requests``' timeout bounds each socket operation, so a receiver that
  trickles one byte a second never times out. Here ``timeout_s`` bounds the whole
  request — connect, send, wait, read: a watchdog shuts the socket down when it passes.
* **Redirects are refused**: a vendor endpoint that redirects is misconfigured, and
  following one would send the credentials wherever it points.
* **Address rules** (:class:`~continuum_events.netguard.TargetPolicy`), when given: the
  host is resolved at each new connection, every address checked, and the socket
  connected to the checked address (TLS still verifies the certificate for the name).
* **Egress proxy** (:mod:`continuum_events.egress`), when the operator sets one: an https
  vendor is reached through a CONNECT tunnel (TLS end to end, the certificate verified
  for the vendor's name); the address rules judge the vendor's name, not the proxy's
  address; a proxy that refuses the tunnel (407, 403, 502 …) is a configuration problem
  named with the proxy's address and status, never its credentials.
* **Secrets in URLs** (VictorOps puts both its keys in the path): a sink names them once,
  ``client.conceal(config.api_key, ...)``, and while that client is open :func:`redact`
  replaces them by ``**********`` wherever a text may echo a request path — vendor answers quoted in
  errors (:func:`raise_for_common`), the runtime's health, status and dead-letter
  reasons, and log lines (:class:`RedactingFilter`, on urllib3's loggers, whose DEBUG
  lines print each request path, and on the handler the CLI configures). The register
  of open clients is process-wide because log records are.
"""

from __future__ import annotations

import gzip
import logging
import re
import socket
import threading
import typing
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from continuum_events.connectors.base import ConfigError, Retry, TooLarge, parse_retry_after
from continuum_events.egress import EgressProxy
from continuum_events.faults import crash_point
from continuum_events.netguard import TargetPolicy, Unresolvable, UnsafeTarget

_inflight = threading.local()

REDACTED = "**********"
#: The clients that carry secrets in their URLs, while they are open.
_concealing: weakref.WeakSet[HttpClient] = weakref.WeakSet()
#: urllib3's loggers: connectionpool logs every request's method and path at DEBUG.
URLLIB3_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)


def redact(text: str) -> str:
    """``text`` with every value an open client conceals replaced by ``**********``."""
    secrets = sorted({v for client in list(_concealing) for v in client.concealed}, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message holds a concealed value (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _concealing:
            message = record.getMessage()
            hidden = redact(message)
            if hidden != message:
                record.msg, record.args = hidden, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True


_REDACTING = RedactingFilter()
for _name in URLLIB3_LOGGERS:
    if _REDACTING not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_REDACTING)


class _Watch:
    """The connection one request uses, so the watchdog can cut it at the deadline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connection: HTTPConnection | None = None
        self.expired = False

    def attach(self, connection: HTTPConnection) -> None:
        with self.lock:
            self.connection = connection
            if self.expired:
                raise TimeoutError("deadline passed")

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sock = self.connection.sock if self.connection is not None else None
        if sock is not None:
            try:  # the plain socket's shutdown, even under TLS: it wakes a blocked send or recv
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _guarded(base: type[HTTPConnection], policy: TargetPolicy | None) -> type[HTTPConnection]:
    class Guarded(base):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> socket.socket:
            watch = getattr(_inflight, "watch", None)
            if watch is not None:
                watch.attach(self)
            if policy is None:
                return typing.cast(socket.socket, super()._new_conn())
            name: str = getattr(self, "_dns_host")  # noqa: B009 - urllib3 sets it in __init__, untyped
            last: Exception | None = None
            for address in policy.addresses(self.host):
                # urllib3 connects to ``_dns_host`` and names the server (Host header, TLS
                # SNI and certificate check) after it too: the address only while connecting.
                self._dns_host = address
                try:
                    return typing.cast(socket.socket, super()._new_conn())
                except Exception as exc:  # noqa: BLE001 - urllib3's connection errors; try the next address
                    last = exc
                finally:
                    self._dns_host = name
            assert last is not None
            raise last

        def request(self, *args: Any, **kwargs: Any) -> None:
            watch = getattr(_inflight, "watch", None)
            if watch is not None:
                watch.attach(self)  # a reused keep-alive connection
            super().request(*args, **kwargs)

    return Guarded


class GuardedAdapter(HTTPAdapter):
    """A transport adapter whose connections follow ``policy`` and can be cut at a deadline."""

    def __init__(self, policy: TargetPolicy | None = None, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _guarded(HTTPConnection, self.policy)})
        https = type(
            "GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _guarded(HTTPSConnection, self.policy)}
        )
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Through a proxy the socket goes to the proxy (the operator's, trusted): its
        connections keep the deadline but not the address rules, which ``send`` applied to
        the vendor's name."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {
            "http": type("DeadlineHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _guarded(HTTPConnection, None)}),
            "https": type(
                "DeadlineHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _guarded(HTTPSConnection, None)}
            ),
        }
        return manager

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if self.policy is not None:
            scheme = (request.url or "").partition(":")[0]
            self.policy.check_scheme(scheme)
            if (kwargs.get("proxies") or {}).get(scheme):
                # The proxy connects to the vendor, so the rules judge the vendor's name here:
                # every address it resolves to now, or — when only the proxy can resolve it —
                # the proxy's answer for it.
                try:
                    self.policy.addresses(urlsplit(request.url or "").hostname or "")
                except Unresolvable:
                    pass
        return super().send(request, *args, **kwargs)


def guarded_session(policy: TargetPolicy | None = None, proxy: EgressProxy | None = None) -> requests.Session:
    """A session for vendor traffic: guarded connections; no proxy, CA bundle or netrc from
    the environment — a proxy is the operator's setting (:mod:`continuum_events.egress`),
    given as ``proxy``. :class:`HttpClient` never follows a redirect."""
    session = requests.Session()
    session.trust_env = False
    if proxy is not None and proxy.ca_bundle:
        session.verify = proxy.ca_bundle
    adapter = GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (\d{3})([^'\")]*)")


def _tunnel_refusal(exc: BaseException) -> str | None:
    """``"407 Proxy Authentication Required"`` when a proxy refused the CONNECT, else None.
    The status line comes from http.client, which never puts credentials in it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        match = _TUNNEL_REFUSED.search(str(current))
        if match:
            return f"{match.group(1)}{match.group(2)}".strip()
        pending += [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *(a for a in current.args if isinstance(a, BaseException)),
        ]
    return None


class HttpClient:
    """``post`` and ``request`` return the response for statuses the connector classifies itself and
    turn timeouts, failed connections and other transport errors into the runtime's Retry; a
    refused address or a redirect is the integration's configuration problem (ConfigError)."""

    def __init__(
        self,
        timeout_s: float,
        session: requests.Session | None = None,
        *,
        policy: TargetPolicy | None = None,
        proxy: EgressProxy | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.proxy = proxy
        self.session = session or guarded_session(policy, proxy)
        self.concealed: frozenset[str] = frozenset()
        if proxy is not None and proxy.secrets():
            self.conceal(*proxy.secrets())

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, gzip_body: bool = False, what: str = "request"
    ) -> requests.Response:
        if gzip_body:
            body = gzip.compress(body, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        return self.request("POST", url, body, headers, what=what)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        what: str = "request",
    ) -> requests.Response:
        """Any method, within ``timeout_s`` in all; see the module docstring for the rules."""
        via = self.proxy.for_url(url) if self.proxy is not None else None
        watch = _Watch()
        watchdog = threading.Timer(self.timeout_s, watch.expire)
        watchdog.daemon = True
        _inflight.watch = watch
        watchdog.start()
        try:
            response = self.session.request(
                method,
                url,
                data=body,
                headers=dict(headers or {}),
                timeout=self.timeout_s,
                allow_redirects=False,
                proxies={"http": via, "https": via} if via else {},
            )
        except requests.exceptions.ProxyError as exc:
            assert self.proxy is not None
            refused = _tunnel_refusal(exc)
            if refused is not None:
                hint = " — check the proxy credentials" if refused.startswith("407") else ""
                raise ConfigError(
                    f"{what}: the proxy at {self.proxy.address} refused the tunnel to "
                    f"{urlsplit(url).hostname} (HTTP {refused}){hint}"
                ) from None
            raise Retry(
                f"{what}: the proxy at {self.proxy.address} cannot be reached or dropped the "
                f"connection ({type(exc).__name__})"
            ) from None
        except Unresolvable as exc:
            raise Retry(f"{what}: {exc}") from None
        except UnsafeTarget as exc:
            raise ConfigError(f"{what}: address refused: {exc}") from None
        except requests.RequestException as exc:
            if watch.expired or isinstance(exc, requests.Timeout):
                raise Retry(f"{what}: no answer within {self.timeout_s:g} s") from None
            if isinstance(exc, requests.ConnectionError):
                raise Retry(f"{what}: connection failed ({type(exc).__name__})") from None
            # Never the exception's text: it may carry the URL, and some URLs hold keys (VictorOps).
            raise Retry(f"{what}: request failed ({type(exc).__name__})") from None
        except OSError as exc:
            if watch.expired:
                raise Retry(f"{what}: no answer within {self.timeout_s:g} s") from None
            raise Retry(f"{what}: connection failed ({type(exc).__name__})") from None
        finally:
            watchdog.cancel()
            _inflight.watch = None
        if watch.expired:  # the watchdog fired as the answer completed: an answer cut short is no answer
            response.close()
            raise Retry(f"{what}: no answer within {self.timeout_s:g} s")
        crash_point("connector.request-answered")
        if via and response.status_code == 407:  # a plain-http vendor: the proxy answers in its place
            raise ConfigError(
                f"{what}: the proxy at {self.proxy.address if self.proxy else '?'} asks for "
                "credentials (HTTP 407) — check the proxy credentials"
            )
        if response.is_redirect or 300 <= response.status_code < 400:
            raise ConfigError(
                f"{what}: the endpoint answered with a redirect (HTTP {response.status_code}); "
                "redirects are refused — configure the final address"
            )
        return response

    def conceal(self, *secrets: SecretStr | str | None) -> None:
        """Name values this client's URLs carry: :func:`redact` hides them while it is open."""
        values = {s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets if s}
        self.concealed = self.concealed | {form for v in values for form in (v, quote(v, safe=""), quote(v))}
        _concealing.add(self)

    def close(self) -> None:
        self.session.close()
        _concealing.discard(self)


def raise_for_common(
    response: requests.Response, *, what: str, retry: set[int], config: set[int], too_large: bool = True
) -> None:
    """Throttling/unavailable -> Retry (with Retry-After), auth -> ConfigError, 413 -> TooLarge."""
    status = response.status_code
    if too_large and status == 413:
        raise TooLarge(f"{what}: 413")
    if status in retry or status >= 500:
        raise Retry(f"{what}: HTTP {status} {_short(response)}", parse_retry_after(response.headers.get("Retry-After")))
    if status in config:
        raise ConfigError(f"{what}: HTTP {status} {_short(response)}")


def _short(response: requests.Response, limit: int = 200) -> str:
    text = redact(response.text.strip().replace("\n", " "))
    return text[:limit]
