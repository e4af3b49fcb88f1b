"""ExpiryBuckets: due order, and sweeps that keep evicted entries from piling up in buckets."""

from __future__ import annotations

from ingestion.store import expiry
from ingestion.store.expiry import ExpiryBuckets


class Entry:
    def __init__(self, name: str) -> None:
        self.name = name
        self.live = True


def names(entries) -> list[str]:
    return [entry.name for entry in entries]


def bucketed(buckets: ExpiryBuckets) -> list[str]:
    return sorted(entry.name for members in buckets.buckets.values() for entry in members)


def is_live(entry: Entry) -> bool:
    return entry.live


def evicted_in_one_bucket(count: int, evicted: int) -> ExpiryBuckets:
    """Return buckets with entries "0".."count-1" in hour 1, the first `evicted` of them evicted."""
    buckets = ExpiryBuckets(is_live)
    entries = [Entry(str(number)) for number in range(count)]
    for entry in entries:
        buckets.add(1, entry)
    for entry in entries[:evicted]:
        entry.live = False
        buckets.note_eviction()
    return buckets


def test_pop_due_in_hour_order():
    buckets = ExpiryBuckets(is_live)
    for hour, name in ((5, "e"), (3, "c"), (4, "d"), (3, "c2")):
        buckets.add(hour, Entry(name))

    assert names(buckets.pop_due(3)) == ["c", "c2"]
    assert buckets.entries == 2
    assert names(buckets.pop_due(10)) == ["d", "e"]
    assert buckets.entries == 0
    assert list(buckets.pop_due(10)) == []


def test_no_sweep_below_half_evicted(monkeypatch):
    monkeypatch.setattr(expiry, "MIN_SWEEP_EVICTIONS", 1)
    buckets = evicted_in_one_bucket(5, evicted=2)

    buckets.sweep_step()
    assert not buckets.sweeping
    assert buckets.entries == 5


def test_sweep_drops_evicted_entries(monkeypatch):
    monkeypatch.setattr(expiry, "MIN_SWEEP_EVICTIONS", 1)
    buckets = ExpiryBuckets(is_live)
    entries = [Entry(str(number)) for number in range(6)]
    for number, entry in enumerate(entries):
        buckets.add(number % 2, entry)
    for entry in entries[:3]:
        entry.live = False
        buckets.note_eviction()

    buckets.sweep_step()
    assert bucketed(buckets) == ["3", "4", "5"]
    assert buckets.entries == 3
    assert buckets.evictions == 0
    assert not buckets.sweeping
    assert names(buckets.pop_due(1)) == ["4", "3", "5"]


def test_sweep_steps_bounded(monkeypatch):
    monkeypatch.setattr(expiry, "MIN_SWEEP_EVICTIONS", 1)
    monkeypatch.setattr(expiry, "SWEEP_ITEMS", 2)
    buckets = evicted_in_one_bucket(5, evicted=3)
    calls = []
    buckets.is_live = lambda entry: calls.append(entry.name) or entry.live

    buckets.sweep_step()
    assert calls == ["0", "1"]
    assert buckets.sweeping
    assert buckets.entries == 5

    buckets.sweep_step()
    assert calls == ["0", "1", "2", "3"]
    buckets.sweep_step()
    assert not buckets.sweeping
    assert bucketed(buckets) == ["3", "4"]


def test_sweep_keeps_entries_added_between_steps(monkeypatch):
    monkeypatch.setattr(expiry, "MIN_SWEEP_EVICTIONS", 1)
    monkeypatch.setattr(expiry, "SWEEP_ITEMS", 2)
    buckets = evicted_in_one_bucket(4, evicted=2)

    buckets.sweep_step()
    buckets.add(1, Entry("late"))
    buckets.sweep_step()
    buckets.sweep_step()

    assert not buckets.sweeping
    assert bucketed(buckets) == ["2", "3", "late"]
    assert buckets.entries == 3


def test_sweep_leaves_bucket_that_came_due(monkeypatch):
    monkeypatch.setattr(expiry, "MIN_SWEEP_EVICTIONS", 1)
    monkeypatch.setattr(expiry, "SWEEP_ITEMS", 2)
    buckets = ExpiryBuckets(is_live)
    entries = [Entry(str(number)) for number in range(4)]
    for entry in entries[:3]:
        buckets.add(1, entry)
    buckets.add(2, entries[3])
    for entry in entries[:2]:
        entry.live = False
        buckets.note_eviction()

    buckets.sweep_step()
    assert names(buckets.pop_due(1)) == ["0", "1", "2"]
    buckets.sweep_step()
    buckets.sweep_step()

    assert not buckets.sweeping
    assert bucketed(buckets) == ["3"]
    assert buckets.entries == 1


def test_pop_due_resumes_after_early_stop():
    buckets = ExpiryBuckets(is_live)
    for hour, name in ((1, "a"), (1, "b"), (1, "c"), (2, "d"), (9, "z")):
        buckets.add(hour, Entry(name))

    yielded = []
    for entry in buckets.pop_due(5):
        yielded.append(entry.name)
        if len(yielded) == 2:
            break
    assert yielded == ["a", "b"]
    assert buckets.entries == 2

    assert names(buckets.pop_due(5)) == ["c", "d"]
    assert list(buckets.pop_due(5)) == []
    assert names(buckets.pop_due(9)) == ["z"]
