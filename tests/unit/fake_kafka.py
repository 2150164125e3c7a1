"""A consumed record as the connector runtime sees it, for tests that drive it without a broker."""

from __future__ import annotations


class Message:
    def __init__(self, offset: int, topic: str = "printer-events.alerting", value: bytes | None = None) -> None:
        self.at, self._topic = offset, topic
        self._value = str(offset).encode() if value is None else value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"p-1"
