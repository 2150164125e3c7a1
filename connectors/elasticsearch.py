"""Elasticsearch ``_bulk``: ``create`` actions with ``_id`` = event_id, so a replay or a
redelivery never makes a second document; each item's outcome is read on its own.

The index pattern is checked against Elasticsearch's index name rules when the
integration is configured; an index the cluster still refuses (closed, blocked, a name
it will not take, missing) is the integration's configuration problem — the batch is
kept and the integration reported unhealthy — never a reason to dead-letter events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry, describe_event
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import Event

LIMITS = Limits(max_records=1000, max_bytes=5_000_000, linger_s=0.2, timeout_s=15.0)
#: Item errors that mean the index, not the document, is refused: configuration, not the record.
INDEX_REFUSED = frozenset(
    {
        "index_not_found_exception",
        "invalid_index_name_exception",
        "index_closed_exception",
        "cluster_block_exception",
        "invalid_alias_name_exception",
        "security_exception",
    }
)
FORBIDDEN_IN_INDEX = frozenset('\\/*?"<>| ,#:')
MAX_INDEX_BYTES = 255
#: Dates whose formatting covers every month and weekday name (the longest names included).
_SAMPLE_DAYS = [datetime(2026, month, 28, 23, 59, 59, tzinfo=UTC) for month in range(1, 13)] + [
    datetime(2026, 9, day, tzinfo=UTC) for day in range(21, 28)
]


def index_problem(pattern: str) -> str | None:
    """Why indices named by ``pattern`` (strftime) would break Elasticsearch's index name
    rules, or None: lower case, none of ``\\ / * ? " < > | , # :`` nor space, not starting
    with ``-``, ``_`` or ``+``, not ``.`` or ``..``, at most 255 bytes."""
    for day in _SAMPLE_DAYS:
        name = day.strftime(pattern)
        if not name:
            return "index_pattern makes an empty index name"
        if name != name.lower():
            return f"index_pattern makes {name!r}: index names are lower case"
        bad = sorted(FORBIDDEN_IN_INDEX.intersection(name))
        if bad:
            return f"index_pattern makes {name!r}: index names cannot hold {' '.join(repr(c) for c in bad)}"
        if name[0] in "-_+":
            return f"index_pattern makes {name!r}: index names cannot start with -, _ or +"
        if name in (".", ".."):
            return "index_pattern makes '.' or '..', which cannot name an index"
        if len(name.encode()) > MAX_INDEX_BYTES:
            return f"index_pattern makes names of {len(name.encode())} bytes: at most {MAX_INDEX_BYTES}"
    return None


@dataclass(frozen=True)
class ElasticsearchConfig:
    url: str  # e.g. https://es.example.com:9200
    api_key: SecretStr | None = None  # base64(id:key), as Elasticsearch issues it
    username: str | None = None
    password: SecretStr | None = None
    #: strftime pattern applied to the event's time: daily indices by default.
    index_pattern: str = "continuum-events-%Y.%m.%d"

    def __post_init__(self) -> None:
        self.check_options({"index_pattern": self.index_pattern})

    @staticmethod
    def check_options(options: Mapping[str, Any]) -> None:
        """Checks that need no secret, so an integration is refused when it is connected."""
        pattern = options.get("index_pattern")
        problem = index_problem(pattern) if isinstance(pattern, str) else None
        if problem:
            raise ValueError(problem)


class ElasticsearchSink:
    limits = LIMITS

    def __init__(self, config: ElasticsearchConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(LIMITS.timeout_s)
        if config.username and config.password:
            self.client.session.auth = (config.username, config.password.get_secret_value())

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/x-ndjson"}
        if self.config.api_key:
            headers["Authorization"] = f"ApiKey {self.config.api_key.get_secret_value()}"
        return headers

    def index_of(self, event: Event) -> str:
        return datetime.fromtimestamp(event.timestamp_us / 1e6, tz=UTC).strftime(self.config.index_pattern)

    def encode(self, events: Sequence[Event]) -> bytes:
        lines = []
        for e in events:
            source = describe_event(e)
            lines.append(orjson.dumps({"create": {"_index": self.index_of(e), "_id": e.event_id}}))
            lines.append(orjson.dumps({"@timestamp": source["timestamp"], **source}))
        return b"\n".join(lines) + b"\n"

    def write(self, events: Sequence[Event]) -> BatchResult:
        response = self.client.post(
            f"{self.config.url.rstrip('/')}/_bulk", self.encode(events), self._headers(), what="Elasticsearch bulk"
        )
        raise_for_common(response, what="Elasticsearch bulk", retry={408, 429}, config={401, 403})
        if response.status_code != 200:
            raise Retry(f"Elasticsearch bulk: unexpected HTTP {response.status_code}")
        answer = response.json()
        if not answer.get("errors"):
            return BatchResult()
        rejected, retry = {}, {}
        for i, item in enumerate(answer.get("items", [])):
            result = item.get("create") or item.get("index") or {}
            status, error = result.get("status", 200), result.get("error") or {}
            reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
            if status < 300 or status == 409:
                continue  # 409 on create with our own _id: already delivered earlier
            if status == 429 or status >= 500:
                retry[i] = f"Elasticsearch item {status} {reason}"
            elif error.get("type") in INDEX_REFUSED:
                raise ConfigError(f"Elasticsearch refuses index {result.get('_index', '?')}: {reason}")
            else:
                rejected[i] = f"Elasticsearch item {status} {reason}"
        return BatchResult(rejected=rejected, retry=retry)

    def check(self) -> str:
        response = self.client.request("GET", self.config.url, headers=self._headers(), what="Elasticsearch")
        if response.status_code in (401, 403):
            raise ConfigError(f"Elasticsearch refused the credentials (HTTP {response.status_code})")
        if response.status_code != 200:
            raise Retry(f"Elasticsearch answered HTTP {response.status_code}")
        version = response.json().get("version", {}).get("number", "?")
        return f"Elasticsearch {version} at {self.config.url} accepts the credentials"

    def close(self) -> None:
        self.client.close()
