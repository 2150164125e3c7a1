"""Syslog: RFC 5424 (the event's fields as structured data) or RFC 3164, over UDP, TCP
(octet counting, RFC 6587, or LF framing) or TLS (RFC 5425, octet counting).

Syslog has no acknowledgement: only a failed connect or write signals a retry, and a
batch written in part before a connection broke is sent again whole (at-least-once;
the structured data carries event_id for deduplication).

Every message is at most ``max_message_bytes`` long (see :meth:`SyslogConfig.max_bytes`):
a longer one is cut — ``details`` values first, then the free-text payload fields
(error_message, message, document_name), then the other text fields of the payload, then
the message text — and always keeps its envelope (event_id, type, severity, source); one
that cannot be cut short enough is refused (dead-lettered), never retried::

    sink = SyslogSink(SyslogConfig("logs.example", transport="tcp", max_message_bytes=16_384))
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry
from continuum_events.events import Event
from continuum_events.netguard import TargetPolicy, Unresolvable, UnsafeTarget, connect

#: Our severities as syslog severities (RFC 5424 table 2).
SEVERITY = {"critical": 2, "error": 3, "warning": 4, "info": 6}
#: RFC 5612's enterprise number for documentation; set your own PEN in production.
DEFAULT_SD_ID = "continuum@32473"
LIMITS = Limits(max_records=500, max_bytes=256_000, linger_s=0.1, timeout_s=10.0)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
#: CR, LF and NUL end a message for some receivers (LF framing, NUL-delimited TCP, line-based
#: files): inside a field they would forge a second one, so they become spaces.
_ONE_LINE = str.maketrans("\r\n\0", "   ")
#: The most UDP payload one IPv4 datagram carries (65,535 - 20 IP - 8 UDP header bytes):
#: a longer message cannot be sent at all (EMSGSIZE).
UDP_PAYLOAD_LIMIT = 65_507
#: Default bound over UDP: 64 KB, under the datagram limit with room to spare.
UDP_MAX_MESSAGE_BYTES = 64_000
#: Default bound over TCP and TLS: rsyslog's default maxMessageSize, documented as "8k",
#: is 8,096 bytes ("max msg size is 8096" in its log; measured with 8.2302). A longer frame
#: is cut there and its rest read as further messages, with or without octet counting.
TCP_MAX_MESSAGE_BYTES = 8_096
#: Default bound for RFC 3164 whatever the transport (it puts event_id last, where a
#: receiver's own cut would take it): rsyslog's 8,096 too. RFC 3164 itself says 1,024:
#: set ``max_message_bytes=1024`` for a receiver that enforces that.
RFC3164_MAX_MESSAGE_BYTES = 8_096
#: Free-text payload fields, cut after ``details`` (and before the other text fields) to make
#: a message fit.
_FREE_TEXT = ("error_message", "message", "document_name")
#: Ends a value that was cut.
_CUT = "…"


@dataclass(frozen=True)
class SyslogConfig:
    host: str
    port: int = 514
    transport: Literal["udp", "tcp", "tls"] = "udp"
    framing: Literal["octet-counting", "lf"] = "octet-counting"
    format: Literal["rfc5424", "rfc3164"] = "rfc5424"
    facility: int = 16  # local0
    app_name: str = "continuum"
    sd_id: str = DEFAULT_SD_ID
    ca_file: str | None = None  # TLS: the CA that signed the server's certificate
    #: The longest message sent, in bytes, framing aside; None: the default of the
    #: transport and format (the smaller of them applies, see ``max_bytes``).
    max_message_bytes: int | None = None

    @property
    def max_bytes(self) -> int:
        """The bound in force: ``max_message_bytes``, else :data:`UDP_MAX_MESSAGE_BYTES` over
        UDP or :data:`TCP_MAX_MESSAGE_BYTES` over TCP/TLS, at most
        :data:`RFC3164_MAX_MESSAGE_BYTES` in RFC 3164."""
        if self.max_message_bytes is not None:
            return self.max_message_bytes
        bound = UDP_MAX_MESSAGE_BYTES if self.transport == "udp" else TCP_MAX_MESSAGE_BYTES
        return min(bound, RFC3164_MAX_MESSAGE_BYTES) if self.format == "rfc3164" else bound


class MessageTooLong(ValueError):
    """Even cut as far as it may be, the event's message exceeds the bound."""


def _header_field(value: str | None, limit: int) -> str:
    """Printable US-ASCII without spaces, as RFC 5424 header fields must be; '-' if empty."""
    cleaned = "".join(c for c in (value or "") if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def _sd_value(value: object) -> str:
    return str(value).translate(_ONE_LINE).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(name: str) -> str:
    return "".join(c for c in name if 33 <= ord(c) <= 126 and c not in '= ]"')[:32]


def _text(event: Event) -> str:
    p = event.payload
    subject = (
        p.get("printer_name")
        or p.get("printer_id")
        or p.get("source_printer_name")
        or p.get("group_name")
        or p.get("job_id")
        or p.get("component")
        or ""
    )
    where = f" ({p['printer_ip']})" if p.get("printer_ip") else ""
    extra = p.get("error_message") or p.get("message") or ""
    return " ".join(x for x in (event.event_type.value, f"{subject}{where}", extra) if x).translate(_ONE_LINE)


def _longest_first(values: Mapping[str, str], keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: len(values[k]), reverse=True)


def _shorten(value: str, fits: Callable[[str], bool]) -> str:
    """The longest cut of ``value`` (a prefix of whole characters, then :data:`_CUT`) that
    ``fits``; '' when none does. ``fits`` must hold for every prefix of a value it holds for."""
    if not fits(_CUT):
        return ""
    low, high = 0, len(value) - 1  # value[:low] + _CUT fits; the whole value did not
    while low < high:
        middle = (low + high + 1) // 2
        if fits(value[:middle] + _CUT):
            low = middle
        else:
            high = middle - 1
    return value[:low] + _CUT


class SyslogSink:
    limits = LIMITS

    def __init__(self, config: SyslogConfig, *, policy: TargetPolicy | None = None) -> None:
        if config.transport == "tls" and config.framing != "octet-counting":
            raise ValueError("syslog over TLS uses octet counting (RFC 5425)")
        if config.max_bytes < 1:
            raise ValueError("syslog: max_message_bytes must be positive")
        if config.transport == "udp" and config.max_bytes > UDP_PAYLOAD_LIMIT:
            raise ValueError(f"syslog: max_message_bytes over UDP is at most {UDP_PAYLOAD_LIMIT} (one IPv4 datagram)")
        self.config = config
        self.policy = policy  # the address rules of a user-configured integration
        self.local_host = socket.gethostname()
        self._sock: socket.socket | None = None

    # -- formatting -------------------------------------------------------------------
    def format(self, event: Event) -> bytes:
        """The message, at most ``config.max_bytes`` long; :class:`MessageTooLong` if it cannot be."""
        limit = self.config.max_bytes
        message = self._render(event)
        if len(message) <= limit:
            return message
        # Cut whole characters only (half a UTF-8 sequence is not text to any receiver), the
        # least useful first; never the envelope, so event_id stays for deduplication.
        texts = [k for k, v in event.payload.items() if isinstance(v, str)]
        cuts = (
            [("details", k) for k in _longest_first(event.details, list(event.details))]
            + [("payload", k) for k in _longest_first(event.payload, [k for k in texts if k in _FREE_TEXT])]
            + [("payload", k) for k in _longest_first(event.payload, [k for k in texts if k not in _FREE_TEXT])]
        )
        full = [getattr(event, kind)[key] for kind, key in cuts]

        def cut(emptied: int, last: str | None = None) -> Event:
            """The event with its first ``emptied`` cuts emptied, the next one set to ``last``."""
            values = [""] * emptied + full[emptied:]
            if last is not None:
                values[emptied] = last
            details, payload = dict(event.details), dict(event.payload)
            for (kind, key), value in zip(cuts, values, strict=False):
                (details if kind == "details" else payload)[key] = value
            # A detail cut to nothing goes, name and all.
            return replace(
                event, details={k: v for k, v in details.items() if v or not event.details[k]}, payload=payload
            )

        def fits(shaped: Event, text: str | None = None) -> bool:
            return len(self._render(shaped, text)) <= limit

        if cuts and fits(cut(len(cuts))):
            low, high = 1, len(cuts)  # the fewest cuts emptied that make it fit (none does not)
            while low < high:
                middle = (low + high) // 2
                low, high = (low, middle) if fits(cut(middle)) else (middle + 1, high)
            return self._render(cut(low - 1, _shorten(full[low - 1], lambda v: fits(cut(low - 1, v)))))
        shaped = cut(len(cuts))
        message = self._render(shaped, _shorten(_text(shaped), lambda t: fits(shaped, t)))
        if len(message) > limit:
            raise MessageTooLong(
                f"syslog: the message of event {event.event_id} cannot be cut to {limit} bytes "
                f"(max_message_bytes): {len(message)} bytes without its free text"
            )
        return message

    def _render(self, event: Event, text: str | None = None) -> bytes:
        """The whole message, with ``text`` (default: :func:`_text`) as its free text."""
        pri = self.config.facility * 8 + SEVERITY[event.severity.value]
        host = event.payload.get("printer_name") or self.local_host
        text = _text(event) if text is None else text
        if self.config.format == "rfc3164":
            t = event.timestamp
            stamp = f"{_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"
            # No structured data in RFC 3164: the event id ends the text, for deduplication.
            return (
                f"<{pri}>{stamp} {_header_field(host, 255)} {_header_field(self.config.app_name, 32)}: "
                f"{text + ' ' if text else ''}event_id={event.event_id}"
            ).encode()
        fields = {
            "event_id": event.event_id,
            "event_type": event.event_type.value,
            "severity": event.severity.value,
            "source": event.source,
        }
        fields.update(
            {
                k: v if not isinstance(v, list) else ",".join(map(str, v))
                for k, v in event.payload.items()
                if v not in (None, [], "")
            }
        )
        fields.update({f"details.{k}": v for k, v in event.details.items()})
        sd = f"[{self.config.sd_id} " + " ".join(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in fields.items()) + "]"
        stamp = event.timestamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
        header = (
            f"<{pri}>1 {stamp} {_header_field(host, 255)} {_header_field(self.config.app_name, 48)} - "
            f"{_header_field(event.event_type.value, 32)}"
        )
        return f"{header} {sd}{' ' + text if text else ''}".encode()

    def frame(self, message: bytes) -> bytes:
        if self.config.transport == "udp":
            return message
        if self.config.framing == "lf":
            return message.replace(b"\n", b" ") + b"\n"
        return str(len(message)).encode() + b" " + message

    # -- transport --------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        c = self.config
        try:
            if c.transport == "udp":
                address = self.policy.addresses(c.host)[0] if self.policy else c.host
                sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect((address, c.port))
            else:
                sock = connect(c.host, c.port, self.limits.timeout_s, self.policy)
                if c.transport == "tls":
                    context = ssl.create_default_context(cafile=c.ca_file)
                    sock = context.wrap_socket(sock, server_hostname=c.host)
        except Unresolvable as exc:
            raise Retry(f"syslog: {exc}") from None
        except UnsafeTarget as exc:
            raise ConfigError(f"syslog: address refused: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(f"syslog TLS: the server's certificate is not trusted ({exc.verify_message})") from None
        except OSError as exc:
            raise Retry(f"syslog {c.transport}://{c.host}:{c.port}: {exc.strerror or exc}") from None
        self._sock = sock
        return sock

    def write(self, events: Sequence[Event]) -> BatchResult:
        frames, rejected = [], {}
        for i, e in enumerate(events):
            try:
                frames.append(self.frame(self.format(e)))
            except MessageTooLong as exc:
                rejected[i] = str(exc)
        if not frames:
            return BatchResult(rejected=rejected)
        sock = self._connect()
        try:
            if self.config.transport == "udp":
                for f in frames:
                    sock.send(f)  # one message per datagram
            else:
                sock.sendall(b"".join(frames))
        except OSError as exc:
            self.close()
            raise Retry(f"syslog write failed: {exc.strerror or exc}") from None
        return BatchResult(rejected=rejected)

    def check(self) -> str:
        self.close()
        self._connect()
        verdict = f"syslog {self.config.transport}://{self.config.host}:{self.config.port} reachable" + (
            " (UDP: no acknowledgement is possible)" if self.config.transport == "udp" else ""
        )
        self.close()
        return verdict

    def close(self) -> None:
        if self._sock is not None:
            try:
                if isinstance(self._sock, ssl.SSLSocket):
                    self._sock.unwrap()
            except (OSError, ValueError):
                pass
            self._sock.close()
            self._sock = None
