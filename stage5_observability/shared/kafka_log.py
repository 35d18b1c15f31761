"""librdkafka's own log in this process's sink, one line per kind of trouble per client and minute.

With every broker down, each client (a producer per worker, the consumer, the dead-letter producer)
logs a FAIL line for every reconnect attempt: about a hundred lines in twelve seconds of an idle
stage 4, written straight to stderr, which buried the service's own warnings. A client given
`logger=QuietLog()` hands its lines to the `kafka` logger instead (so they reach the JSON or console
sink like any other record); a repeat of the same facility from the same client within
QUIET_SECONDS is counted and written at DEBUG only, and the next line written at its own level says
how many were left out. With LOG_LEVEL=DEBUG (shared/logs.py lets the `kafka` logger through at that
level), the full client log is in the sink: every line, in order.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

QUIET_SECONDS = 60.0


class QuietLog:
    """What a Kafka client calls `log(level, "%s [%s] %s", facility, client, message)` on; one per client."""

    def __init__(self, *, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.target = logging.getLogger("kafka")
        self.quiet_seconds = quiet_seconds
        self._lock = threading.Lock()  # librdkafka calls back from the thread that polls, and there may be several
        self._last: dict[tuple[Any, ...], float] = {}
        self._left_out: dict[tuple[Any, ...], int] = {}

    def log(self, level: int, message: str, *args: Any) -> None:
        key = (level, *args[:2])  # the facility (FAIL, ...) and the client's name, when librdkafka gives them
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.quiet_seconds:
                self._left_out[key] = self._left_out.get(key, 0) + 1
                left_out = None
            else:
                self._last[key] = now
                left_out = self._left_out.pop(key, 0)
        if left_out is None:  # a repeat: in the full log (LOG_LEVEL=DEBUG) only
            self.target.debug(message, *args)
            return
        if left_out:
            message, args = f"{message} (and %d more like it in %d s)", (*args, left_out, round(now - last))
        self.target.log(level, message, *args)
