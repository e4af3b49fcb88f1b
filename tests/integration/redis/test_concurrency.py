"""Two stores on the same Redis act as two workers sharing one app.

Their batches run concurrently. Each event must be accepted by exactly one of
them. The records must be those of the batches applied one after the other in
some order, so of many installs of one device, one is its first install and
every other one is a reinstall.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ingestion.events import Event, validate_event
from ingestion.model import AppSettings, StoredApp
from ingestion.store.base import RecordQuery
from tests.integration.redis.conftest import new_store_url

T = 1_700_000_000.0
NOW = 1_800_000_000.0
APP = AppSettings(app_id="shared.app", platform="android")


def events(*documents: dict) -> list[Event]:
    parsed = []
    for document in documents:
        event = msgspec.convert({"app_id": APP.app_id, **document}, Event)
        assert validate_event(event, NOW, APP.platform) is None
        parsed.append(event)
    return parsed


async def two_workers(request, make_store, backend: str):
    url = new_store_url(request, backend)
    first = await make_store(url)
    second = await make_store(url)
    assert await first.create_app(StoredApp(settings=APP, key_id="key-1", key_hash="0" * 64, created_at=T))
    return first, second


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_same_batch_accepted_once(request, make_store, backend):
    first, second = await two_workers(request, make_store, backend)
    batch = [
        {"event_id": f"click-{number}", "event_type": "click", "event_time": T + number, "network": "n", "gaid": f"g-{number}"}
        for number in range(200)
    ] + [
        {"event_id": f"install-{number}", "event_type": "install", "event_time": T + 1000 + number, "gaid": f"g-{number}"}
        for number in range(200)
    ]

    outcomes = await asyncio.gather(*(
        store.apply(APP, events(*batch), NOW) for store in (first, second, first, second)
    ))

    accepted = [sum(not flag for flag in outcome.duplicate_flags) for outcome in outcomes]
    assert sum(accepted) == len(batch)
    records, _ = await second.list_records(RecordQuery(app_id=APP.app_id, limit=1000))
    assert len(records) == 200
    assert {record.status for record in records} == {"attributed"}


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_concurrent_installs_one_first(request, make_store, backend):
    first, second = await two_workers(request, make_store, backend)
    await first.apply(APP, events({"event_id": "click", "event_type": "click", "event_time": T, "network": "n", "gaid": "g"}), NOW)
    stores = [first, second] * 10

    await asyncio.gather(*(
        store.apply(APP, events({"event_id": f"install-{number}", "event_type": "install", "event_time": T + 100, "gaid": "g"}), NOW)
        for number, store in enumerate(stores)
    ))

    records, _ = await first.list_records(RecordQuery(app_id=APP.app_id, limit=1000))
    statuses = sorted(record.status for record in records)
    assert len(records) == 20
    assert statuses.count("attributed") == 1
    assert statuses.count("reinstall") == 19
    assert {record.touch_event_id for record in records} == {"click"}


async def test_registry_shared_between_workers(request, make_store):
    url = new_store_url(request, "redis")
    first = await make_store(url, app_refresh_interval_s=0.05)
    second = await make_store(url, app_refresh_interval_s=0.05)
    app = StoredApp(settings=AppSettings(app_id="registered.elsewhere", platform="ios"), key_id="kid-1", key_hash="1" * 64, created_at=T)

    assert await first.create_app(app)
    assert await second.fetch_app_by_key_id("kid-1") == app
    assert second.cached_app("registered.elsewhere") == app
    assert not await second.create_app(app)

    assert await first.delete_app("registered.elsewhere")
    for _ in range(100):
        if second.cached_app("registered.elsewhere") is None:
            break
        await asyncio.sleep(0.02)
    assert second.cached_app("registered.elsewhere") is None
    assert second.app_by_key_id("kid-1") is None
    assert await second.fetch_app_by_key_id("kid-1") is None
