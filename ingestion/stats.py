"""Per-app counts and recent processing-latency percentiles for ``/v1/stats``.

Latency is kept in a ring of one-minute histograms per app; the percentiles
cover the last ``window_seconds``, so a customer's figure reflects recent
service, not the average since start. With several workers, each keeps its
own book, and ``/v1/stats`` adds the books of the others (see ``stats_sharing``).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator

import msgspec

from exporters.metrics import histogram_quantile

LATENCY_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000, float("inf"))
SLOT_SECONDS = 60
STATUSES = ("accepted", "duplicate", "rejected")


class AppStats(msgspec.Struct):
    """One app's event counts since start, and its latency histograms by minute, oldest overwritten."""

    counts: dict[str, int]
    # The minute (epoch seconds // 60) each ring position holds, -1 for none yet.
    slot_ids: list[int]
    # Events per latency bucket, one list of len(LATENCY_BUCKETS_MS) per ring position.
    slot_buckets: list[list[int]]
    # The app's registration time, so the figures of a deleted app are not added to those of a
    # new app registered later with the same id.
    registered_at: float = 0.0

    @classmethod
    def empty(cls, slots: int, registered_at: float) -> AppStats:
        return cls(
            dict.fromkeys(STATUSES, 0),
            [-1] * slots,
            [[0] * len(LATENCY_BUCKETS_MS) for _ in range(slots)],
            registered_at,
        )


# Every app's figures in one book, as saved for the other workers to read.
Books = dict[str, AppStats]


class StatsBook:
    def __init__(self, window_seconds: int = 300) -> None:
        self.window_seconds = window_seconds
        self.slots = max(1, window_seconds // SLOT_SECONDS)
        self.apps: Books = {}
        # Bumped by every change, so a saver can skip a book that has not changed.
        self.version = 0

    def record(self, app_id: str, registered_at: float, accepted: int, duplicates: int, rejected: int,
               latency_ms: float, now: float | None = None) -> None:
        """Count one request's events of an app registered at `registered_at`, and its latency."""
        stats = self.apps.get(app_id)
        if stats is None or stats.registered_at != registered_at:
            stats = self.apps[app_id] = AppStats.empty(self.slots, registered_at)
        self.version += 1
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
        if self.apps.pop(app_id, None) is not None:
            self.version += 1

    def _entries(self, app_id: str, registered_at: float, peers: Iterable[Books]) -> Iterator[AppStats]:
        """Yield the app's figures from this book and the peers', leaving out an earlier app of the same id."""
        for book in (self.apps, *peers):
            stats = book.get(app_id)
            if stats is not None and stats.registered_at == registered_at:
                yield stats

    def percentiles(self, app_id: str, registered_at: float, now: float | None = None,
                    peers: Iterable[Books] = ()) -> dict[str, float | None]:
        """Return p50, p95 and p99 of the app's latency over the window, this book's and the peers' together."""
        result: dict[str, float | None] = {"p50": None, "p95": None, "p99": None}
        current = int((now if now is not None else time.time()) // SLOT_SECONDS)
        totals = [0] * len(LATENCY_BUCKETS_MS)
        for stats in self._entries(app_id, registered_at, peers):
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

    def counts(self, app_id: str, registered_at: float, peers: Iterable[Books] = ()) -> dict[str, int]:
        """Return the app's event counts by status, this book's and the peers' added up."""
        totals = dict.fromkeys(STATUSES, 0)
        for stats in self._entries(app_id, registered_at, peers):
            for status in STATUSES:
                totals[status] += stats.counts.get(status, 0)
        return totals

    def document(self, apps: Iterable[tuple[str, float]], now: float | None = None, peers: Iterable[Books] = ()) -> dict:
        """Return counts and percentiles of each (app id, registration time) pair, keyed by app id."""
        peers = list(peers)
        return {
            app_id: {
                "events": self.counts(app_id, registered_at, peers),
                "latency_ms": self.percentiles(app_id, registered_at, now, peers),
            }
            for app_id, registered_at in apps
        }
