"""The Redis store when its server stops and starts again.

Each test runs its own redis-server on a free loopback port, with an
append-only file written on every command, so a stopped server comes back
with everything it acknowledged.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ingestion.events import Event, validate_event
from ingestion.model import AppSettings, StoredApp
from ingestion.store.base import RecordQuery, StoreUnavailable
from ingestion.store.redis import RedisSettings, RedisStore
from tests.integration.redis.redis_servers import RedisServer

T = 1_700_000_000.0
NOW = 1_800_000_000.0
APP = AppSettings(app_id="outage.app", platform="android")
FAST = dict(socket_timeout_s=1.0, connect_timeout_s=0.5, app_refresh_interval_s=0.05, commit_retry_s=10.0)


def batch(prefix: str) -> list[Event]:
    documents = [
        {"event_id": f"{prefix}-click", "event_type": "click", "event_time": T, "network": "n", "gaid": prefix},
        {"event_id": f"{prefix}-install", "event_type": "install", "event_time": T + 60, "gaid": prefix},
    ]
    events = []
    for document in documents:
        event = msgspec.convert({"app_id": APP.app_id, **document}, Event)
        assert validate_event(event, NOW, APP.platform) is None
        events.append(event)
    return events


@pytest.fixture
def server(tmp_path):
    running = RedisServer(tmp_path / "redis", persistent=True)
    yield running
    running.kill()


@pytest.fixture
async def open_store():
    stores = []

    async def factory(url: str, store_class=RedisStore) -> RedisStore:
        store = store_class(url, RedisSettings(**FAST))
        await store.start()
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.stop()


async def wait_ready(store: RedisStore) -> None:
    for _ in range(200):
        if await store.ready():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the store did not become ready within 10 s of Redis starting")


async def test_store_starts_before_redis(server, open_store):
    store = await open_store(server.url())

    assert not await store.ready()
    with pytest.raises(StoreUnavailable):
        await store.apply(APP, batch("early"), NOW)
    assert store.errors.labels("read").value >= 1

    server.start()
    await wait_ready(store)
    assert await store.create_app(StoredApp(settings=APP, key_id="k", key_hash="0" * 64, created_at=T))
    outcome = await store.apply(APP, batch("late"), NOW)
    assert outcome.records[0].status == "attributed"


async def test_store_recovers_after_restart(server, open_store):
    server.start()
    store = await open_store(server.url())
    await wait_ready(store)
    assert await store.create_app(StoredApp(settings=APP, key_id="k", key_hash="0" * 64, created_at=T))
    await store.apply(APP, batch("before"), NOW)

    server.stop()
    assert not await store.ready()
    with pytest.raises(StoreUnavailable):
        await store.apply(APP, batch("during"), NOW)

    server.start()
    await wait_ready(store)
    again = await store.apply(APP, batch("before"), NOW)
    after = await store.apply(APP, batch("after"), NOW)
    assert again.duplicate_flags == [True, True]
    assert after.duplicate_flags == [False, False]
    assert (await store.get_record(APP.app_id, "during-install")) is None
    assert (await store.get_record(APP.app_id, "after-install")).status == "attributed"


class CommitTwice(RedisStore):
    """Sends every commit a second time, as after a reply lost in transit."""

    second_results: list[bytes]

    async def _commit(self, client, keys, arguments):
        result = await super()._commit(client, keys, arguments)
        self.second_results.append(await super()._commit(client, keys, arguments))
        return result


async def test_resent_commit_not_applied_twice(server, open_store):
    server.start()
    store = await open_store(server.url(), CommitTwice)
    store.second_results = []
    await wait_ready(store)
    assert await store.create_app(StoredApp(settings=APP, key_id="k", key_hash="0" * 64, created_at=T))

    outcome = await store.apply(APP, batch("twice"), NOW)

    assert outcome.duplicate_flags == [False, False]
    assert store.second_results == [b"done"]
    records, _ = await store.list_records(RecordQuery(app_id=APP.app_id))
    assert [record.install_event_id for record in records] == ["twice-install"]


class RestartBeforeCommit(RedisStore):
    """Stops Redis right before the first commit and starts it again half a second later."""

    server: RedisServer
    restarts = 0

    async def _commit(self, client, keys, arguments):
        if not self.restarts:
            self.restarts += 1
            self.server.stop()

            async def start_later() -> None:
                await asyncio.sleep(0.5)
                await asyncio.to_thread(self.server.start)

            restart = asyncio.create_task(start_later())
            try:
                return await super()._commit(client, keys, arguments)
            finally:
                await restart
        return await super()._commit(client, keys, arguments)


async def test_commit_waits_for_restart(server, open_store):
    server.start()
    store = await open_store(server.url(), RestartBeforeCommit)
    store.server = server
    await wait_ready(store)
    assert await store.create_app(StoredApp(settings=APP, key_id="k", key_hash="0" * 64, created_at=T))

    outcome = await store.apply(APP, batch("restart"), NOW)

    assert outcome.duplicate_flags == [False, False]
    assert outcome.records[0].status == "attributed"
    assert store.errors.labels("commit").value >= 1
    resent = await store.apply(APP, batch("restart"), NOW)
    assert resent.duplicate_flags == [True, True]
