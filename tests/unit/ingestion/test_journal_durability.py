"""State across a crash after compaction, journal write failures, and device identifier case."""

from __future__ import annotations

from ingestion.store.base import StoreUnavailable
from ingestion.store.journal import JournalError
from tests.unit.ingestion.helpers import T, Harness, event, open_store

import pytest


async def test_compaction_keeps_state_across_crash(make_harness):
    harness = await make_harness()
    harness.store.journal_max_bytes = 2_000
    for batch in range(5):
        await harness.send(*(event("click", f"click-{batch}-{index}", T + index, gaid=f"g-{batch}-{index}") for index in range(20)))
    await harness.store.compaction_finished()
    assert harness.store.compactions >= 1

    # A crash after the compaction: the journal thread is stopped, no snapshot is written.
    harness.store.journal.close()
    harness.store.journal = None
    store = await open_store(harness.store.data_dir)
    reopened = Harness(store, store.apps[harness.settings.app_id].settings)
    try:
        outcome = await reopened.send(
            event("click", "click-0-0", T),
            event("install", "install-late", T + 100, gaid="g-0-5"),
        )
        assert outcome.duplicate_flags == [True, False]
        assert (await reopened.record("install-late"))["touch_event_id"] == "click-0-5"
        assert store.entry_counts()["touch"] == 100
    finally:
        await store.stop()


async def test_failed_journal_write_applies_nothing(make_harness):
    harness = await make_harness()
    journal = harness.store.journal

    async def failing_append(payload: bytes) -> None:
        raise JournalError("disk full")

    journal.append = failing_append
    with pytest.raises(StoreUnavailable):
        await harness.send(event("click", "click-1", T, gaid="g-1"))

    assert harness.store.entry_counts()["touch"] == 0
    assert harness.store.entry_counts()["dedup"] == 0
    del journal.append
    outcome = await harness.send(event("click", "click-1", T, gaid="g-1"))
    assert outcome.duplicate_flags == [False]


async def test_device_ids_match_any_case(make_harness):
    harness = await make_harness()

    await harness.send(event("click", "click-upper", T, gaid="AB12CD34-0000-4000-8000-00000000000F"))
    await harness.send(event("install", "install-lower", T + 60, gaid="ab12cd34-0000-4000-8000-00000000000f"))

    record = await harness.record("install-lower")
    assert record["status"] == "attributed"
    assert record["touch_event_id"] == "click-upper"
    assert record["match_type"] == "device_id"
