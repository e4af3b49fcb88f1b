"""Entries grouped by the hour in which their window ends, for expiry by event time.

The embedded store removes an entry in two ways: by expiry, when the app's newest event time
passes the hour the entry was filed under, and by eviction, oldest first, when a count bound
is reached. An evicted entry is still in its bucket, and its window may end days later (8 days
for clicks and 91 for installs at the default windows). Without a cleanup, every entry evicted
meanwhile would stay referenced from its bucket, and the buckets would outgrow the count bound
with steady traffic.

So the store notes each eviction, and once evictions since the last sweep reach half the
bucketed entries, a sweep filters every bucket down to its live entries. It runs a step of
at most ``SWEEP_ITEMS`` entries per batch, so no request waits for a whole sweep. A sweep
starts only after evictions reach half the entries it will read (plus those added while it
runs), so its cost per eviction stays bounded.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Entry = TypeVar("Entry")

# Entries one sweep step reads: one step runs per applied batch.
SWEEP_ITEMS = 20_000
# No sweep for fewer evictions than this, so small stores never sweep.
MIN_SWEEP_EVICTIONS = 1024


class ExpiryBuckets(Generic[Entry]):
    """Entries by expiry hour, with a heap of the hours that have entries.

    ``is_live`` returns whether an entry still needs to expire, and a sweep drops the entries
    for which it returns false.
    """

    __slots__ = ("buckets", "hours", "entries", "evictions", "is_live", "_sweep", "_due", "_due_position")

    def __init__(self, is_live: Callable[[Entry], bool]) -> None:
        self.buckets: dict[int, list[Entry]] = {}
        self.hours: list[int] = []
        # Entries in all buckets, live or not.
        self.entries = 0
        # Evictions noted since the last sweep started.
        self.evictions = 0
        self.is_live = is_live
        self._sweep: Iterator[None] | None = None
        # A due bucket taken out of `buckets` and not yet read to its end by pop_due's caller.
        self._due: list[Entry] = []
        self._due_position = 0

    def add(self, hour: int, entry: Entry) -> None:
        members = self.buckets.get(hour)
        if members is None:
            members = self.buckets[hour] = []
            heapq.heappush(self.hours, hour)
        members.append(entry)
        self.entries += 1

    def pop_due(self, current_hour: int) -> Iterator[Entry]:
        """Remove the buckets of every hour up to ``current_hour`` and yield their entries, live or not.

        The caller may stop early: the next call yields the rest first. So an hour whose bucket
        contains many live entries can expire over several batches.
        """
        while True:
            if self._due_position < len(self._due):
                entry = self._due[self._due_position]
                self._due_position += 1
                yield entry
                continue
            if not self.hours or self.hours[0] > current_hour:
                self._due = []
                self._due_position = 0
                return
            self._due = self.buckets.pop(heapq.heappop(self.hours), [])
            self._due_position = 0
            self.entries -= len(self._due)

    def note_eviction(self) -> None:
        """Count one entry evicted before its expiry, which stays in its bucket until a sweep."""
        self.evictions += 1

    def sweep_step(self) -> None:
        """Run the next step of the current sweep, or start one when enough entries were evicted."""
        if self._sweep is None:
            if self.evictions < MIN_SWEEP_EVICTIONS or self.evictions * 2 < self.entries:
                return
            self.evictions = 0
            self._sweep = self._sweep_buckets()
        if next(self._sweep, StopIteration) is StopIteration:
            self._sweep = None

    @property
    def sweeping(self) -> bool:
        return self._sweep is not None

    def _sweep_buckets(self) -> Iterator[None]:
        """Replace each bucket by its live entries, yielding after each ``SWEEP_ITEMS`` entries read.

        Entries are appended to a bucket between steps, so the new list takes its place only
        once every entry of the old one is read, with no yield between that check and the
        replacement. A bucket that comes due meanwhile is left to ``pop_due``.
        """
        budget = SWEEP_ITEMS
        for hour in list(self.buckets):
            members = self.buckets.get(hour)
            live_members: list[Entry] = []
            position = 0
            while members is not None and self.buckets.get(hour) is members:
                if position >= len(members):
                    self.buckets[hour] = live_members
                    self.entries -= position - len(live_members)
                    break
                if budget <= 0:
                    yield None
                    budget = SWEEP_ITEMS
                    continue
                chunk = members[position : position + budget]
                position += len(chunk)
                budget -= len(chunk)
                live_members.extend(filter(self.is_live, chunk))
