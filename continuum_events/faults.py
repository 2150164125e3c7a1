"""Labelled crash points: fault injection for the crash-safety tests.

A process started with ``CONTINUUM_CRASH_AT=POINT[:N]`` kills itself with SIGKILL the
N-th time (default 1) it reaches ``POINT`` — exactly as an OOM kill or a power cut
would, with no ``finally`` run, no flush, no commit. The points sit where a crash is
hardest to survive (between the vendor's answer and the commit, in the middle of a
dead-letter write, ...), so the tests can prove "0 lost, at most one batch repeated"
at each of them instead of hoping a random kill lands there::

    CONTINUUM_CRASH_AT=connector.delivered:3 continuum-events connector splunk-prod ...

Unset (the default) every :func:`crash_point` is one dictionary lookup and a return.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

ENV = "CONTINUUM_CRASH_AT"

#: Every point a process can be told to die at, and where it is.
POINTS: dict[str, str] = {
    "connector.mid-batch": "records consumed into the open batch, none of it sent",
    "connector.request-answered": "a vendor request answered, before the connector looks at the answer "
    "(for one-request-per-event vendors: the middle of a batch)",
    "connector.delivered": "the vendor accepted the batch; its offsets not yet committed",
    "connector.committed": "the batch's offsets committed",
    "connector.dead-letter": "a dead letter handed to the producer, not yet acknowledged by the brokers",
}

log = logging.getLogger(__name__)


class _Armed:
    def __init__(self, spec: str | None) -> None:
        self.point: str | None = None
        self.remaining = 0
        if not spec:
            return
        point, _, nth = spec.partition(":")
        if point not in POINTS:
            raise ValueError(f"{ENV}={spec!r}: unknown crash point {point!r}; one of {', '.join(POINTS)}")
        if nth and (not nth.isdigit() or int(nth) < 1):
            raise ValueError(f"{ENV}={spec!r}: the count after ':' must be a positive whole number")
        self.point, self.remaining = point, int(nth or 1)


_armed = _Armed(os.environ.get(ENV))


def crash_point(point: str) -> None:
    """Die here (SIGKILL, no cleanup) if this process was armed for ``point``."""
    if point != _armed.point:
        return
    _armed.remaining -= 1
    if _armed.remaining == 0:
        log.critical("crash point %s reached: killing this process (%s)", point, ENV)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def arm(spec: str | None) -> None:
    """Arm (or with None disarm) this process; for in-process tests of the parser."""
    global _armed
    _armed = _Armed(spec)
