"""A first-in, first-out queue kept in chunks, so that a consistent copy costs one step per chunk.

The embedded store keeps its arrival-order queues (duplicate-filter ids and their receipt
times, touches, installs) in this form. A compaction copies them while event requests wait.
Copying a deque of 5,000,000 ids took 0.09 s. A ``QueueView`` of the same queue copies only
about 1,000 to 1,200 chunk references and one short list.

New items go to ``tail``, a plain list that the hot path appends to directly. ``seal`` (called
once per batch) closes the tail once it has ``CHUNK_ITEMS`` items or more, as a tuple: a sealed
chunk is never changed again. The queues contain only objects the garbage collector does not
track (strings, floats and structs created with gc=False). The collector stops tracking a tuple
of such objects at its first collection, whereas it traverses a list at every collection of the
list's generation. With list chunks, each collection of the middle generation at a full store
traversed about 1,400 chunks and took 116 to 126 ms (`python -m loadtest.bench_stalls`), 25 ms
with tuples. ``popleft`` advances an offset into the oldest chunk and drops the chunk once it
is used up, so a view taken earlier still reads every item it had.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from itertools import chain, islice
from typing import Any

CHUNK_ITEMS = 4096


class ChunkedQueue:
    """A queue of sealed chunks, oldest first, and an open ``tail`` that takes new items."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self.chunks: deque[tuple] = deque()
        # Count of the items already taken from chunks[0].
        self.head = 0
        # Items in the sealed chunks, the taken ones included.
        self.sealed_items = 0
        self.tail: list = []
        iterator = iter(items)
        while chunk := list(islice(iterator, CHUNK_ITEMS)):
            self.tail = chunk
            self.seal()

    def __len__(self) -> int:
        return self.sealed_items - self.head + len(self.tail)

    def __bool__(self) -> bool:
        return bool(self.chunks) or bool(self.tail)

    def __iter__(self) -> Iterator[Any]:
        return _iterate(self.chunks, self.head, self.tail)

    def seal(self) -> None:
        """Close the tail once it has CHUNK_ITEMS items or more, and open a new one.

        A tail past twice that size (a restore or a replay appends without sealing) is cut
        into chunks of CHUNK_ITEMS, since a chunk keeps its taken items alive until the last
        one is taken.
        """
        if len(self.tail) >= CHUNK_ITEMS:
            self._close_tail()

    def first(self) -> Any:
        """Return the oldest item without taking it; raise IndexError when the queue is empty."""
        if not self.chunks:
            return self.tail[0]
        return self.chunks[0][self.head]

    def popleft(self) -> Any:
        """Take the oldest item; raise IndexError when the queue is empty."""
        if not self._open_first():
            raise IndexError("pop from an empty queue")
        item = self.chunks[0][self.head]
        self._advance(self.head + 1)
        return item

    def take(self, count: int) -> list:
        """Take the `count` oldest items, or all of them when there are fewer, oldest first."""
        oldest: list = []
        while count > 0 and self._open_first():
            first = self.chunks[0]
            end = min(len(first), self.head + count)
            oldest.extend(first[self.head : end])
            count -= end - self.head
            self._advance(end)
        return oldest

    def drop(self, count: int) -> None:
        """Discard the `count` oldest items, or all of them when there are fewer."""
        while count > 0 and self._open_first():
            first = self.chunks[0]
            end = min(len(first), self.head + count)
            count -= end - self.head
            self._advance(end)

    def _open_first(self) -> bool:
        """Seal the tail when no chunk is left, so chunks[0][head] is the oldest item.

        Return False when the queue is empty.
        """
        if self.chunks:
            return True
        if not self.tail:
            return False
        # Seal the tail whatever its size, so taking from it costs no list shift.
        self._close_tail()
        return True

    def _close_tail(self) -> None:
        """Move the tail into the sealed chunks, in CHUNK_ITEMS pieces when it is long."""
        tail = self.tail
        if len(tail) <= 2 * CHUNK_ITEMS:
            self.chunks.append(tuple(tail))
        else:
            self.chunks.extend(tuple(tail[start : start + CHUNK_ITEMS]) for start in range(0, len(tail), CHUNK_ITEMS))
        self.sealed_items += len(tail)
        self.tail = []

    def _advance(self, head: int) -> None:
        self.head = head
        if head == len(self.chunks[0]):
            self.chunks.popleft()
            self.sealed_items -= head
            self.head = 0

    def view(self) -> QueueView:
        """Return the items as they are now; later appends and pops do not change the view."""
        return QueueView(list(self.chunks), self.head, self.tail.copy())


class QueueView:
    """The items of a ``ChunkedQueue`` at one moment, read in slices."""

    def __init__(self, chunks: list[tuple], head: int, tail: list) -> None:
        self.chunks = chunks
        self.head = head
        self.tail = tail
        self._length = sum(map(len, chunks)) - head + len(tail)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Any]:
        return _iterate(self.chunks, self.head, self.tail)

    def slices(self, size: int) -> Iterator[list]:
        """Yield the items in lists of `size`, the last one shorter."""
        iterator = iter(self)
        while piece := list(islice(iterator, size)):
            yield piece

    def release(self) -> Iterator[None]:
        """Drop the chunk references one at a time, so no single step frees more than a chunk."""
        self.tail = []
        while self.chunks:
            self.chunks.pop()
            yield None


def filter_in_steps(
    queue: ChunkedQueue, keep: Callable[[Any], bool], seq_of: Callable[[Any], int], step_items: int
) -> Generator[None, None, ChunkedQueue]:
    """Build a new queue of the items of ``queue`` that ``keep`` accepts, reading ``step_items`` per step.

    The queue may take and lose items between steps. The steps read a view taken at the start,
    and the last step copies what was appended since, found by ``seq_of``, which must increase
    along the queue. Items removed from ``queue`` meanwhile may still be in the new queue, so
    the caller must treat them as ``keep`` would reject them when they reach its head. Returns
    the new queue as the generator's value.
    """
    view = queue.view()
    rebuilt = ChunkedQueue()
    last_seq = None
    for piece in view.slices(step_items):
        rebuilt.tail.extend(filter(keep, piece))
        rebuilt.seal()
        last_seq = seq_of(piece[-1])
        yield None
    if last_seq is None:
        # The view was empty, and no step ran in which the queue could take items.
        return rebuilt
    # Skip whole chunks that the view covered, then the covered part of the first chunk left.
    newer: list = []
    for position, chunk in enumerate(queue.chunks):
        if seq_of(chunk[-1]) <= last_seq:
            continue
        start = queue.head if position == 0 else 0
        newer.extend(item for item in islice(chunk, start, None) if seq_of(item) > last_seq)
    newer.extend(item for item in queue.tail if seq_of(item) > last_seq)
    rebuilt.tail.extend(filter(keep, newer))
    rebuilt.seal()
    return rebuilt


def _iterate(chunks: Iterable[tuple], head: int, tail: list) -> Iterator[Any]:
    chunk_iterator = iter(chunks)
    first = next(chunk_iterator, None)
    if first is None:
        return iter(tail)
    return chain(islice(first, head, None), chain.from_iterable(chunk_iterator), tail)
