"""HTTP plumbing shared by the HTTP connectors: one session, timeouts, gzip, and error
text that never carries a credential (headers and URLs are not echoed)."""

from __future__ import annotations

import gzip
from collections.abc import Mapping

import requests

from continuum_events.connectors.base import ConfigError, Retry, TooLarge, parse_retry_after


class HttpClient:
    """``post`` and ``request`` return the response for statuses the connector classifies itself and
    turn timeouts, failed connections and other transport errors into the runtime's Retry."""

    def __init__(self, timeout_s: float, session: requests.Session | None = None) -> None:
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, gzip_body: bool = False,
             what: str = "request") -> requests.Response:
        if gzip_body:
            body = gzip.compress(body, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        return self.request("POST", url, body, headers, what=what)

    def request(self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                *, what: str = "request") -> requests.Response:
        """Any method; a timeout or a failed connection becomes :class:`Retry`."""
        try:
            return self.session.request(method, url, data=body, headers=dict(headers or {}), timeout=self.timeout_s)
        except requests.Timeout:
            raise Retry(f"{what}: no answer within {self.timeout_s:.0f} s") from None
        except requests.ConnectionError as exc:
            raise Retry(f"{what}: connection failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            # Never the exception's text: it may carry the URL, and some URLs hold keys (VictorOps).
            raise Retry(f"{what}: request failed ({type(exc).__name__})") from None

    def close(self) -> None:
        self.session.close()


def raise_for_common(response: requests.Response, *, what: str, retry: set[int], config: set[int],
                     too_large: bool = True) -> None:
    """Throttling/unavailable -> Retry (with Retry-After), auth -> ConfigError, 413 -> TooLarge."""
    status = response.status_code
    if too_large and status == 413:
        raise TooLarge(f"{what}: 413")
    if status in retry or status >= 500:
        raise Retry(f"{what}: HTTP {status} {_short(response)}", parse_retry_after(response.headers.get("Retry-After")))
    if status in config:
        raise ConfigError(f"{what}: HTTP {status} {_short(response)}")


def _short(response: requests.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit]
