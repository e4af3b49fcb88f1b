"""A service started with small store maximums keeps its entries bounded and counts what it drops."""

from __future__ import annotations

import time

from tests.integration.ingestion.helpers import click, install, session, unique, wait_for

SERVICE_OPTIONS = {
    "max_touches": 5,
    "max_records": 4,
    "max_installs": 50,
    "max_dedup_entries": 30,
    "dedup_horizon": 2,
    "late_arrival": 1,
}
HOUR = 3600


def entries(api) -> dict[str, float]:
    return {labels["kind"]: value for labels, value in api.samples("attribution_store_entries")}


def counts(api, name: str) -> dict[str, float]:
    return {labels["kind"]: value for labels, value in api.samples(name)}


def test_touches_bounded_and_evictions_counted(api):
    app_id, key = api.register()
    now = time.time()
    evicted_before = counts(api, "attribution_store_evictions_total")["touch"]

    api.send(key, [click(app_id, f"click-{index}", now - 600 + index, gaid=f"g-{index}") for index in range(12)])
    api.send(key, [install(app_id, "install-old", now, gaid="g-0"), install(app_id, "install-new", now, gaid="g-11")])

    assert entries(api)["touch"] <= 5
    assert counts(api, "attribution_store_evictions_total")["touch"] - evicted_before >= 7
    assert api.record(app_id, "install-old")["status"] == "organic"
    assert api.record(app_id, "install-new")["touch_event_id"] == "click-11"


def test_records_bounded_oldest_evicted(api):
    app_id, key = api.register()
    now = time.time()
    evicted_before = counts(api, "attribution_store_evictions_total")["record"]
    # The maximum counts every app's records, other tests' included.
    records_before = entries(api)["record"]

    api.send(key, [install(app_id, f"install-{index}", now - 60 + index) for index in range(10)])
    missing = api.client.get(f"/v1/attributions/{app_id}/install-0", headers=api.admin)

    assert entries(api)["record"] == 4
    assert counts(api, "attribution_store_evictions_total")["record"] - evicted_before == records_before + 10 - 4
    assert [record["install_event_id"] for record in api.records(app_id)] == [f"install-{index}" for index in range(6, 10)]
    assert missing.status_code == 404
    assert "install-0" in missing.json()["detail"]


def test_dedup_entries_bounded(api):
    app_id, key = api.register()
    evicted_before = counts(api, "attribution_store_evictions_total")["dedup"]

    api.send(key, [session(app_id, f"session-{index}") for index in range(100)])

    assert entries(api)["dedup"] <= 30
    assert counts(api, "attribution_store_evictions_total")["dedup"] - evicted_before >= 70
    # The oldest ids were forgotten, so they are accepted again. The newest are still duplicates.
    assert api.send(key, [session(app_id, "session-0")])["accepted"] == 1
    assert api.send(key, [session(app_id, "session-99")])["duplicates"] == 1


def test_dedup_horizon_forgets_ids(api):
    app_id, key = api.register()
    event_id = unique("session")
    api.send(key, [session(app_id, event_id)])
    expired_before = counts(api, "attribution_store_expirations_total")["dedup"]
    assert api.send(key, [session(app_id, event_id)])["duplicates"] == 1

    time.sleep(2.2)
    api.send(key, [session(app_id, unique("tick"))])
    resent = api.send(key, [session(app_id, event_id)])

    assert counts(api, "attribution_store_expirations_total")["dedup"] > expired_before
    assert resent["accepted"] == 1


def test_touches_expire_with_event_time(api):
    app_id, key = api.register(click_window_s=600, fingerprint_window_s=600, impression_window_s=600)
    now = time.time()
    expired_before = counts(api, "attribution_store_expirations_total")["touch"]
    api.send(key, [click(app_id, "old-click", now - 3 * HOUR, gaid="g-1")])
    assert entries(api)["touch"] >= 1

    # An event of this app moves its event-time watermark past the click's window.
    api.send(key, [session(app_id, "now")])
    api.send(key, [install(app_id, "install", now, gaid="g-1")])

    assert counts(api, "attribution_store_expirations_total")["touch"] - expired_before == 1
    assert api.record(app_id, "install")["status"] == "organic"


def test_memory_gauge_follows_process(api):
    gauge = api.total("attribution_memory_usage_bytes")
    resident = api.total("process_resident_memory_bytes")

    assert gauge > 0
    assert wait_for(lambda: abs(api.total("attribution_memory_usage_bytes") - api.total("process_resident_memory_bytes")) < 0.2 * resident)
    assert abs(gauge - resident) < 0.5 * resident
