"""The ingestion service with several workers on Redis, and ways to read what it counted.

Services run as real processes on loopback ports. Unless a test starts its
own redis-server, the store is database 12 of the Redis server on
127.0.0.1:6379 under a key prefix of the test, deleted afterwards.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.generator import build_template
from tests.integration.redis.redis_servers import SHARED_REDIS, delete_prefix
from tests.support.services import RunningService

SHARED_DB = 12
EVENTS_METRIC = "attribution_events_processed"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A store URL on the shared Redis server with a key prefix of this test."""
    prefix = f"umge2e-{secrets.token_hex(4)}-"
    yield f"redis://{SHARED_REDIS[0]}:{SHARED_REDIS[1]}/{SHARED_DB}?prefix={prefix}"
    delete_prefix(*SHARED_REDIS, SHARED_DB, prefix)


def scrape(service: RunningService) -> dict[str, dict[tuple, float]]:
    """Return every sample of one ``/metrics`` scrape: name -> {sorted label pairs: value}."""
    response = httpx.get(service.url + "/metrics", timeout=10)
    response.raise_for_status()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def events_by_status(samples: dict[str, dict[tuple, float]]) -> dict[str, float]:
    """Return attribution_events_processed_total summed by status."""
    totals = {"accepted": 0.0, "duplicate": 0.0, "rejected": 0.0}
    for labels, value in samples.get(EVENTS_METRIC + "_total", {}).items():
        totals[dict(labels)["status"]] += value
    return totals


def worker_processes(service: RunningService) -> list[psutil.Process]:
    """Return the supervisor's worker processes (not multiprocessing's resource tracker)."""
    workers = []
    for child in psutil.Process(service.process.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def metrics_directory(service: RunningService) -> Path:
    """Return the folder of the workers' metric slots, from the supervisor's log."""
    for line in service.log_text().splitlines():
        if '"supervisor started"' in line:
            return Path(json.loads(line)["metrics_dir"])
    raise AssertionError("the supervisor did not log its metrics folder")


def wait_for_workers(service: RunningService, count: int) -> None:
    """Wait until ``count`` workers have completed their startup (readiness needs only one)."""
    wait_for(lambda: service.log_text().count("Application startup complete.") >= count, 30, f"{count} workers to start")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


class EventSource:
    """Batches of generated funnels with fresh ids, for any number of sending threads."""

    def __init__(self, apps: dict[str, str], batch_size: int = 200) -> None:
        self.templates = [build_template(app_id, platform, batch_size, seed=number) for number, (app_id, platform) in enumerate(apps.items())]
        self.apps = apps
        self._sequence = 0
        self._lock = threading.Lock()

    def next_batch(self) -> list[dict]:
        with self._lock:
            sequence = self._sequence
            self._sequence += 1
        template = self.templates[sequence % len(self.templates)]
        return template.materialize(sequence)[0]
