"""The embedded store's bounds, expiry and persistence across a restart."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
from pathlib import Path

import msgspec
import pytest
from msgspec.structs import replace

from ingestion.events import Event, validate_event
from ingestion.model import AppSettings
from ingestion.store import expiry, memory, record_log
from ingestion.store.base import RecordQuery
from ingestion.store.memory import HOUR, MemoryLimits
from ingestion.store.shards import shard_of
from tests.unit.ingestion.helpers import NOW, T, Harness, event, open_store, register


async def reopen(harness: Harness, *, graceful: bool = True, limits: MemoryLimits | None = None) -> Harness:
    """Stop the store (or only close its journal, as after a crash) and open a new one on its folder."""
    if graceful:
        await harness.store.stop()
    else:
        # The journal thread has written every acknowledged frame; no snapshot is taken.
        harness.store.journal.close()
        harness.store.journal = None
    store = await open_store(harness.store.data_dir, limits or harness.store.limits)
    return Harness(store, store.apps[harness.settings.app_id].settings)


# Maximum entry counts ---------------------------------------------------------


async def test_max_touches_evicts_oldest(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_touches=3))

    await harness.send(*(event("click", f"click-{index}", T + index, gaid=f"g-{index}") for index in range(10)))
    await harness.send(
        event("install", "install-oldest", T + 100, gaid="g-0"),
        event("install", "install-newest", T + 100, gaid="g-9"),
    )

    assert harness.store.entry_counts()["touch"] == 3
    assert harness.store.evicted["touch"] == 7
    assert (await harness.record("install-oldest"))["status"] == "organic"
    assert (await harness.record("install-newest"))["touch_event_id"] == "click-9"


@pytest.mark.parametrize("clicks", [3, 40], ids=["tuple entry", "list entry"])
async def test_device_with_many_clicks_evicts_oldest(make_harness, clicks):
    """One device's clicks share an index entry: a touch, a tuple up to MAX_TUPLE_ENTRY and a list past it."""
    harness = await make_harness(limits=MemoryLimits(max_touches=clicks - 2))
    await harness.send(*(event("click", f"click-{index}", T + index, gaid="shared") for index in range(clicks)))
    state = harness.store.states[harness.settings.app_id]
    assert [touch.event_id for touch in state.clicks_by_device(("gaid:shared",))] == [
        f"click-{index}" for index in range(2, clicks)
    ]

    # Clicks of other devices evict the shared ones, oldest first, until none is left.
    for index in range(clicks - 2):
        await harness.send(event("click", f"other-{index}", T, gaid=f"other-{index}"))
    assert list(state.clicks_by_device(("gaid:shared",))) == []
    outcome = await harness.send(event("install", "install", T + 1000, gaid="shared"))
    assert outcome.records[0].status == "organic"


async def test_one_touch_entries_are_untracked(make_harness):
    # An entry per indexed key that the collector tracks would be traversed by every young collection.
    harness = await make_harness()
    gc.disable()
    try:
        await harness.send(event("click", "click-1", T, gaid="single", click_id="c-1"), event("click", "click-2", T, gaid="pair"),
                           event("click", "click-3", T + 1, gaid="pair"))
        state = harness.store.states[harness.settings.app_id]

        assert not gc.is_tracked(shard_of(state.clicks_by_device_key, "gaid:single")["gaid:single"])
        assert not gc.is_tracked(shard_of(state.by_click_id, "c-1")["c-1"])
        assert gc.is_tracked(shard_of(state.clicks_by_device_key, "gaid:pair")["gaid:pair"])
    finally:
        gc.enable()
    assert [touch.event_id for touch in state.clicks_by_click_id("c-1")] == ["click-1"]
    assert [touch.event_id for touch in state.clicks_by_device(("gaid:pair", "gaid:single"))] == [
        "click-2", "click-3", "click-1"]


async def test_inline_shards_match_shard_of(make_harness):
    # The store writes the shard expression inline, and snapshots and tests use shard_of.
    harness = await make_harness()
    await harness.send(*(event("click", f"click-{n}", T, gaid=f"g-{n}", click_id=f"c-{n}") for n in range(300)))
    await harness.send(*(event("install", f"install-{n}", T + 60, gaid=f"g-{n}") for n in range(300)))
    state = harness.store.states[harness.settings.app_id]

    for table in (state.by_click_id, state.clicks_by_device_key, state.installs, state.seen):
        assert sum(map(len, table)) >= 300
        assert all(shard_of(table, key) is shard for shard in table for key in shard)


async def test_max_records_evicts_oldest(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_records=4))

    await harness.send(*(event("install", f"install-{index}", T + index) for index in range(6)))

    assert harness.store.entry_counts()["record"] == 4
    assert harness.store.evicted["record"] == 2
    assert await harness.store.get_record(harness.settings.app_id, "install-1") is None
    assert (await harness.record("install-2"))["status"] == "organic"


async def test_install_entries_untracked_by_collector(make_harness):
    """Each install queue contains up to max_installs entries; the collector must track none of them."""
    harness = await make_harness()
    await harness.send(*(event("install", f"install-{index}", T + index, gaid=f"g-{index}") for index in range(3)))

    state = harness.store.states[harness.settings.app_id]
    queued = list(harness.store.install_order)
    bucketed = [entry for members in state.install_expiry.buckets.values() for entry in members]
    assert len(queued) == len(bucketed) == 3
    assert not any(gc.is_tracked(entry) for entry in queued + bucketed)


async def test_touch_entries_untracked_by_collector(make_harness):
    """The touch queue contains max_touches entries and more; the collector must track none of them."""
    harness = await make_harness()
    await harness.send(*(event("click", f"click-{index}", T + index, gaid=f"g-{index}") for index in range(3)))

    queued = list(harness.store.touch_order)
    assert [entry.touch.event_id for entry in queued] == ["click-0", "click-1", "click-2"]
    assert not any(gc.is_tracked(entry) for entry in queued)


async def test_touch_labels_shared_between_batches(make_harness):
    harness = await make_harness()
    for index in range(2):
        # Join at run time, so each batch brings its own string objects, as decoding does.
        network, campaign = "".join(["ads", "-a"]), "".join(["spring", "-sale"])
        await harness.send(event("click", f"click-{index}", T + index, gaid=f"g-{index}", network=network, campaign=campaign))

    first, second = (entry.touch for entry in harness.store.touch_order)
    assert first.network == second.network == "ads-a"
    assert first.network is second.network
    assert first.campaign is second.campaign


async def test_touch_label_pool_stops_at_limit(make_harness, monkeypatch):
    monkeypatch.setattr(memory, "MAX_SHARED_LABELS", 2)
    harness = await make_harness()
    await harness.send(*(event("click", f"click-{index}", T + index, network=f"net-{index}") for index in range(5)))

    state = harness.store.states[harness.settings.app_id]
    assert sorted(state.labels) == ["net-0", "net-1"]
    assert [entry.touch.network for entry in harness.store.touch_order] == [f"net-{index}" for index in range(5)]


async def test_impressions_keep_no_fingerprint(make_harness):
    harness = await make_harness()
    device = {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (Linux; Android 14)"}
    await harness.send(event("impression", "impression-1", T, **device), event("click", "click-1", T + 1, **device))

    impression, click = (entry.touch for entry in harness.store.touch_order)
    assert impression.fingerprint is None
    assert click.fingerprint == "203.0.113.7\x1fMozilla/5.0 (Linux; Android 14)"


async def test_max_installs_evicts_oldest(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_installs=2))

    await harness.send(*(event("install", f"install-{index}", T + index, gaid=f"g-{index}") for index in range(4)))
    evicted_before = harness.store.evicted["install"]
    await harness.send(
        event("install", "again-0", T + 60, gaid="g-0"),
        event("install", "again-3", T + 60, gaid="g-3"),
    )

    assert evicted_before == 2
    # again-0 is a new install, so it pushes install-2 out.
    assert harness.store.evicted["install"] == 3
    assert (await harness.record("again-0"))["status"] == "organic"
    assert (await harness.record("again-3"))["status"] == "reinstall"


async def test_max_dedup_entries_forgets_oldest(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_dedup_entries=5))

    await harness.send(*(event("session", f"session-{index}", T + index) for index in range(8)))
    resent = await harness.send(event("session", "session-0", T), event("session", "session-7", T))

    assert harness.store.entry_counts()["dedup"] <= 5
    assert harness.store.evicted["dedup"] >= 3
    assert resent.duplicate_flags == [False, True]


def filter_keys(store) -> list[tuple[int, str]]:
    """Return (app code, event id) for every id in the apps' duplicate filters, sorted."""
    return sorted((state.code, event_id) for state in store.states.values() for shard in state.seen for event_id in shard)


def queued_keys(store) -> list[tuple[int, str]]:
    assert len(store.seen_codes) == len(store.seen_order) == len(store.seen_times)
    return sorted(zip(store.seen_codes, store.seen_order))


@pytest.mark.parametrize("graceful", [True, False], ids=["snapshot", "journal replay"])
async def test_dedup_order_matches_filter(make_harness, graceful):
    harness = await make_harness(limits=MemoryLimits(max_dedup_entries=5, dedup_horizon_s=60))
    await harness.send(*(event("session", f"early-{index}", T) for index in range(3)), now=NOW)
    await harness.send(*(event("session", f"late-{index}", T) for index in range(4)), now=NOW + 30)
    await harness.send(event("session", "latest", T), now=NOW + 70)

    store = harness.store
    assert queued_keys(store) == filter_keys(store)
    assert list(store.seen_order) == ["late-0", "late-1", "late-2", "late-3", "latest"]

    restarted = await reopen(harness, graceful=graceful)
    try:
        assert queued_keys(restarted.store) == filter_keys(restarted.store)
        assert list(restarted.store.seen_order) == ["late-0", "late-1", "late-2", "late-3", "latest"]
        assert list(restarted.store.seen_times) == list(store.seen_times)
    finally:
        await restarted.store.stop()


async def test_touch_counts_shared_across_apps(make_harness):
    harness = await make_harness(limits=MemoryLimits(max_touches=4))
    other = AppSettings(app_id="other.app", platform="ios")
    await register(harness.store, other)

    await harness.send(*(event("click", f"a-{index}", T + index, gaid=f"g-{index}") for index in range(3)))
    await harness.send(*(event("click", f"b-{index}", T + index, idfv=f"v-{index}") for index in range(3)), settings=other)

    assert harness.store.entry_counts()["touch"] == 4
    assert harness.store.evicted["touch"] == 2


# Expiry by event time and by receipt time ------------------------------------


async def test_touches_expire_with_window(make_harness):
    limits = MemoryLimits(late_arrival_s=60)
    harness = await make_harness(limits=limits, click_window_s=600, fingerprint_window_s=600, impression_window_s=300)
    await harness.send(
        event("click", "click", T, gaid="g-1"),
        event("impression", "impression", T, gaid="g-2"),
    )

    # Expiry works in whole hours of event time: two hours past the horizon drops both.
    await harness.send(event("session", "later", T + 600 + 60 + 2 * HOUR))

    assert harness.store.entry_counts()["touch"] == 0
    assert harness.store.expired["touch"] == 2
    assert harness.store.evicted["touch"] == 0


async def test_touch_kept_inside_window(make_harness):
    harness = await make_harness(limits=MemoryLimits(late_arrival_s=60), click_window_s=600, fingerprint_window_s=600)
    await harness.send(event("click", "click", T, gaid="g-1"))

    await harness.send(event("install", "install", T + 600, gaid="g-1"))

    assert harness.store.expired["touch"] == 0
    assert (await harness.record("install"))["touch_event_id"] == "click"


async def test_expiry_follows_event_time_not_clock(make_harness):
    harness = await make_harness(click_window_s=600, fingerprint_window_s=600)
    await harness.send(event("click", "click", T, gaid="g-1"))

    # Receipt time jumps a year; event times do not, so the click stays.
    await harness.send(event("install", "install", T + 60, gaid="g-1"), now=NOW + 365 * 86400)

    assert harness.store.expired["touch"] == 0
    assert (await harness.record("install"))["status"] == "attributed"


async def test_installs_expire_after_reinstall_window(make_harness):
    harness = await make_harness(limits=MemoryLimits(late_arrival_s=60), reinstall_window_s=3600)
    await harness.send(event("install", "first", T, gaid="g-1"))

    await harness.send(event("session", "later", T + 3600 + 60 + 2 * HOUR))

    assert harness.store.expired["install"] == 1
    assert harness.store.entry_counts()["install"] == 0


async def test_dedup_horizon_forgets_ids(make_harness):
    harness = await make_harness(limits=MemoryLimits(dedup_horizon_s=60))
    await harness.send(event("session", "session", T), now=NOW)

    inside = await harness.send(event("session", "session", T), now=NOW + 60)
    await harness.send(event("session", "tick", T), now=NOW + 61)
    outside = await harness.send(event("session", "session", T), now=NOW + 62)

    assert inside.duplicate_flags == [True]
    assert harness.store.expired["dedup"] >= 1
    assert outside.duplicate_flags == [False]


async def test_id_past_horizon_new_in_next_batch(make_harness):
    harness = await make_harness(limits=MemoryLimits(dedup_horizon_s=60))
    await harness.send(event("session", "session", T), now=NOW)

    resent = await harness.send(event("session", "session", T), event("session", "session", T), now=NOW + 61)

    # Forgotten before the batch, so the first copy is new and the second a duplicate of it.
    assert resent.duplicate_flags == [False, True]
    assert harness.store.expired["dedup"] == 1


# Persistence -----------------------------------------------------------------


@pytest.mark.parametrize("graceful", [True, False], ids=["snapshot", "journal replay"])
async def test_restart_keeps_records_dedup_touches(make_harness, graceful):
    harness = await make_harness()
    await harness.send(
        event("click", "click", T - 100, gaid="g-1", network="adnet"),
        event("install", "install", T, gaid="g-1"),
        event("click", "pending", T + 50, gaid="g-2", network="later-net"),
        event("in_app", "buy", T + 60, gaid="g-1", event_name="purchase", revenue="2.50", currency="USD"),
    )

    restarted = await reopen(harness, graceful=graceful)
    try:
        resent = await restarted.send(event("install", "install", T, gaid="g-1"), event("click", "click", T - 100, gaid="g-1"))
        await restarted.send(event("install", "after-restart", T + 200, gaid="g-2"))
        [revenue] = await restarted.store.revenue(restarted.settings.app_id)

        assert resent.duplicate_flags == [True, True]
        assert (await restarted.record("install"))["network"] == "adnet"
        assert (await restarted.record("after-restart"))["touch_event_id"] == "pending"
        assert (revenue.network, revenue.amount, revenue.events) == ("adnet", "2.50", 1)
    finally:
        await restarted.store.stop()


async def test_journal_replay_folds_into_snapshot(make_harness):
    harness = await make_harness()
    await harness.send(event("install", "install", T, gaid="g-1"))

    restarted = await reopen(harness, graceful=False)
    try:
        assert restarted.store.snapshot_path.exists()
        assert restarted.store.journal_path.stat().st_size == 0
    finally:
        await restarted.store.stop()


async def test_torn_journal_frame_ignored(make_harness):
    harness = await make_harness()
    await harness.send(event("install", "kept", T, gaid="g-1"))
    harness.store.journal.close()
    harness.store.journal = None
    with open(harness.store.journal_path, "ab") as journal:
        journal.write(b"\x00\x00\x10\x00partial")

    store = await open_store(harness.store.data_dir)
    try:
        assert await store.get_record(harness.settings.app_id, "kept") is not None
    finally:
        await store.stop()


async def test_restart_after_app_deleted_keeps_dedup(tmp_path: Path):
    store = await open_store(tmp_path)
    first = AppSettings(app_id="first.app", platform="android")
    second = AppSettings(app_id="second.app", platform="android")
    await register(store, first)
    await register(store, second)
    await Harness(store, first).send(event("session", "first-only", T))
    await Harness(store, second).send(event("session", "second-only", T))
    assert await store.delete_app("first.app")
    await store.stop()

    store = await open_store(tmp_path)
    try:
        harness = Harness(store, second)
        resent = await harness.send(event("session", "second-only", T))
        fresh = await harness.send(event("session", "first-only", T))

        assert resent.duplicate_flags == [True]
        assert fresh.duplicate_flags == [False]
    finally:
        await store.stop()


async def test_restart_keeps_patched_windows(tmp_path: Path):
    store = await open_store(tmp_path)
    settings = AppSettings(app_id="app.test", platform="android", click_window_s=60)
    await register(store, settings)
    stored = store.apps["app.test"]
    await store.replace_app(replace(stored, settings=replace(settings, click_window_s=3600)))
    await store.stop()

    store = await open_store(tmp_path)
    try:
        assert store.apps["app.test"].settings.click_window_s == 3600
    finally:
        await store.stop()


async def test_journal_replay_uses_settings_of_the_time(make_harness):
    harness = await make_harness()
    await harness.send(event("click", "click", T - 400, gaid="g-1"), event("install", "before", T, gaid="g-1"))
    narrower = replace(harness.settings, click_window_s=300)
    await harness.store.replace_app(replace(harness.store.apps[harness.settings.app_id], settings=narrower))
    await harness.send(event("click", "click-2", T - 400, gaid="g-2"), event("install", "after", T, gaid="g-2"), settings=narrower)

    restarted = await reopen(harness, graceful=False)
    try:
        assert (await restarted.record("before"))["status"] == "attributed"
        assert (await restarted.record("after"))["status"] == "organic"
    finally:
        await restarted.store.stop()


async def test_snapshot_rename_synced_before_journal_deleted(make_harness, monkeypatch):
    harness = await make_harness()
    await harness.send(event("install", "install", T, gaid="g-1"))
    store = harness.store
    segment = store.journal_path
    steps: list[str] = []
    real_fsync = os.fsync
    real_unlink = Path.unlink

    def recording_fsync(descriptor: int) -> None:
        if stat.S_ISDIR(os.fstat(descriptor).st_mode):
            steps.append("folder synced")
        real_fsync(descriptor)

    def recording_unlink(path: Path, missing_ok: bool = False) -> None:
        if path == segment:
            steps.append("journal deleted")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(Path, "unlink", recording_unlink)
    await store.stop()

    assert steps == ["folder synced", "journal deleted", "folder synced"]
    assert not segment.exists()


async def test_evicted_entries_leave_expiry_buckets(make_harness, monkeypatch):
    # Event times span 200 s, far inside every window, so no bucket comes due and only sweeps drop entries.
    monkeypatch.setattr(expiry, "MIN_SWEEP_EVICTIONS", 1)
    harness = await make_harness(limits=MemoryLimits(max_touches=10, max_installs=10))
    state = harness.store.states[harness.settings.app_id]
    for batch in range(20):
        numbers = range(10 * batch, 10 * batch + 10)
        await harness.send(*(event("click", f"click-{n}", T + n, gaid=f"c-{n}") for n in numbers))
        await harness.send(*(event("install", f"install-{n}", T + n, gaid=f"i-{n}") for n in numbers))

    assert harness.store.evicted["touch"] == 190
    assert harness.store.evicted["install"] == 190
    assert state.touch_expiry.entries <= 20
    assert state.install_expiry.entries <= 20
    touches = [touch for members in state.touch_expiry.buckets.values() for touch in members]
    assert {touch.event_id for touch in touches if touch.alive} == {f"click-{n}" for n in range(190, 200)}
    # The live installs are still bucketed and still expire.
    installs = {entry.record.install_event_id for members in state.install_expiry.buckets.values() for entry in members}
    assert {f"install-{n}" for n in range(190, 200)} <= installs
    state.watermark = T + 400 * 86400
    assert state.expire() == (10, 10)


async def test_record_listing_yields_between_steps(make_harness, monkeypatch):
    monkeypatch.setattr(memory, "LIST_SCAN_STEP", 3)
    monkeypatch.setattr(record_log, "MIN_HEAD_DROP", 2)
    harness = await make_harness(limits=MemoryLimits(max_records=8))
    settings = harness.settings
    await harness.send(*(event("install", f"install-{n}", T + n, gaid=f"g-{n}") for n in range(8)))

    def installs(numbers) -> list[Event]:
        documents = [{"app_id": settings.app_id, **event("install", f"install-{n}", T + n, gaid=f"g-{n}")} for n in numbers]
        return [msgspec.convert(document, Event) for document in documents]

    async def apply_between_steps() -> None:
        # Each turn applies four installs, which evicts the four oldest records and drops the log's head.
        for turn in range(3):
            await asyncio.sleep(0)
            events = installs(range(100 + 4 * turn, 104 + 4 * turn))
            for parsed in events:
                assert validate_event(parsed, NOW, settings.platform) is None
            harness.store._apply_now(settings, events, NOW)

    applier = asyncio.create_task(apply_between_steps())
    await asyncio.sleep(0)
    records, cursor = await harness.store.list_records(RecordQuery(app_id=settings.app_id, status="organic", limit=100))
    await applier

    # A step reads three records, then the applier evicts four: install-3, install-7 and
    # install-103 left before the listing reached them, and the installs applied meanwhile follow.
    expected = [0, 1, 2, 4, 5, 6, 100, 101, 102, *range(104, 112)]
    assert [record.install_event_id for record in records] == [f"install-{n}" for n in expected]
    assert cursor is None


async def test_touch_queue_filtered_in_steps(make_harness, monkeypatch):
    monkeypatch.setattr(memory, "ORDER_FILTER_STEP", 2)
    monkeypatch.setattr(memory, "ORDER_FILTER_MIN", 2)
    harness = await make_harness()
    store = harness.store
    await harness.send(event("click", "click-0", T, gaid="g-0"))
    await harness.send(*(event("impression", f"impression-{n}", T + n, gaid=f"i-{n}") for n in range(1, 11)))
    # Three days later the impressions have expired, but they stay queued behind the live click.
    later = T + 3 * 86400
    await harness.send(event("click", "click-1", later, gaid="g-1"))
    assert store.expired["touch"] == 10
    assert store._touch_order_filter is not None

    batches = 0
    while store._touch_order_filter is not None:
        batches += 1
        await harness.send(event("click", f"click-{batches + 1}", later + batches, gaid=f"g-{batches + 1}"))

    # Twelve entries at two per step, then the step that copies what arrived meanwhile.
    assert batches == 6
    queued = [entry.touch.event_id for entry in store.touch_order]
    assert queued == [f"click-{n}" for n in range(batches + 2)]
    assert all(entry.touch.alive for entry in store.touch_order)


async def test_expiry_spread_over_batches(make_harness, monkeypatch):
    monkeypatch.setattr(memory, "EXPIRY_STEP", 2)
    harness = await make_harness()
    store = harness.store
    await harness.send(*(event("impression", f"impression-{n}", T + n, gaid=f"i-{n}") for n in range(5)))
    # Three days later every impression is past its window, and each batch removes two of them.
    later = T + 3 * 86400
    removed = []
    for number in range(4):
        await harness.send(event("click", f"click-{number}", later + number, gaid=f"g-{number}"))
        removed.append(store.expired["touch"])

    assert removed == [2, 4, 5, 5]
    assert store.live_touches == 4
