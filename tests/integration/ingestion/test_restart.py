"""Stopping and restarting a real ingestion service on the same data folder loses nothing acknowledged."""

from __future__ import annotations

import secrets
import signal
import threading
import time
from pathlib import Path

import httpx

from ingestion.store.segments import list_segments
from tests.integration.ingestion.helpers import Api, click, install, run_ingestion, session


# uvicorn (0.29 and later) finishes its graceful shutdown and then raises the
# signal it caught again, so a clean stop on SIGTERM exits with -SIGTERM.
CLEAN_EXITS = (0, -signal.SIGTERM)


def stop_gracefully(service) -> None:
    assert service.stop(signal.SIGTERM) in CLEAN_EXITS
    assert '"message":"service stopped"' in service.log_text()


class Restartable:
    """Start the service again and again on one data folder with one admin token."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.token = secrets.token_urlsafe(32)

    def run(self, **options):
        return run_ingestion(self.directory, admin_token=self.token, data_dir=self.directory / "data", **options)


def test_sigterm_keeps_records_dedup_touches(tmp_path):
    node = Restartable(tmp_path)
    now = time.time()
    with node.run() as service:
        api = Api(service)
        app_id, key = api.register()
        first = api.send(key, [
            click(app_id, "click-a", now - 600, gaid="device-a", network="net-a"),
            install(app_id, "install-a", now - 300, gaid="device-a"),
            click(app_id, "click-b", now - 200, gaid="device-b", network="net-b", campaign="spring"),
            session(app_id, "session-a", now - 100, gaid="device-a"),
        ])
        before = api.records(app_id)
        stop_gracefully(service)
        api.close()

    assert first["accepted"] == 4
    assert (tmp_path / "data" / "snapshot.msgpack").exists()
    assert list_segments(tmp_path / "data") == []

    with node.run() as service:
        api = Api(service)
        resent = api.send(key, [
            click(app_id, "click-a", now - 600, gaid="device-a", network="net-a"),
            install(app_id, "install-a", now - 300, gaid="device-a"),
            session(app_id, "session-a", now - 100, gaid="device-a"),
        ])
        api.send(key, [install(app_id, "install-b", now, gaid="device-b")])
        after = api.records(app_id)
        api.close()

    assert resent == {"accepted": 0, "duplicates": 3, "rejected": 0, "errors": []}
    assert after[0] == before[0]
    assert after[1]["install_event_id"] == "install-b"
    assert after[1]["touch_event_id"] == "click-b"
    assert after[1]["network"] == "net-b"
    assert after[1]["campaign"] == "spring"


def clicks_and_installs(app_id: str, batch: int, now: float) -> list[dict]:
    """Return 20 clicks and the 20 installs that each should be attributed to one of them."""
    devices = [f"device-{batch}-{index}" for index in range(20)]
    clicks = [click(app_id, f"click-{device}", now - 900, gaid=device) for device in devices]
    installs = [install(app_id, f"install-{device}", now - 600, gaid=device) for device in devices]
    return clicks + installs


def test_sigkill_loses_nothing_acknowledged(tmp_path):
    node = Restartable(tmp_path)
    now = time.time()
    with node.run() as service:
        api = Api(service)
        app_id, key = api.register()
        batches = [clicks_and_installs(app_id, batch, now) for batch in range(10)]
        for batch in batches:
            assert api.send(key, batch)["accepted"] == 40
        service.stop(signal.SIGKILL)
        api.close()
    [(_, segment)] = list_segments(tmp_path / "data")
    assert segment.stat().st_size > 0

    with node.run() as service:
        api = Api(service)
        duplicates = sum(api.send(key, batch)["duplicates"] for batch in batches)
        records = api.records(app_id)
        api.send(key, [click(app_id, "late-click", now - 300, gaid="device-new")])
        service.stop(signal.SIGKILL)
        api.close()

    assert duplicates == 400
    assert len(records) == 200
    assert {record["status"] for record in records} == {"attributed"}
    assert all(record["touch_event_id"] == record["install_event_id"].replace("install", "click") for record in records)

    # A second crash keeps what the first restart replayed plus what came after it.
    with node.run() as service:
        api = Api(service)
        api.send(key, [install(app_id, "late-install", now, gaid="device-new")])
        late = api.record(app_id, "late-install")
        assert len(api.records(app_id)) == 201
        api.close()

    assert late["touch_event_id"] == "late-click"


def test_sigterm_under_load_keeps_acknowledged(tmp_path):
    node = Restartable(tmp_path)
    acknowledged: list[list[dict]] = []
    lock = threading.Lock()

    with node.run() as service:
        api = Api(service)
        app_id, key = api.register()
        stop = threading.Event()

        def post_batches(worker: int) -> None:
            with httpx.Client(base_url=service.url, timeout=10) as client:
                for number in range(10_000):
                    if stop.is_set():
                        return
                    batch = [session(app_id, f"w{worker}-b{number}-e{index}") for index in range(50)]
                    try:
                        response = client.post("/v1/events", json=batch, headers={"Authorization": f"Bearer {key}"})
                    except httpx.TransportError:
                        return
                    if response.status_code == 200:
                        with lock:
                            acknowledged.append(batch)

        workers = [threading.Thread(target=post_batches, args=(number,)) for number in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 10
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop_gracefully(service)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        api.close()

    assert len(acknowledged) >= 20

    with node.run() as service:
        api = Api(service)
        outcomes = [api.send(key, batch) for batch in acknowledged]
        api.close()

    assert sum(outcome["accepted"] for outcome in outcomes) == 0
    assert sum(outcome["duplicates"] for outcome in outcomes) == 50 * len(acknowledged)


def test_restart_keeps_app_settings_and_revocation(tmp_path):
    node = Restartable(tmp_path)
    with node.run() as service:
        api = Api(service)
        kept_id, kept_key = api.register(platform="ios")
        deleted_id, deleted_key = api.register()
        patched = api.client.patch(f"/v1/apps/{kept_id}", json={"click_window_s": 120}, headers=api.admin)
        assert patched.status_code == 200
        api.send(kept_key, [session(kept_id, "kept-event")])
        api.send(deleted_key, [session(deleted_id, "deleted-event")])
        assert api.client.delete(f"/v1/apps/{deleted_id}", headers=api.admin).status_code == 204
        api.close()

    with node.run() as service:
        api = Api(service)
        app = api.client.get(f"/v1/apps/{kept_id}", headers=api.admin).json()
        revoked = api.post_events(deleted_key, [session(deleted_id, "after")])
        # The remaining app's duplicate filter survives the deleted app's removal.
        resent = api.send(kept_key, [session(kept_id, "kept-event"), session(kept_id, "deleted-event")])
        api.close()

    assert app["click_window_s"] == 120
    assert app["platform"] == "ios"
    assert revoked.status_code == 401
    assert resent == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}
