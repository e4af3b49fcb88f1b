"""Journal compaction: segment switch, the forked snapshot, and starts after each crash point."""

from __future__ import annotations

import logging
import os
import shutil

import msgspec
import pytest

from ingestion.store.forking import memory_headroom_bytes
from ingestion.store.snapshot import Snapshot, read_snapshot
from ingestion.store.segments import LEGACY_NAME, list_segments, segment_path
from tests.unit.ingestion.helpers import T, Harness, event, open_store


def clicks(batch: int, count: int = 20) -> list[dict]:
    return [event("click", f"click-{batch}-{index}", T + index, gaid=f"g-{batch}-{index}") for index in range(count)]


async def small_segments(make_harness, *, fork_snapshots: bool = False) -> Harness:
    """Return a harness whose store compacts once a journal segment passes 2,000 bytes."""
    harness = await make_harness()
    harness.store.fork_snapshots = fork_snapshots
    harness.store.journal_max_bytes = 2_000
    return harness


def crash(harness: Harness) -> None:
    """Stop the journal thread as a killed process would: no snapshot, nothing more written."""
    harness.store.journal.close()
    harness.store.journal = None


async def reopen_after_crash(harness: Harness) -> Harness:
    crash(harness)
    store = await open_store(harness.store.data_dir)
    return Harness(store, store.apps[harness.settings.app_id].settings)


def snapshot_of(harness: Harness) -> Snapshot:
    return read_snapshot(harness.store.snapshot_path)


def snapshot_touch_ids(harness: Harness) -> set[str]:
    return {touch.event_id for app in snapshot_of(harness).apps for touch in app.touches}


@pytest.mark.parametrize("fork_snapshots", [True, False], ids=["forked", "in process"])
async def test_compaction_switches_segment(make_harness, fork_snapshots):
    harness = await small_segments(make_harness, fork_snapshots=fork_snapshots)
    store = harness.store
    first_segment = store.journal_path

    await harness.send(*clicks(0))
    await store.compaction_finished()

    assert store.compactions == 1
    assert store.journal_generation == 2
    assert not first_segment.exists()
    assert store.journal_path == segment_path(store.data_dir, 2)
    assert store.journal_path.stat().st_size == store.journal.bytes_written == 0
    assert snapshot_of(harness).journal_generation == 1
    assert len(snapshot_touch_ids(harness)) == 20


@pytest.mark.parametrize("fork_snapshots", [True, False], ids=["forked", "in process"])
async def test_snapshot_excludes_later_batches(make_harness, fork_snapshots):
    harness = await small_segments(make_harness, fork_snapshots=fork_snapshots)
    store = harness.store

    await harness.send(*clicks(0))
    # The state is captured; this batch goes to the new segment whether or not the snapshot is written yet.
    await harness.send(*clicks(1, count=5))
    await store.compaction_finished()

    touch_ids = snapshot_touch_ids(harness)
    assert "click-0-19" in touch_ids
    assert "click-1-0" not in touch_ids
    assert store.compactions == 1
    assert store.journal.bytes_written > 0


@pytest.mark.parametrize("fork_snapshots", [True, False], ids=["forked", "in process"])
async def test_crash_after_compaction_keeps_all(make_harness, fork_snapshots):
    harness = await small_segments(make_harness, fork_snapshots=fork_snapshots)
    await harness.send(*clicks(0))
    await harness.send(*clicks(1, count=5))
    await harness.store.compaction_finished()

    reopened = await reopen_after_crash(harness)
    try:
        resent = await reopened.send(event("click", "click-0-3", T), event("click", "click-1-4", T))
        assert resent.duplicate_flags == [True, True]
        assert reopened.store.entry_counts()["touch"] == 25
    finally:
        await reopened.store.stop()


@pytest.mark.parametrize(
    ("fork_snapshots", "message"),
    [(True, "snapshot process failed"), (False, "writing the snapshot failed")],
    ids=["forked", "in process"],
)
async def test_failed_snapshot_keeps_segments(make_harness, caplog, fork_snapshots, message):
    harness = await small_segments(make_harness, fork_snapshots=fork_snapshots)
    store = harness.store
    first_segment = store.journal_path
    # The child's temporary file is a folder, so its open() fails.
    store.snapshot_path.with_suffix(".msgpack.tmp").mkdir()

    with caplog.at_level(logging.ERROR, logger="ingestion.store.memory"):
        await harness.send(*clicks(0))
        await store.compaction_finished()

    assert store.compactions == 0
    assert store.compaction_failures == 1
    assert first_segment.exists()
    [failure] = [record for record in caplog.records if record.message.startswith(message)]
    assert failure.journal_generation == 1
    if fork_snapshots:
        assert "IsADirectoryError" in failure.error
    else:
        assert failure.exc_info[0] is IsADirectoryError

    store.snapshot_path.with_suffix(".msgpack.tmp").rmdir()
    await harness.send(*clicks(1, count=5))
    reopened = await reopen_after_crash(harness)
    try:
        assert reopened.store.entry_counts()["touch"] == 25
    finally:
        await reopened.store.stop()


async def test_start_skips_included_segment(make_harness, caplog):
    """A crash after a compaction renamed its snapshot into place but before it deleted the segment."""
    harness = await make_harness()
    store = harness.store
    await harness.send(*clicks(0))
    first_segment_copy = store.data_dir / "first-segment-copy"
    shutil.copyfile(store.journal_path, first_segment_copy)
    store.journal_max_bytes = 2_000
    await harness.send(*clicks(1, count=5))
    await store.compaction_finished()
    assert snapshot_of(harness).journal_generation == 1
    shutil.copyfile(first_segment_copy, segment_path(store.data_dir, 1))
    first_segment_copy.unlink()

    with caplog.at_level(logging.INFO, logger="ingestion.store.memory"):
        reopened = await reopen_after_crash(harness)
    try:
        [loaded] = [record for record in caplog.records if record.message == "store loaded"]
        assert loaded.journal_events_replayed == 0
        # Segments 1 (included) and 2 (empty) are deleted; the new process writes to 3.
        assert [generation for generation, _ in list_segments(reopened.store.data_dir)] == [3]
        assert reopened.store.entry_counts()["touch"] == 25
    finally:
        await reopened.store.stop()


async def test_legacy_journal_replayed(make_harness):
    """A data folder of a version with one journal.bin and snapshots without a generation."""
    harness = await make_harness()
    await harness.send(*clicks(0, count=3))
    await harness.store.stop()
    # Version 1 wrote the whole Snapshot as one msgpack document.
    legacy_snapshot = msgspec.to_builtins(snapshot_of(harness))
    del legacy_snapshot["journal_generation"]
    harness.store.snapshot_path.write_bytes(msgspec.msgpack.encode(legacy_snapshot))
    store = await open_store(harness.store.data_dir)
    reopened = Harness(store, store.apps[harness.settings.app_id].settings)
    await reopened.send(*clicks(1, count=4))
    crash(reopened)
    reopened.store.journal_path.rename(reopened.store.data_dir / LEGACY_NAME)

    store = await open_store(harness.store.data_dir)
    try:
        assert store.entry_counts()["touch"] == 7
        assert not (store.data_dir / LEGACY_NAME).exists()
    finally:
        await store.stop()


@pytest.mark.parametrize("fork_snapshots", [True, False], ids=["forked", "in process"])
async def test_segment_grows_to_snapshot_size(make_harness, fork_snapshots):
    harness = await small_segments(make_harness, fork_snapshots=fork_snapshots)
    store = harness.store
    await harness.send(*clicks(0, count=100))
    await store.compaction_finished()
    assert store.compactions == 1
    assert store.snapshot_bytes == store.snapshot_path.stat().st_size > 4_000

    largest_uncompacted = 0
    for batch in range(1, 40):
        await harness.send(*clicks(batch, count=5))
        await store.compaction_finished()
        if store.compactions == 2:
            break
        largest_uncompacted = store.journal.bytes_written
        assert largest_uncompacted <= store.snapshot_bytes

    # A segment past journal_max_bytes but not past the snapshot's size did not compact.
    assert store.compactions == 2
    assert largest_uncompacted > store.journal_max_bytes
    assert snapshot_of(harness).journal_generation == 2
    assert len(snapshot_touch_ids(harness)) == 100 + 5 * batch


async def test_low_memory_writes_in_process(make_harness, monkeypatch, caplog):
    # No real cgroup can be made tight enough here, so the test replaces the headroom reading.
    monkeypatch.setattr("ingestion.store.memory.memory_headroom_bytes", lambda: 1024)
    harness = await small_segments(make_harness, fork_snapshots=True)
    store = harness.store

    with caplog.at_level(logging.INFO, logger="ingestion.store.memory"):
        await harness.send(*clicks(0))
        await store.compaction_finished()

    assert store.compactions == 1
    assert snapshot_of(harness).journal_generation == 1
    [compacted] = [record for record in caplog.records if record.message == "journal compacted"]
    assert not hasattr(compacted, "child_pid")
    [warning] = [record for record in caplog.records if record.message.startswith("not enough free memory")]
    assert warning.headroom_bytes == 1024
    assert warning.needed_bytes > 1024


def test_headroom_from_cgroup_limit(tmp_path):
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")

    assert memory_headroom_bytes(cgroup=tmp_path, meminfo=tmp_path / "missing") == 600_000


def test_headroom_from_meminfo_without_limit(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       4096 kB\nMemAvailable:   2048 kB\n")

    assert memory_headroom_bytes(cgroup=tmp_path, meminfo=meminfo) == 2048 * 1024


def test_headroom_unknown(tmp_path):
    assert memory_headroom_bytes(cgroup=tmp_path, meminfo=tmp_path / "missing") is None


async def test_failed_capture_keeps_request_and_segments(make_harness, monkeypatch, caplog):
    harness = await small_segments(make_harness)
    store = harness.store
    first_segment = store.journal_path

    def failing_capture(generation: int) -> bytes:
        raise MemoryError("no memory to capture the snapshot")

    monkeypatch.setattr(store, "_capture", failing_capture)
    with caplog.at_level(logging.ERROR, logger="ingestion.store.memory"):
        outcome = await harness.send(*clicks(0))

    assert outcome.duplicate_flags == [False] * 20
    assert store.compaction_failures == 1
    assert first_segment.exists()
    [failure] = [record for record in caplog.records if record.message.startswith("journal compaction failed")]
    assert failure.exc_info[0] is MemoryError

    monkeypatch.undo()
    await harness.send(*clicks(1, count=5))
    reopened = await reopen_after_crash(harness)
    try:
        assert reopened.store.entry_counts()["touch"] == 25
    finally:
        await reopened.store.stop()
