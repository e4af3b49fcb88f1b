"""The operations guide's validation queries, run against a real Prometheus scraping the service."""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.ingestion.helpers import Api, session, unique
from tests.support.services import free_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed: apt-get install -y prometheus provides it")

STARTUP_SECONDS = 60
DATA_SECONDS = 30


class Traffic:
    """Post a small batch every 0.2 s from a thread, so rates over the scrapes are above zero."""

    def __init__(self, api: Api) -> None:
        self.app_id, self.key = api.register()
        self.url = api.service.url
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stopping.wait(0.2):
                batch = [session(self.app_id, unique("s")) for _ in range(100)]
                response = client.post("/v1/events", json=batch, headers={"Authorization": f"Bearer {self.key}"})
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text}")
                    return

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        assert self.failures == [], "POST /v1/events failed while Prometheus scraped"


@pytest.fixture(scope="module")
def prometheus(service, api, tmp_path_factory) -> Iterator[httpx.Client]:
    """Run Prometheus scraping the service every second while traffic flows."""
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: ingestion\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{service.port}']}}]\n"
    )
    port = free_port()
    log_path = directory / "prometheus.log"
    with open(log_path, "wb") as log, Traffic(api):
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not has_data(client, "sum(rate(attribution_events_processed_total[1m])) > 0"):
                if process.poll() is not None:
                    pytest.fail(f"prometheus exited with {process.returncode}: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"prometheus saw no event rate within {STARTUP_SECONDS} s: {log_path.read_text()[-2000:]}")
                time.sleep(0.5)
            yield client
        finally:
            client.close()
            process.terminate()
            process.wait(timeout=30)


def query(client: httpx.Client, promql: str) -> list[dict]:
    response = client.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    return response.json()["data"]["result"]


def has_data(client: httpx.Client, promql: str) -> bool:
    try:
        return bool(query(client, promql))
    except httpx.TransportError:
        return False
    except httpx.HTTPStatusError as error:
        # Prometheus returns 503 to queries until its storage has started.
        if error.response.status_code == 503:
            return False
        raise


def single_value(client: httpx.Client, promql: str) -> float:
    """Wait until ``promql`` returns one series and return its value."""
    deadline = time.monotonic() + DATA_SECONDS
    while True:
        result = query(client, promql)
        if len(result) == 1 and math.isfinite(float(result[0]["value"][1])):
            return float(result[0]["value"][1])
        if time.monotonic() > deadline:
            pytest.fail(f"{promql} returned {result} after {DATA_SECONDS} s")
        time.sleep(0.5)


def test_event_throughput_query(prometheus):
    rate = single_value(prometheus, "sum(rate(attribution_events_processed_total[1m]))")

    # The traffic thread sends 100 events every 0.2 s or slower.
    assert 0 < rate <= 600


@pytest.mark.parametrize(
    "promql",
    [
        "histogram_quantile(0.95, sum(rate(attribution_event_processing_duration_seconds_bucket[5m])) by (le)) * 1000",
        "histogram_quantile(0.95,sum(rate(attribution_event_processing_duration_seconds_bucket[5m]))by(le))*1000",
    ],
    ids=["as printed", "as in the curl example"],
)
def test_p95_latency_query(prometheus, promql):
    p95_ms = single_value(prometheus, promql)

    # A 100-event batch on loopback takes well under the 2.5 s top bucket.
    assert 0 < p95_ms < 2500


def test_up_query(prometheus):
    result = query(prometheus, "up")

    assert [(series["metric"]["job"], series["value"][1]) for series in result] == [("ingestion", "1")]


@pytest.mark.parametrize(
    "promql",
    ["attribution_events_processed_total", "attribution_event_processing_duration_seconds_bucket"],
)
def test_metric_collection_queries(prometheus, promql):
    assert len(query(prometheus, promql)) > 0


def test_scrape_has_no_created_series(prometheus):
    assert query(prometheus, '{__name__=~".+_created"}') == []
