"""The snapshot file: frames, what a capture keeps when the state moves on, and damaged files."""

from __future__ import annotations

import asyncio
import gc

import msgspec
import pytest

from ingestion.model import AppSettings, Record
from ingestion.store import snapshot
from ingestion.store.memory import MemoryLimits
from ingestion.store.shards import shard_items
from ingestion.store.snapshot import MAGIC, SnapshotError, read_snapshot, write_atomically
from tests.unit.ingestion.helpers import T, Harness, event, open_store, register


def funnel(number: int) -> list[dict]:
    """A click and, 60 s later, the install it earns, on a device of its own."""
    device = f"gaid-{number}"
    return [
        event("click", f"click-{number}", T + number, gaid=device),
        event("install", f"install-{number}", T + number + 60, gaid=device),
    ]


async def reopen(harness: Harness) -> Harness:
    await harness.store.stop()
    store = await open_store(harness.store.data_dir)
    return Harness(store, store.apps[harness.settings.app_id].settings)


async def test_round_trip_across_many_frames(make_harness, monkeypatch):
    monkeypatch.setattr(snapshot, "FRAME_ITEMS", 3)
    harness = await make_harness()
    for number in range(10):
        await harness.send(*funnel(number))
    before = [await harness.record(f"install-{number}") for number in range(10)]

    reopened = await reopen(harness)
    try:
        assert reopened.store.snapshot_path.read_bytes().startswith(MAGIC)
        assert [await reopened.record(f"install-{number}") for number in range(10)] == before
        assert reopened.store.entry_counts() == {"touch": 10, "install": 10, "record": 10, "dedup": 20}
        resent = await reopened.send(*funnel(4))
        assert resent.duplicate_flags == [True, True]
        # A reinstall on device 7 finds the restored install and keeps its attribution.
        outcome = await reopened.send(event("install", "install-again", T + 3600, gaid="gaid-7"))
        [record] = outcome.records
        assert (record.status, record.touch_event_id) == ("reinstall", "click-7")
    finally:
        await reopened.store.stop()


async def test_install_shares_loaded_record(make_harness, monkeypatch):
    monkeypatch.setattr(snapshot, "FRAME_ITEMS", 3)
    # Two records of four are evicted, so two installs must carry their records in full.
    harness = await make_harness(limits=MemoryLimits(max_records=2))
    for number in range(4):
        await harness.send(*funnel(number))

    reopened = await reopen(harness)
    try:
        state = reopened.store.states[reopened.settings.app_id]
        records = state.live_records()
        assert [record.install_event_id for record in records] == ["install-2", "install-3"]
        indexed = {record.install_event_id: record for _key, record in shard_items(state.installs)}
        assert sorted(indexed) == ["install-0", "install-1", "install-2", "install-3"]
        assert all(indexed[record.install_event_id] is record for record in records)
        # The installs whose records had left the record list still attribute reinstalls.
        outcome = await reopened.send(event("install", "install-again", T + 3600, gaid="gaid-0"))
        [record] = outcome.records
        assert (record.status, record.touch_event_id) == ("reinstall", "click-0")
    finally:
        await reopened.store.stop()


def write_frames(path, magic: bytes, frames: list) -> None:
    encoder = msgspec.msgpack.Encoder()
    payloads = [encoder.encode(frame) for frame in [*frames, snapshot.EndFrame(len(frames))]]
    path.write_bytes(magic + b"".join(snapshot._LENGTH.pack(len(payload)) + payload for payload in payloads))


def sample_record(install_event_id: str, seq: int) -> Record:
    return Record(install_event_id=install_event_id, app_id="acme.android", status="organic",
                  install_time=T, seq=seq)


def test_version_2_file_is_read(tmp_path):
    path = tmp_path / "snapshot.msgpack"
    header = snapshot.Header(2, 7, 3, [snapshot.AppHeader("acme.android", 1, T, [])])
    write_frames(path, snapshot.MAGIC_VERSION_2, [
        header,
        snapshot.InstallFrame([0], [(("gaid:one",), sample_record("install-1", 5))]),
        snapshot.RecordFrame(0, [sample_record("install-1", 5)]),
    ])

    loaded = read_snapshot(path)
    [app] = loaded.apps
    assert (loaded.version, loaded.seq, loaded.journal_generation) == (2, 7, 3)
    assert app.installs == [(("gaid:one",), sample_record("install-1", 5))]
    assert app.records == [sample_record("install-1", 5)]


def as_version_3(path) -> None:
    """Rewrite a snapshot file as version 3 wrote it: each duplicate-filter id after its app's code."""
    frames = list(snapshot._read_frames(path, memoryview(path.read_bytes())[len(MAGIC) :]))
    rewritten = []
    for frame in frames[:-1]:
        if isinstance(frame, snapshot.Header):
            frame = msgspec.structs.replace(frame, version=3)
        elif isinstance(frame, snapshot.SeenFrame):
            keys = [f"{code}{snapshot.KEY_SEPARATOR}{event_id}" for code, event_id in zip(frame.codes, frame.ids)]
            frame = snapshot.SeenFrame(keys, frame.times)
        rewritten.append(frame)
    write_frames(path, snapshot.MAGIC_VERSION_3, rewritten)


async def test_version_3_duplicate_filter_is_read(tmp_path):
    store = await open_store(tmp_path)
    first = AppSettings(app_id="first.app", platform="android")
    second = AppSettings(app_id="second.app", platform="android")
    await register(store, first)
    await register(store, second)
    await Harness(store, first).send(event("session", "shared-id", T), event("session", "first-only", T))
    await Harness(store, second).send(event("session", "second-only", T))
    await store.stop()
    as_version_3(store.snapshot_path)
    assert read_snapshot(store.snapshot_path).seen[0][0].endswith(f"{snapshot.KEY_SEPARATOR}shared-id")

    store = await open_store(tmp_path)
    try:
        resent = await Harness(store, first).send(event("session", "shared-id", T), event("session", "second-only", T))
        assert resent.duplicate_flags == [True, False]
        resent = await Harness(store, second).send(event("session", "second-only", T), event("session", "shared-id", T))
        assert resent.duplicate_flags == [True, False]
    finally:
        await store.stop()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (snapshot.SeenFrame(["one"], [T]), "duplicate-filter frame unlike those of version 4"),
        (snapshot.SeenFrame(["one", "two"], [T, T], [1]), "duplicate-filter frame unlike those of version 4"),
    ],
    ids=["no codes", "codes short"],
)
def test_damaged_duplicate_filter_frame_named(tmp_path, frame, message):
    path = tmp_path / "snapshot.msgpack"
    header = snapshot.Header(4, 7, 3, [snapshot.AppHeader("acme.android", 1, T, [])])
    write_frames(path, MAGIC, [header, frame])

    with pytest.raises(SnapshotError, match=message) as raised:
        read_snapshot(path)
    assert str(path) in str(raised.value)


def test_version_3_key_without_code_named(tmp_path):
    path = tmp_path / "snapshot.msgpack"
    header = snapshot.Header(3, 7, 3, [snapshot.AppHeader("acme.android", 1, T, [])])
    write_frames(path, snapshot.MAGIC_VERSION_3, [header, snapshot.SeenFrame(["no-code"], [T])])

    with pytest.raises(SnapshotError, match="'no-code' does not start with an app code"):
        list(read_snapshot(path).seen_entries())


def test_dangling_record_seq_named(tmp_path):
    path = tmp_path / "snapshot.msgpack"
    header = snapshot.Header(3, 7, 3, [snapshot.AppHeader("acme.android", 1, T, [])])
    write_frames(path, MAGIC, [
        header,
        snapshot.RecordFrame(0, [sample_record("install-1", 5)]),
        snapshot.InstallRefFrame([0, 0], [("gaid:one",), ("gaid:two",)], [5, 6]),
    ])

    with pytest.raises(SnapshotError, match="names record seq 6 of app 'acme.android'") as raised:
        read_snapshot(path)
    assert str(path) in str(raised.value)


async def test_capture_keeps_state_that_later_batches_evict(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_touches=2, max_installs=2))
    store = harness.store
    await harness.send(*funnel(0))
    await harness.send(*funnel(1))
    # Opened as a compaction opens it, so the store records the touches it removes.
    capture = store.open_capture = store._capture(generation=1)
    # These evict the captured touches and installs; the capture must still hold them, alive.
    await harness.send(*funnel(2))
    await harness.send(*funnel(3))
    store.open_capture = None
    assert not any(entry.touch.alive for entry in capture.touches)

    path = store.data_dir / "captured.msgpack"
    write_atomically(path, capture.frames())
    [app] = read_snapshot(path).apps
    assert [touch.event_id for touch in app.touches] == ["click-0", "click-1"]
    assert all(touch.alive for touch in app.touches)
    assert [record.install_event_id for _keys, record in app.installs] == ["install-0", "install-1"]
    assert [record.install_event_id for record in app.records] == ["install-0", "install-1"]


async def test_requests_go_on_while_the_snapshot_is_written(make_harness):
    harness = await make_harness()
    store = harness.store
    store.journal_max_bytes = 2_000
    await harness.send(*[event("click", f"click-{number}", T, gaid=f"g-{number}") for number in range(20)])

    # The triggering request has its response, and the gate is open while the snapshot is still being written.
    assert store.compacting
    outcome = await harness.send(*funnel(100))
    assert outcome.duplicate_flags == [False, False]
    await store.compaction_finished()
    assert store.compactions == 1
    # The objects frozen out of the collector during the compaction are back in it.
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-3], "ends inside a frame"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "end frame counts"),
        # 0xc1 is the one byte msgpack never uses; here it replaces the header frame's first byte.
        (lambda data: data[: len(MAGIC) + 4] + b"\xc1" + data[len(MAGIC) + 5 :], "damaged frame"),
    ],
    ids=["cut short", "frame count", "bad frame"],
)
async def test_damaged_snapshot_is_named(make_harness, damage, message):
    harness = await make_harness()
    await harness.send(*funnel(0))
    await harness.store.stop()
    path = harness.store.snapshot_path
    path.write_bytes(damage(path.read_bytes()))

    with pytest.raises(SnapshotError, match=message) as raised:
        read_snapshot(path)
    assert str(path) in str(raised.value)


async def test_expired_before_capture_left_out(make_harness):
    harness = await make_harness(
        reinstall_window_s=60, click_window_s=60, fingerprint_window_s=60, limits=MemoryLimits(late_arrival_s=0)
    )
    # An impression keeps its day-long window, so the queue behind it is not trimmed.
    await harness.send(event("impression", "impression", T, gaid="elsewhere"))
    await harness.send(*funnel(0))
    # Two hours later the windows of the first click and install have passed. Both stay queued
    # for eviction, the install's device keys are dropped, and its record stays.
    await harness.send(*funnel(7200))
    capture = harness.store._capture(generation=1)
    assert [entry.touch.event_id for entry in capture.touches] == ["impression", "click-0", "click-7200"]

    path = harness.store.data_dir / "captured.msgpack"
    write_atomically(path, capture.frames())
    [app] = read_snapshot(path).apps
    assert [touch.event_id for touch in app.touches] == ["impression", "click-7200"]
    assert [record.install_event_id for _keys, record in app.installs] == ["install-7200"]
    assert [record.install_event_id for record in app.records] == ["install-0", "install-7200"]


async def test_writer_yields_in_proportion(tmp_path, monkeypatch):
    """After each chunk the writer sleeps yield_ratio times as long as the chunk took to build."""
    readings = iter(float(second) for second in range(100))
    monkeypatch.setattr(snapshot, "perf_counter", lambda: next(readings))
    pauses = []

    async def record_sleep(seconds):
        pauses.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", record_sleep)
    path = tmp_path / "snapshot.msgpack"

    await snapshot.write_atomically_between_requests(path, [b"one", b"two", b"three"], lambda: 4.0)

    # The fake clock moves one second between the readings around each chunk.
    assert pauses == [4.0, 4.0, 4.0]
    assert path.read_bytes() == b"onetwothree"


async def test_install_superseded_under_every_key_left_out(make_harness):
    harness = await make_harness()
    store = harness.store
    # Each later send is an earlier install on a shared device key, so it takes that key over.
    await harness.send(event("install", "install-a", T + 100, gaid="g1", android_id="a1"))
    await harness.send(event("install", "install-b", T, gaid="g1"))
    await harness.send(event("install", "install-c", T + 100, gaid="g2"))
    await harness.send(event("install", "install-d", T, gaid="g2"))

    path = store.data_dir / "captured.msgpack"
    write_atomically(path, store._capture(generation=1).frames())
    gc.unfreeze()
    [app] = read_snapshot(path).apps
    # install-a keeps android_id:a1, so it stays; install-c lost its only key to install-d.
    assert [(keys, record.install_event_id) for keys, record in app.installs] == [
        (("gaid:g1", "android_id:a1"), "install-a"),
        (("gaid:g1",), "install-b"),
        (("gaid:g2",), "install-d"),
    ]


async def test_capture_keeps_install_whose_key_moves_on(make_harness):
    harness = await make_harness()
    store = harness.store
    await harness.send(event("install", "install-a", T + 100, gaid="g1"))
    capture = store.open_capture = store._capture(generation=1)
    # An earlier install on the same device arrives after the capture and takes gaid:g1 over.
    await harness.send(event("install", "install-b", T, gaid="g1"))
    store.open_capture = None
    assert store.states[harness.settings.app_id].first_install(("gaid:g1",)).install_event_id == "install-b"

    path = store.data_dir / "captured.msgpack"
    write_atomically(path, capture.frames())
    gc.unfreeze()
    [app] = read_snapshot(path).apps
    assert [(keys, record.install_event_id) for keys, record in app.installs] == [(("gaid:g1",), "install-a")]


async def test_capture_survives_evictions_between_chunks(make_harness, monkeypatch):
    # One item per frame, step and catch-up, so every removal lands between two chunks.
    for name in ("FRAME_ITEMS", "INSTALL_STEP_ITEMS", "CATCH_UP_ITEMS", "RELEASE_ITEMS"):
        monkeypatch.setattr(snapshot, name, 1)
    harness = await make_harness(limits=MemoryLimits(max_touches=4, max_installs=4, max_records=4))
    store = harness.store
    for number in range(4):
        await harness.send(*funnel(number))
    capture = store.open_capture = store._capture(generation=1)
    chunks = []
    sent = 4
    for chunk in capture.frames():
        chunks.append(chunk)
        # Each funnel evicts the oldest click, install and record.
        await harness.send(*funnel(sent))
        sent += 1
    store.open_capture = None
    gc.unfreeze()
    assert sent > 8

    path = store.data_dir / "captured.msgpack"
    path.write_bytes(b"".join(chunks))
    [app] = read_snapshot(path).apps
    assert [touch.event_id for touch in app.touches] == ["click-0", "click-1", "click-2", "click-3"]
    assert all(touch.alive for touch in app.touches)
    assert [record.install_event_id for _keys, record in app.installs] == [f"install-{n}" for n in range(4)]
    assert [record.install_event_id for record in app.records] == [f"install-{n}" for n in range(4)]
    # The writer read past the evicted entries, so the store stopped listing them.
    assert capture.touch_frontier > 0
    assert capture.install_frontier > 0


def test_catch_up_ends_while_log_grows(monkeypatch):
    monkeypatch.setattr(snapshot, "CATCH_UP_ITEMS", 2)
    log = list(range(5))
    into: set[int] = set()
    steps = snapshot._catch_up(log, 0, into, lambda item: item)
    turns = 0
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            done = finished.value
            break
        # The store appends faster than a turn reads.
        log.extend(range(100 + 3 * turns, 103 + 3 * turns))
        turns += 1

    assert turns == 3
    assert done == len(log) == 14
    assert into == set(log)


async def test_restore_queues_installs_and_records_in_arrival_order(make_harness):
    harness = await make_harness()
    other = AppSettings(app_id="other.android", platform="android")
    await register(harness.store, other)
    for number in range(3):
        await harness.send(*funnel(number))
        await harness.send(*funnel(10 + number), settings=other)

    reopened = await reopen(harness)
    try:
        store = reopened.store
        codes = [store.states[app_id].code for app_id in (harness.settings.app_id, "other.android")]
        # Both apps' installs and records come back interleaved as they arrived, not app by app.
        assert [entry.code for entry in store.install_order] == codes * 3
        assert [state.code for state in store.record_order] == codes * 3
        seqs = [entry.record.seq for entry in store.install_order]
        assert seqs == sorted(seqs)
    finally:
        await reopened.store.stop()


async def test_store_lists_only_captured_removals(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_touches=4, max_installs=4, max_records=4))
    store = harness.store
    for number in range(4):
        await harness.send(*funnel(number))
    capture = store.open_capture = store._capture(generation=1)
    # Six more funnels evict the four captured clicks and installs, then two taken after.
    for number in range(4, 10):
        await harness.send(*funnel(number))
    store.open_capture = None

    assert [touch.event_id for touch in capture.killed] == [f"click-{n}" for n in range(4)]
    assert [record.install_event_id for _key, record in capture.unindexed] == [f"install-{n}" for n in range(4)]
