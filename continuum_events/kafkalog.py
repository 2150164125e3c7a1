"""librdkafka's log lines, through Python logging and rate-limited.

Left to itself, librdkafka writes to stderr, and with a broker down it repeats the same
connection failure for every retry of every client: hundreds of ``FAIL`` lines a minute.
Every client built from :meth:`KafkaSettings.client_config` logs to the ``librdkafka``
logger instead, where each kind of line (facility and text, numbers aside) passes at most
once per :data:`INTERVAL_S`; the next one that passes says how many were held back::

    FAIL [rdkafka#consumer-1] ...: Connect to ipv4#127.0.0.1:9092 failed: Connection refused
    ... 30 s later ...
    FAIL [rdkafka#consumer-1] ...: Connect to ... failed: Connection refused (412 similar lines held back)
"""

from __future__ import annotations

import logging
import re
import threading
import time

INTERVAL_S = 30.0
_NUMBERS = re.compile(r"\d+")


class RateLimit(logging.Filter):
    def __init__(self, interval_s: float = INTERVAL_S, clock=time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        facility, text = (str(args[0]), str(args[-1])) if len(args) >= 2 else ("", record.getMessage())
        kind = facility + " " + _NUMBERS.sub("#", text.split("]: ", 1)[-1])
        now = self._clock()
        with self._lock:
            last, held = self._seen.get(kind, (None, 0))
            if last is not None and now - last < self.interval_s:
                self._seen[kind] = (last, held + 1)
                return False
            self._seen[kind] = (now, 0)
            if len(self._seen) > 1000:  # kinds are few; bound the memory anyway
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.interval_s}
        if held:
            record.msg = f"{record.msg} ({held} similar lines held back)"
        return True


LOGGER = logging.getLogger("librdkafka")
LOGGER.addFilter(RateLimit())
