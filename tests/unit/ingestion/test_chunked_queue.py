"""The chunked queue behind the embedded store's arrival-order queues."""

from __future__ import annotations

import gc

import pytest

from ingestion.store.chunked import CHUNK_ITEMS, ChunkedQueue, filter_in_steps


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


def run_steps(steps, between=lambda: None):
    """Advance a filter_in_steps generator to its end, calling `between` after each step; return its queue and step count."""
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value, count
        count += 1
        between()


def test_filter_in_steps_keeps_accepted_items():
    queue = filled(10_000)
    queue.popleft()

    rebuilt, steps = run_steps(filter_in_steps(queue, lambda item: item % 2 == 0, lambda item: item, step_items=4000))

    assert steps == 3
    assert list(rebuilt) == list(range(2, 10_000, 2))
    assert rebuilt.chunks and all(type(chunk) is tuple for chunk in rebuilt.chunks)
    # The source queue is untouched.
    assert len(queue) == 9_999


def test_filter_in_steps_copies_items_appended_meanwhile():
    queue = filled(3 * CHUNK_ITEMS)
    appended = iter(range(3 * CHUNK_ITEMS, 10 * CHUNK_ITEMS))

    def append_and_take() -> None:
        # Between steps the store appends a batch and evicts from the head.
        for _ in range(CHUNK_ITEMS + 7):
            queue.tail.append(next(appended))
        queue.seal()
        queue.take(5)
        # And leaves a few items in the open tail.
        queue.tail.extend(next(appended) for _ in range(3))

    rebuilt, steps = run_steps(filter_in_steps(queue, lambda item: True, lambda item: item, step_items=CHUNK_ITEMS), append_and_take)

    assert steps == 3
    items = list(rebuilt)
    assert items == sorted(set(items))
    # Every item still queued is in the rebuilt queue, in the same order.
    assert list(queue) == items[-len(queue):]
    # The items taken meanwhile may remain at its head: the caller drops them by their state.
    assert items[0] == 0


def test_filter_in_steps_of_empty_queue():
    rebuilt, steps = run_steps(filter_in_steps(ChunkedQueue(), lambda item: True, lambda item: item, step_items=10))

    assert steps == 0
    assert list(rebuilt) == []
