"""Access-log lines, rate-limited per kind so a flood of bad requests cannot flood the logs.

Each kind of line (a server error, a rejected request, a batch with rejected
events, a sampled request) has its own token bucket: ``burst`` lines may go
out at once, then ``lines_per_second`` on average. Lines over the limit are
dropped and counted in ``access_log_lines_suppressed_total{kind}``, and the
next line of that kind carries ``suppressed_lines``, the number dropped since
the line before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from exporters.metrics import Counter, Registry

ACCESS_LOGGER_NAME = "unmogrowp.access"
KINDS = ("server_error", "client_error", "rejected_events", "sampled")
DEFAULT_LINES_PER_SECOND = 10.0
DEFAULT_BURST = 50


class TokenBucket:
    """Allow ``burst`` events at once and ``rate`` events per second on average."""

    __slots__ = ("rate", "burst", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got rate={rate!r}, burst={burst!r}")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def allow(self, now: float) -> bool:
        """Take one token if there is one, and return whether there was. ``now`` is ``time.monotonic()``."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class AccessLog:
    """Writes access-log lines through ``logging``, at most a set rate per kind.

    Call it from one thread (the event loop): the buckets take no lock.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        lines_per_second: float = DEFAULT_LINES_PER_SECOND,
        burst: int = DEFAULT_BURST,
        logger: logging.Logger | None = None,
    ) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER_NAME)
        self._buckets = {kind: TokenBucket(lines_per_second, burst) for kind in KINDS}
        self._suppressed_since_line = dict.fromkeys(KINDS, 0)
        self._suppressed = None
        if registry is not None:
            family = Counter(
                "access_log_lines_suppressed_total",
                "Access-log lines dropped by the per-kind rate limit.",
                ("kind",),
                registry=registry,
            )
            self._suppressed = {kind: family.labels(kind) for kind in KINDS}

    def emit(self, kind: str, level: int, message: str, fields: Mapping[str, Any]) -> bool:
        """Log one line of ``kind`` unless its rate limit is reached, and return whether it was logged."""
        if not self.logger.isEnabledFor(level):
            return False
        if not self._buckets[kind].allow(time.monotonic()):
            self._suppressed_since_line[kind] += 1
            if self._suppressed is not None:
                self._suppressed[kind].inc()
            return False
        extra = dict(fields)
        extra["kind"] = kind
        suppressed = self._suppressed_since_line[kind]
        if suppressed:
            extra["suppressed_lines"] = suppressed
            self._suppressed_since_line[kind] = 0
        self.logger.log(level, message, extra=extra)
        return True
