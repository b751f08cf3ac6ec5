"""Log lines about misbehaving clients, rate-limited: one line per bad client, at most ``limit``
lines per ``interval_s``, then one "suppressed K similar" line. A flood of broken or hostile
clients must not flood the log (2,000 tracebacks were 8.8 MB), yet a single one stays visible.

Also :func:`quiet_uvicorn_bad_frames`: uvicorn logs a traceback of its own for a text frame
that is not UTF-8, before the app ever sees it; that record becomes one rate-limited line too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("pbx_core.web.clients")

UVICORN_BAD_UTF8 = "Invalid UTF-8 sequence received from client."


class RateLimitedLog:
    """``warn(msg, *args)``: logged while under the budget of the current interval, else counted;
    the count is reported (one line) by the first call, or :meth:`flush`, after the interval."""

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        limit: int = 20,
        interval_s: float = 60.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.limit = limit
        self.interval_s = interval_s
        self.level = level
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self.suppressed = 0  # in the current window
        self.total = 0  # every call, logged or not (for tests and metrics)

    def warn(self, msg: str, *args: object) -> None:
        self.total += 1
        self.flush()
        if self._logged < self.limit:
            self._logged += 1
            self.logger.log(self.level, msg, *args)
        else:
            self.suppressed += 1

    def flush(self) -> None:
        """Start a new window if the current one is over, reporting what it suppressed."""
        now = self._clock()
        if now - self._window_start < self.interval_s:
            return
        if self.suppressed:
            self.logger.log(self.level, "... suppressed %d similar line(s) about bad websocket clients "
                            "in the last %.0f s", self.suppressed, now - self._window_start)
        self._window_start, self._logged, self.suppressed = now, 0, 0


BAD_CLIENTS = RateLimitedLog()  # one per process: every app and uvicorn's filter share the budget


class _BadFrameFilter(logging.Filter):
    """Turns uvicorn's traceback for a non-UTF-8 text frame into one rate-limited line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != UVICORN_BAD_UTF8:
            return True
        BAD_CLIENTS.warn("websocket client sent a text frame that is not UTF-8: closed (1007)")
        return False


def quiet_uvicorn_bad_frames() -> None:
    """Install the filter on uvicorn's error logger (once; idempotent)."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _BadFrameFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_BadFrameFilter())
