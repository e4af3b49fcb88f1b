"""RecordLog: eviction order, head drops, bisection, and views that a pinned log keeps valid."""

from __future__ import annotations

import pytest

from ingestion.model import Record
from ingestion.store import record_log
from ingestion.store.record_log import RecordLog


def record(seq: int) -> Record:
    return Record(install_event_id=f"install-{seq}", app_id="app", status="organic", install_time=float(seq), seq=seq)


def filled(count: int, first_seq: int = 1) -> RecordLog:
    log = RecordLog()
    for seq in range(first_seq, first_seq + count):
        log.append(record(seq))
    return log


def test_evicts_oldest_first():
    log = filled(3)

    assert log.evict_oldest(pinned=False).seq == 1
    assert log.evict_oldest(pinned=False).seq == 2
    assert len(log) == 1
    assert [item.seq for item in log.live()] == [3]


def test_evict_from_empty_log_raises():
    log = filled(1)
    log.evict_oldest(pinned=False)

    with pytest.raises(IndexError, match="empty record log"):
        log.evict_oldest(pinned=False)


def test_unpinned_eviction_clears_slot():
    log = filled(2)
    log.evict_oldest(pinned=False)

    assert log.items[0] is None


def test_head_dropped_past_half(monkeypatch):
    monkeypatch.setattr(record_log, "MIN_HEAD_DROP", 2)
    log = filled(6)
    for _ in range(3):
        log.evict_oldest(pinned=False)
    # Three of six slots cleared: not more than half yet.
    assert len(log.items) == 6

    log.evict_oldest(pinned=False)
    assert log.start == 0
    assert [item.seq for item in log.items] == [5, 6]


def test_pinned_log_keeps_positions(monkeypatch):
    monkeypatch.setattr(record_log, "MIN_HEAD_DROP", 2)
    log = filled(6)
    view = log.view()
    for _ in range(5):
        log.evict_oldest(pinned=True)

    assert len(log) == 1
    assert len(log.items) == 6
    assert [item.seq for item in view[:]] == [1, 2, 3, 4, 5, 6]


def test_view_ignores_records_appended_later():
    log = filled(3)
    view = log.view()
    log.append(record(4))

    assert len(view) == 3
    assert [item.seq for item in view[1:10]] == [2, 3]
    assert view[0].seq == 1
    assert view[-1].seq == 3


def test_view_starts_at_live_records():
    log = filled(4)
    log.evict_oldest(pinned=False)
    view = log.view()

    assert [item.seq for item in view[0:2]] == [2, 3]
    assert view[2].seq == 4
    with pytest.raises(IndexError, match="index 3 out of range for 3 records"):
        view[3]
    with pytest.raises(ValueError, match="step 1 only"):
        view[::2]


def test_release_clears_evicted_slots_in_steps():
    log = filled(10)
    view = log.view()
    for _ in range(4):
        log.evict_oldest(pinned=True)
    steps = view.release(step=3)

    next(steps)
    assert log.items[:4] == [None, None, None, log.items[3]]
    assert log.items[3].seq == 4
    # Evictions go on between steps, and the release clears them too.
    log.evict_oldest(pinned=True)
    assert list(steps) == [None]
    assert log.items[:5] == [None] * 5
    assert [item.seq for item in log.items[5:]] == [6, 7, 8, 9, 10]


def test_release_without_evictions_yields_nothing():
    log = filled(3)
    view = log.view()

    assert list(view.release(step=1)) == []
    assert [item.seq for item in log.live()] == [1, 2, 3]


def test_first_after_bisects_live_records():
    log = filled(5, first_seq=10)
    log.evict_oldest(pinned=False)

    assert log.first_after(0) == 1
    assert log.items[log.first_after(11)].seq == 12
    assert log.first_after(14) == len(log.items)
