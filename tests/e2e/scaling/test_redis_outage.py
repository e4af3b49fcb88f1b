"""Redis stops and starts again in the middle of a replay through two workers.

The test runs its own redis-server on a free loopback port, with an
append-only file written on every command, and stops it with SIGTERM or kills
it with SIGKILL. While Redis is down, the service
returns 503 with Retry-After for event batches and 503 for /readyz, and the
replay client sends each rejected batch again. (A batch whose commit was
under way when Redis stopped waits for Redis instead, so the replay itself
may see no 503 at all.) Once Redis is back, without
restarting the service, the replay finishes and every event is counted once:
accepted exactly once in the metrics and in the replies, with one record per
install.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from ingestion.replay.client import IngestionClient
from tests.e2e.scaling.conftest import EventSource, events_by_status, scrape, wait_for
from tests.integration.redis.redis_servers import RedisServer
from tests.support.services import start_ingestion

pytestmark = pytest.mark.e2e

APPS = {"outage.android": "android", "outage.ios": "ios"}
BATCHES = 40
DOWN_SECONDS = 2.0


@pytest.mark.parametrize("stop", ["stop", "kill"], ids=["SIGTERM", "SIGKILL"])
def test_replay_survives_redis_restart(tmp_path, stop):
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.start()
    try:
        with start_ingestion(tmp_path, store=server.url(prefix="outage-"), workers=2) as service:
            client = IngestionClient(service.url, service.admin_token, max_attempts=30)
            for app_id, platform in APPS.items():
                assert client.register_app(app_id, platform)
            source = EventSource(APPS, batch_size=100)
            batches = [source.next_batch() for _ in range(BATCHES)]
            accepted = []
            duplicates = []

            def replay() -> None:
                for batch in batches:
                    result = client.post_events(batch)
                    accepted.append(result.accepted)
                    duplicates.append(result.duplicates)
                    time.sleep(0.05)

            sender = threading.Thread(target=replay)
            sender.start()
            wait_for(lambda: len(accepted) >= BATCHES // 4, 60, "a quarter of the batches")

            getattr(server, stop)()
            refused = httpx.post(
                service.url + "/v1/events", headers=service.headers,
                json=[{"event_id": "while-down", "app_id": "outage.android", "event_type": "session"}],
                timeout=30,
            )
            readiness = httpx.get(service.url + "/readyz", timeout=30)
            time.sleep(DOWN_SECONDS)
            server.start()

            sender.join(timeout=180)
            assert not sender.is_alive()
            wait_for(lambda: httpx.get(service.url + "/readyz").status_code == 200, 30, "readiness after the restart")
            samples = scrape(service)
            records = sum(1 for app_id in APPS for _ in client.iter_attributions(app_id))
            client.close()
            log = service.log_text()
    finally:
        server.kill()

    sent = sum(len(batch) for batch in batches)
    installs = sum(1 for batch in batches for event in batch if event["event_type"] == "install")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert readiness.status_code == 503
    assert readiness.json()["checks"]["store"] is False
    assert sum(accepted) == sent
    assert sum(duplicates) == 0
    assert events_by_status(samples)["accepted"] == sent
    assert records == installs
    errors = samples["attribution_store_errors_total"]
    assert sum(errors.values()) > 0
    assert "redis store call failed" in log
