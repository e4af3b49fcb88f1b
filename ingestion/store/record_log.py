"""One app's attribution records in arrival order, the oldest evicted first.

The records live in one list. An eviction clears the oldest slot and moves the start past it,
and the list drops its cleared head once that is more than half of it, so an eviction costs a
constant time on average. Records arrive in seq order, so a page of ``GET /v1/attributions``
is found by bisecting the live part of the list.

A compaction's capture takes a ``RecordView``: the positions of the live records, not a copy
of them. At the store's default bounds a copy took 8 MB of fresh pages, 32 to 35 ms while event
requests waited (`python -m loadtest.bench_snapshot`). While a capture is open, the log neither
clears evicted slots nor drops its head. So the view's positions keep pointing at the records
it captured, the evicted ones included, until the view's ``release`` clears them step by step.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from operator import attrgetter

from ingestion.model import Record

# Cleared slots dropped from the head of the list no sooner than this, so small logs never move.
MIN_HEAD_DROP = 1024

_seq = attrgetter("seq")


class RecordLog:
    """An app's records, oldest first, with amortized constant-time append and eviction."""

    __slots__ = ("items", "start")

    def __init__(self) -> None:
        # Slots before `start` are cleared (None) or, while a capture is open, evicted records
        # that a RecordView still reads.
        self.items: list[Record | None] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.items) - self.start

    def append(self, record: Record) -> None:
        self.items.append(record)

    def evict_oldest(self, pinned: bool) -> Record:
        """Remove the oldest record and return it; raise IndexError when the log is empty.

        ``pinned`` is true while a capture's view is open: the slot then stays as it is and
        the head is not dropped, so that positions do not move under the view.
        """
        if self.start >= len(self.items):
            raise IndexError("evict_oldest from an empty record log")
        record = self.items[self.start]
        if not pinned:
            self.items[self.start] = None
        self.start += 1
        if not pinned and self.start > MIN_HEAD_DROP and self.start * 2 > len(self.items):
            del self.items[: self.start]
            self.start = 0
        return record  # type: ignore[return-value]

    def live(self) -> list[Record]:
        """Return a copy of the live records, oldest first."""
        return self.items[self.start :]  # type: ignore[return-value]

    def first_after(self, seq: int) -> int:
        """Return the position in ``items`` of the first live record whose seq is above ``seq``."""
        return bisect_right(self.items, seq, lo=self.start, key=_seq)

    def view(self) -> "RecordView":
        """Return a view of the records live now; the caller must pin the log until its release ends."""
        return RecordView(self, self.start, len(self.items))


class RecordView:
    """The live records of a ``RecordLog`` at one moment, read in place.

    It reads like a list of the records for ``len``, indexing and slicing. The log must stay
    pinned (see ``RecordLog.evict_oldest``) from the view's creation to the end of ``release``.
    """

    __slots__ = ("log", "start", "stop")

    def __init__(self, log: RecordLog, start: int, stop: int) -> None:
        self.log = log
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):
        if isinstance(index, slice):
            first, last, step = index.indices(len(self))
            if step != 1:
                raise ValueError(f"a RecordView slices with step 1 only, got {step}")
            return self.log.items[self.start + first : self.start + max(first, last)]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"RecordView index {index} out of range for {len(self)} records")
        return self.log.items[self.start + index]

    def release(self, step: int) -> Iterator[None]:
        """Clear the log's slots of records evicted since the capture, ``step`` slots per item yielded.

        The view keeps no references of its own. The slots of records evicted while the capture was
        open still reference the records, and clearing them all at once would free up to hundreds of
        thousands of objects in one go. Events go on evicting between steps, so each step reads the
        log's start again. Slots evicted after the last step and before the log is unpinned keep
        their records until the log drops its head.
        """
        items = self.log.items
        position = self.start
        while position < self.log.start:
            end = min(position + step, self.log.start)
            items[position:end] = [None] * (end - position)
            position = end
            yield None
