"""Syslog: RFC 5424 (the event's fields as structured data) or RFC 3164, over UDP, TCP
(octet counting, RFC 6587, or LF framing) or TLS (RFC 5425, octet counting).

Syslog has no acknowledgement: only a failed connect or write signals a retry, and a
batch written in part before a connection broke is sent again whole (at-least-once;
the structured data carries event_id for deduplication).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry
from continuum_events.events import Event
from continuum_events.netguard import TargetPolicy, Unresolvable, UnsafeTarget, connect

#: Our severities as syslog severities (RFC 5424 table 2).
SEVERITY = {"critical": 2, "error": 3, "warning": 4, "info": 6}
#: RFC 5612's enterprise number for documentation; set your own PEN in production.
DEFAULT_SD_ID = "continuum@32473"
LIMITS = Limits(max_records=500, max_bytes=256_000, linger_s=0.1, timeout_s=10.0)
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
#: CR, LF and NUL end a message for some receivers (LF framing, NUL-delimited TCP, line-based
#: files): inside a field they would forge a second one, so they become spaces.
_ONE_LINE = str.maketrans("\r\n\0", "   ")


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
    subject = p.get("printer_name") or p.get("printer_id") or p.get("source_printer_name") or p.get("group_name") \
        or p.get("job_id") or p.get("component") or ""
    where = f" ({p['printer_ip']})" if p.get("printer_ip") else ""
    extra = p.get("error_message") or p.get("message") or ""
    return " ".join(x for x in (event.event_type.value, f"{subject}{where}", extra) if x).translate(_ONE_LINE)


class SyslogSink:
    limits = LIMITS

    def __init__(self, config: SyslogConfig, *, policy: TargetPolicy | None = None) -> None:
        if config.transport == "tls" and config.framing != "octet-counting":
            raise ValueError("syslog over TLS uses octet counting (RFC 5425)")
        self.config = config
        self.policy = policy  # the address rules of a user-configured integration
        self.local_host = socket.gethostname()
        self._sock: socket.socket | None = None

    # -- formatting -------------------------------------------------------------------
    def format(self, event: Event) -> bytes:
        pri = self.config.facility * 8 + SEVERITY[event.severity.value]
        host = event.payload.get("printer_name") or self.local_host
        if self.config.format == "rfc3164":
            t = event.timestamp
            stamp = f"{_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"
            # No structured data in RFC 3164: the event id ends the text, for deduplication.
            text = f"{_text(event)} event_id={event.event_id}"
            line = f"<{pri}>{stamp} {_header_field(host, 255)} {_header_field(self.config.app_name, 32)}: "
            # Cut whole characters only: half a UTF-8 sequence is not text to any receiver.
            return (line.encode() + text.encode()[: 1024 - len(line.encode())].decode(errors="ignore").encode())[:1024]
        fields = {"event_id": event.event_id, "event_type": event.event_type.value,
                  "severity": event.severity.value, "source": event.source}
        fields.update({k: v if not isinstance(v, list) else ",".join(map(str, v))
                       for k, v in event.payload.items() if v not in (None, [], "")})
        fields.update({f"details.{k}": v for k, v in event.details.items()})
        sd = f"[{self.config.sd_id} " + " ".join(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in fields.items()) + "]"
        stamp = event.timestamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
        header = (f"<{pri}>1 {stamp} {_header_field(host, 255)} {_header_field(self.config.app_name, 48)} - "
                  f"{_header_field(event.event_type.value, 32)}")
        return f"{header} {sd} {_text(event)}".encode()

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
        frames = [self.frame(self.format(e)) for e in events]
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
        return BatchResult()

    def check(self) -> str:
        self.close()
        self._connect()
        verdict = (f"syslog {self.config.transport}://{self.config.host}:{self.config.port} reachable"
                   + (" (UDP: no acknowledgement is possible)" if self.config.transport == "udp" else ""))
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
