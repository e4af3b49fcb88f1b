"""Per-app event rate limits (token buckets), for HTTP 429 with Retry-After."""

from __future__ import annotations

import math
import time


class TokenBucket:
    """Allows ``rate`` events per second on average, bursts up to one second's worth."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.updated = time.monotonic()

    def take(self, count: int, now: float | None = None) -> float:
        """Take ``count`` tokens; return 0, or the seconds to wait when there are too few."""
        now = time.monotonic() if now is None else now
        self.tokens = min(float(self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        # A batch larger than one second's worth passes when the bucket is full
        # and leaves it in debt, so large batches are slowed, never refused forever.
        needed = min(count, self.rate)
        if needed <= self.tokens:
            self.tokens -= count
            return 0.0
        return max(1.0, math.ceil((needed - self.tokens) / self.rate))


class RateLimits:
    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}

    def wait_seconds(self, app_id: str, rate: int | None, count: int) -> float:
        if rate is None:
            self.buckets.pop(app_id, None)
            return 0.0
        bucket = self.buckets.get(app_id)
        if bucket is None or bucket.rate != rate:
            bucket = self.buckets[app_id] = TokenBucket(rate)
        return bucket.take(count)
