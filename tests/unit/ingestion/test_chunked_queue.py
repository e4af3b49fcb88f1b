"""The chunked queue behind the embedded store's arrival-order queues."""

from __future__ import annotations

import gc

import pytest

from ingestion.store.chunked import CHUNK_ITEMS, ChunkedQueue


def filled(count: int) -> ChunkedQueue:
    """A queue of 0..count-1, appended the way the store appends: to the tail, sealed per batch of 1,000."""
    queue = ChunkedQueue()
    for item in range(count):
        queue.tail.append(item)
        if item % 1000 == 999:
            queue.seal()
    return queue


def test_items_leave_in_arrival_order():
    queue = filled(3 * CHUNK_ITEMS + 5)

    first = [queue.popleft() for _ in range(10)]
    next_block = queue.take(CHUNK_ITEMS)
    queue.drop(CHUNK_ITEMS)

    assert first == list(range(10))
    assert next_block == list(range(10, 10 + CHUNK_ITEMS))
    assert queue.first() == 10 + 2 * CHUNK_ITEMS
    assert list(queue) == list(range(10 + 2 * CHUNK_ITEMS, 3 * CHUNK_ITEMS + 5))
    assert len(queue) == CHUNK_ITEMS - 5


def test_take_past_the_end_empties_the_queue():
    queue = filled(CHUNK_ITEMS + 7)

    assert queue.take(10 * CHUNK_ITEMS) == list(range(CHUNK_ITEMS + 7))
    assert len(queue) == 0
    assert not queue
    assert queue.take(1) == []
    with pytest.raises(IndexError):
        queue.popleft()
    with pytest.raises(IndexError):
        queue.first()


def test_view_keeps_items_taken_later():
    queue = filled(2 * CHUNK_ITEMS + 300)
    queue.drop(100)

    view = queue.view()
    queue.drop(CHUNK_ITEMS + 50)
    for item in range(5):
        queue.tail.append(-item)
    queue.seal()

    expected = list(range(100, 2 * CHUNK_ITEMS + 300))
    assert len(view) == len(expected)
    assert list(view) == expected
    assert [len(piece) for piece in view.slices(CHUNK_ITEMS)] == [CHUNK_ITEMS, CHUNK_ITEMS, 200]


def test_long_tail_is_cut_into_chunks():
    queue = ChunkedQueue()
    queue.tail.extend(range(5 * CHUNK_ITEMS + 1))

    queue.seal()

    assert [len(chunk) for chunk in queue.chunks] == [CHUNK_ITEMS] * 5 + [1]
    assert queue.tail == []
    assert list(queue) == list(range(5 * CHUNK_ITEMS + 1))


def test_sealed_chunks_leave_the_collector():
    # The store's queues contain strings, floats and gc=False structs. A collection of the middle
    # generation traversed every sealed chunk while the chunks were lists.
    queue = ChunkedQueue()
    queue.tail.extend(f"id-{n}" for n in range(2 * CHUNK_ITEMS + 1))
    queue.seal()
    queue.tail.append("open")

    gc.collect()

    assert len(queue.chunks) == 3
    assert not any(gc.is_tracked(chunk) for chunk in queue.chunks)
    assert list(queue) == [f"id-{n}" for n in range(2 * CHUNK_ITEMS + 1)] + ["open"]


def test_queue_built_from_items_keeps_order():
    queue = ChunkedQueue(range(2 * CHUNK_ITEMS + 3))

    assert [len(chunk) for chunk in queue.chunks] == [CHUNK_ITEMS, CHUNK_ITEMS]
    assert queue.tail == [2 * CHUNK_ITEMS, 2 * CHUNK_ITEMS + 1, 2 * CHUNK_ITEMS + 2]
    assert queue.take(2 * CHUNK_ITEMS + 3) == list(range(2 * CHUNK_ITEMS + 3))


def test_released_view_keeps_no_chunks():
    queue = filled(3 * CHUNK_ITEMS)
    view = queue.view()
    chunk_count = len(view.chunks)

    steps = list(view.release())

    assert chunk_count >= 2
    assert len(steps) == chunk_count
    assert view.chunks == []
    assert len(queue) == 3 * CHUNK_ITEMS
