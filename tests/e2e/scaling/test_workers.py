"""Two workers behind one port: every scrape counts the events of both, exactly.

Senders in several threads post generated funnels while the test scrapes
``/metrics``. Each scrape may land on either worker, yet no scrape may count
fewer events than the one before, and once the senders stop, a scrape counts
exactly the events they sent. A worker killed with SIGKILL is replaced in its
slot, and the totals go on from where they were.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx
import psutil
import pytest

from exporters.multiprocess import SlotReader, slot_path
from ingestion.replay.client import IngestionClient
from tests.e2e.scaling.conftest import (
    EventSource,
    events_by_status,
    metrics_directory,
    scrape,
    wait_for,
    wait_for_workers,
    worker_processes,
)
from tests.support.services import start_ingestion, unmogrowp_command

pytestmark = pytest.mark.e2e

APPS = {"scaling.android": "android", "scaling.ios": "ios"}
SENDERS = 4
BATCHES_PER_SENDER = 20
# Senders pause between batches so that the replay lasts long enough for ten scrapes.
PAUSE_SECONDS = 0.1


def send(service, source: EventSource, batches: int, sent: list[int], pause: float = 0.0) -> None:
    for _ in range(batches):
        batch = source.next_batch()
        # A new connection per batch: a worker keeps every connection it
        # accepts, so a few long-lived ones could all land on one worker.
        with IngestionClient(service.url, service.admin_token) as client:
            result = client.post_events(batch)
        assert result.rejected == 0, result.errors[:3]
        sent.append(len(batch))
        time.sleep(pause)


def register(service) -> None:
    with IngestionClient(service.url, service.admin_token) as client:
        for app_id, platform in APPS.items():
            assert client.register_app(app_id, platform)


def test_memory_store_rejects_workers(tmp_path):
    completed = subprocess.run(
        unmogrowp_command() + ["ingestion", "--workers", "2", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"UNMOGROWP_ADMIN_TOKEN": "t" * 32, "PATH": "/usr/bin:/bin"},
    )

    assert completed.returncode == 2
    assert "--workers 2 needs a shared store" in completed.stderr
    assert "--store redis://" in completed.stderr


def test_scrapes_never_drop_and_end_exact(tmp_path, redis_url):
    with start_ingestion(tmp_path, store=redis_url, workers=2) as service:
        wait_for_workers(service, 2)
        register(service)
        source = EventSource(APPS)
        sent: list[int] = []
        senders = [
            threading.Thread(target=send, args=(service, source, BATCHES_PER_SENDER, sent, PAUSE_SECONDS))
            for _ in range(SENDERS)
        ]
        for sender in senders:
            sender.start()

        counts_during = []
        while any(sender.is_alive() for sender in senders):
            counts_during.append(sum(events_by_status(scrape(service)).values()))
            time.sleep(0.1)
        for sender in senders:
            sender.join()
        final = events_by_status(scrape(service))

        assert len(counts_during) >= 10
        assert counts_during == sorted(counts_during)
        assert len(sent) == SENDERS * BATCHES_PER_SENDER
        assert final["accepted"] == sum(sent)
        assert final["duplicate"] == 0
        assert final["rejected"] == 0

        reader = SlotReader(metrics_directory(service))
        per_slot = []
        for slot in range(2):
            values = reader.values(slot_path(reader.directory, slot))
            per_slot.append(sum(found[0] for (kind, name, _), found in values.items() if name == "attribution_events_processed_total"))
        assert all(count > 0 for count in per_slot), per_slot
        assert sum(per_slot) == sum(sent)


def events_served_per_slot(service) -> list[int]:
    """Return the events each of the two workers counted, read from their metrics slots."""
    reader = SlotReader(metrics_directory(service))
    return [
        sum(found[0] for (_, name, _), found in reader.values(slot_path(reader.directory, slot)).items()
            if name == "attribution_events_processed_total")
        for slot in range(2)
    ]


def stats_accepted(service) -> int:
    """Return the accepted events of every app in one /v1/stats response, read on a new connection."""
    response = httpx.get(service.url + "/v1/stats", headers=service.headers, timeout=10)
    response.raise_for_status()
    return sum(app["events"]["accepted"] for app in response.json()["apps"].values())


def test_stats_from_either_worker_count_both(tmp_path, redis_url):
    with start_ingestion(tmp_path, store=redis_url, workers=2) as service:
        wait_for_workers(service, 2)
        register(service)
        source = EventSource(APPS)
        sent: list[int] = []
        send(service, source, 20, sent)
        served = events_served_per_slot(service)
        # Each worker saves its figures once a second; after that, any worker counts all of them.
        time.sleep(1.5)
        answers = [stats_accepted(service) for _ in range(8)]

    assert all(count > 0 for count in served), served
    assert answers == [sum(sent)] * 8


def test_registered_again_starts_from_zero(tmp_path, redis_url):
    app_id = "scaling.android"
    with start_ingestion(tmp_path, store=redis_url, workers=2) as service:
        wait_for_workers(service, 2)
        register(service)
        send(service, EventSource(APPS), 20, [])
        served = events_served_per_slot(service)
        time.sleep(1.5)
        deleted = httpx.delete(f"{service.url}/v1/apps/{app_id}", headers=service.headers, timeout=10)
        registered = httpx.post(service.url + "/v1/apps", json={"app_id": app_id, "platform": "android"},
                                headers=service.headers, timeout=10)
        # Both workers save their books again within a second; neither may count the old app's events.
        time.sleep(1.5)
        answers = []
        for _ in range(8):
            response = httpx.get(service.url + "/v1/stats", headers=service.headers, timeout=10)
            answers.append(response.json()["apps"][app_id]["events"])

    # Both workers took events of the old app, so the one that did not serve the DELETE has some.
    assert all(count > 0 for count in served), served
    assert deleted.status_code == 204
    assert registered.status_code == 201
    assert answers == [{"accepted": 0, "duplicate": 0, "rejected": 0}] * 8


def test_killed_worker_replaced_totals_kept(tmp_path, redis_url):
    with start_ingestion(tmp_path, store=redis_url, workers=2) as service:
        register(service)
        source = EventSource(APPS)
        sent: list[int] = []
        send(service, source, 6, sent)
        before = scrape(service)
        victim, survivor = worker_processes(service)

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        wait_for(lambda: len(worker_processes(service)) == 2, 30, "a replacement worker")
        replacement = next(process for process in worker_processes(service) if process.pid != survivor.pid)
        wait_for(lambda: "worker serving" in service.log_text().split(f'"pid":{replacement.pid}')[-1], 30,
                 "the replacement to serve")
        scrapes_after = [scrape(service) for _ in range(6)]
        send(service, source, 6, sent)
        final = scrape(service)

    assert replacement.pid != victim.pid
    for samples in scrapes_after:
        assert events_by_status(samples)["accepted"] == events_by_status(before)["accepted"]
        assert samples["attribution_worker_restarts_total"][()] == 1
    assert events_by_status(final)["accepted"] == sum(sent)
    assert before["attribution_worker_restarts_total"][()] == 0


def test_memory_gauge_covers_all_workers(tmp_path, redis_url):
    with start_ingestion(tmp_path, store=redis_url, workers=2) as service:
        wait_for_workers(service, 2)
        samples = scrape(service)
        workers = worker_processes(service)
        largest = max(process.memory_info().rss for process in workers)
        supervisor = psutil.Process(service.process.pid).memory_info().rss

    reported = samples["attribution_memory_usage_bytes"][()]
    assert len(workers) == 2
    assert reported > largest + supervisor


def test_app_registered_on_other_worker_usable(tmp_path, redis_url):
    with start_ingestion(tmp_path, store=redis_url, workers=2) as service:
        headers = service.headers
        keys = []
        for number in range(8):
            # New connections, so the registration and the events land on either worker.
            created = httpx.post(service.url + "/v1/apps", headers=headers, json={"app_id": f"fresh-{number}", "platform": "android"})
            assert created.status_code == 201
            keys.append(created.json()["ingest_key"])
            for token in (keys[-1], service.admin_token):
                response = httpx.post(
                    service.url + "/v1/events",
                    headers={"Authorization": f"Bearer {token}"},
                    json=[{"event_id": f"e-{number}-{token[:4]}", "app_id": f"fresh-{number}", "event_type": "session"}],
                )
                assert response.status_code == 200, response.text
                assert response.json()["accepted"] == 1
