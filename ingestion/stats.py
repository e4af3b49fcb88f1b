"""Per-app counts and recent processing-latency percentiles for ``/v1/stats``.

Latency is kept in a ring of one-minute histograms per app; the percentiles
cover the last ``window_seconds``, so a customer's figure reflects recent
service, not the average since start.
"""

from __future__ import annotations

import time
from bisect import bisect_left

from exporters.metrics import histogram_quantile

LATENCY_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000, float("inf"))
SLOT_SECONDS = 60


class AppStats:
    def __init__(self, slots: int) -> None:
        self.counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        self.slot_ids = [-1] * slots
        self.slot_buckets = [[0] * len(LATENCY_BUCKETS_MS) for _ in range(slots)]


class StatsBook:
    def __init__(self, window_seconds: int = 300) -> None:
        self.window_seconds = window_seconds
        self.slots = max(1, window_seconds // SLOT_SECONDS)
        self.apps: dict[str, AppStats] = {}

    def record(self, app_id: str, accepted: int, duplicates: int, rejected: int, latency_ms: float, now: float | None = None) -> None:
        stats = self.apps.get(app_id)
        if stats is None:
            stats = self.apps[app_id] = AppStats(self.slots)
        stats.counts["accepted"] += accepted
        stats.counts["duplicate"] += duplicates
        stats.counts["rejected"] += rejected
        events = accepted + duplicates + rejected
        if events == 0:
            return
        slot_id = int((now if now is not None else time.time()) // SLOT_SECONDS)
        position = slot_id % self.slots
        if stats.slot_ids[position] != slot_id:
            stats.slot_ids[position] = slot_id
            stats.slot_buckets[position] = [0] * len(LATENCY_BUCKETS_MS)
        stats.slot_buckets[position][bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += events

    def forget(self, app_id: str) -> None:
        self.apps.pop(app_id, None)

    def percentiles(self, app_id: str, now: float | None = None) -> dict[str, float | None]:
        stats = self.apps.get(app_id)
        result: dict[str, float | None] = {"p50": None, "p95": None, "p99": None}
        if stats is None:
            return result
        current = int((now if now is not None else time.time()) // SLOT_SECONDS)
        totals = [0] * len(LATENCY_BUCKETS_MS)
        for slot_id, buckets in zip(stats.slot_ids, stats.slot_buckets):
            if current - self.slots < slot_id <= current:
                for index, count in enumerate(buckets):
                    totals[index] += count
        cumulative = []
        running = 0
        for bound, count in zip(LATENCY_BUCKETS_MS, totals):
            running += count
            cumulative.append((bound, running))
        if running == 0:
            return result
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            result[name] = round(histogram_quantile(q, cumulative), 3)
        return result

    def document(self, app_ids, now: float | None = None) -> dict:
        return {
            app_id: {
                "events": dict(self.apps[app_id].counts) if app_id in self.apps else {"accepted": 0, "duplicate": 0, "rejected": 0},
                "latency_ms": self.percentiles(app_id, now),
            }
            for app_id in app_ids
        }
