"""The same events in the same batches give the same records on every backend.

Two data sets are applied to the embedded store, a Redis server and a Redis
Cluster: a generated TalkingData-format click log (clicks and installs
matched by fingerprint, click injection, duplicates), and generated install
funnels of two apps (referrer, device-id and fingerprint clicks,
impressions, reinstalls, sessions and revenue). Batches have mixed sizes,
and some are sent twice, so duplicates cross batch boundaries too.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import msgspec
import pytest

from ingestion.events import Event, validate_event
from ingestion.model import AppSettings, StoredApp, record_to_json
from ingestion.replay.talkingdata import PLATFORM, read_click_log
from ingestion.store.base import RecordQuery, Store
from ingestion.store.memory import MemoryStore
from loadtest.generator import build_template
from tests.integration.redis.conftest import new_store_url
from tests.support.talkingdata_sample import write_sample

GENERATED_AT = 1_750_000_000.0
NOW = GENERATED_AT + 60
BATCH_SIZES = (1, 7, 50, 333, 1000)


def funnel_events() -> list[dict]:
    events = []
    for seed, (app_id, platform) in enumerate([("funnels.android", "android"), ("funnels.ios", "ios")]):
        template = build_template(app_id, platform, 600, seed=seed, now=GENERATED_AT)
        for sequence in range(3):
            events += template.materialize(sequence)[0]
    return events


def click_log_events(directory: Path) -> list[dict]:
    sample = write_sample(directory / "talkingdata-sample.csv")
    return list(read_click_log(sample.path).events_in_time_order())


def batches_of(documents: list[dict], seed: int) -> list[list[dict]]:
    """Split the documents into batches of mixed sizes, resending one batch in five."""
    rng = random.Random(seed)
    batches = []
    position = 0
    while position < len(documents):
        size = rng.choice(BATCH_SIZES)
        batch = documents[position : position + size]
        batches.append(batch)
        if rng.random() < 0.2:
            batches.append(list(batch))
        position += size
    return batches


async def replay(store: Store, documents: list[dict], platforms: dict[str, str], seed: int) -> dict:
    """Apply the batches per app, as the API does, and return every record and revenue line."""
    apps = {app_id: AppSettings(app_id=app_id, platform=platform) for app_id, platform in platforms.items()}
    for app in apps.values():
        assert await store.create_app(StoredApp(settings=app, key_id="k-" + app.app_id, key_hash="0" * 64, created_at=NOW))
    duplicates = 0
    for batch in batches_of(documents, seed):
        groups: dict[str, list[Event]] = {}
        for document in batch:
            event = msgspec.convert(document, Event)
            assert validate_event(event, NOW, apps[event.app_id].platform) is None
            groups.setdefault(event.app_id, []).append(event)
        for app_id, events in groups.items():
            outcome = await store.apply(apps[app_id], events, NOW)
            duplicates += sum(outcome.duplicate_flags)
    result = {"duplicates": duplicates}
    for app_id in sorted(apps):
        records, _ = await store.list_records(RecordQuery(app_id=app_id, limit=100_000))
        revenue = await store.revenue(app_id)
        result[app_id] = {
            "records": [record_to_json(record) for record in records],
            "revenue": sorted((line.network or "", line.campaign or "", line.currency, line.amount, line.events) for line in revenue),
        }
    return result


def first_difference(found: dict, expected: dict) -> str | None:
    """Describe the first record or figure that differs, or return None.

    pytest's own diff of two results this large takes minutes.
    """
    if found["duplicates"] != expected["duplicates"]:
        return f"duplicates: {found['duplicates']} != {expected['duplicates']}"
    for app_id in expected:
        if app_id == "duplicates":
            continue
        if found[app_id]["revenue"] != expected[app_id]["revenue"]:
            return f"{app_id} revenue: {found[app_id]['revenue']} != {expected[app_id]['revenue']}"
        found_records, expected_records = found[app_id]["records"], expected[app_id]["records"]
        for position, (left, right) in enumerate(zip(found_records, expected_records)):
            if left != right:
                return f"{app_id} record {position}: {left} != {right}"
        if len(found_records) != len(expected_records):
            return f"{app_id}: {len(found_records)} records != {len(expected_records)}"
    return None


@pytest.fixture(scope="module")
def data_sets(tmp_path_factory) -> dict[str, tuple[list[dict], dict[str, str]]]:
    funnels = funnel_events()
    click_log = click_log_events(tmp_path_factory.mktemp("click-log"))
    return {
        "funnels": (funnels, {"funnels.android": "android", "funnels.ios": "ios"}),
        "click log": (click_log, {event["app_id"]: PLATFORM for event in click_log}),
    }


@pytest.mark.parametrize("data_set", ["funnels", "click log"])
async def test_backends_give_same_records(request, tmp_path, make_store, data_sets, data_set):
    documents, platforms = data_sets[data_set]
    seed = 7

    memory = MemoryStore(tmp_path / "embedded", fsync_interval=0.05)
    await memory.start()
    try:
        embedded = await replay(memory, documents, platforms, seed)
    finally:
        await memory.stop()
    on_redis = await replay(await make_store(new_store_url(request, "redis")), documents, platforms, seed)
    on_cluster = await replay(await make_store(new_store_url(request, "cluster")), documents, platforms, seed)

    installs = len({document["event_id"] for document in documents if document["event_type"] == "install"})
    recorded = sum(len(embedded[app_id]["records"]) for app_id in platforms)
    assert embedded["duplicates"] > 0
    assert recorded == installs
    assert first_difference(on_redis, embedded) is None
    assert first_difference(on_cluster, embedded) is None


async def test_cluster_spreads_apps_over_masters(request, make_store, cluster):
    store = await make_store(new_store_url(request, "cluster"))
    prefix = store.target.prefix
    apps = [AppSettings(app_id=f"spread-{number}", platform="android") for number in range(12)]
    for app in apps:
        assert await store.create_app(StoredApp(settings=app, key_id=app.app_id, key_hash="0" * 64, created_at=NOW))
        documents = [
            {"event_id": "c", "app_id": app.app_id, "event_type": "click", "event_time": NOW - 100, "network": "n", "gaid": "g"},
            {"event_id": "i", "app_id": app.app_id, "event_type": "install", "event_time": NOW, "gaid": "g"},
        ]
        events = [msgspec.convert(document, Event) for document in documents]
        for event in events:
            assert validate_event(event, NOW, "android") is None
        outcome = await store.apply(app, events, NOW)
        assert outcome.records[0].status == "attributed"

    holding = cluster.masters_holding(prefix + "*")
    assert sum(1 for count in holding.values() if count) >= 2, holding
    for app in apps:
        keys_of_app = [port for port, count in cluster.masters_holding(f"{prefix}{{{store._app_keys(app.app_id).tag}}}*").items() if count]
        assert len(keys_of_app) == 1, (app.app_id, keys_of_app)


def test_batches_cover_every_event(data_sets):
    documents, _ = data_sets["funnels"]
    sent = list(itertools.chain.from_iterable(batches_of(documents, 7)))
    assert {document["event_id"] for document in sent} == {document["event_id"] for document in documents}
