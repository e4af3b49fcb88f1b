"""A real Prometheus server scrapes a Registry in both formats and stores what it exposes."""

import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from exporters.exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, render
from exporters.metrics import Counter, Gauge, Histogram, Registry

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed: apt-get install -y prometheus provides it"
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
AWKWARD_VALUE = 'quote " backslash \\ end'


def build_registry():
    registry = Registry()
    events = Counter(
        "attribution_events_processed_total",
        "Events processed, by outcome.",
        ("app_id", "event_type", "platform", "status"),
        registry=registry,
    )
    events.labels("app1", "click", "ios", "accepted").inc(1000)
    events.labels(AWKWARD_VALUE, "click", "web", "rejected").inc(2)
    duration = Histogram(
        "attribution_event_processing_duration_seconds",
        "Processing time of the request that carried each event.",
        ("endpoint",),
        registry=registry,
    )
    duration.labels("/v1/events").observe(0.04, count=990, exemplar={"trace_id": TRACE_ID})
    duration.labels("/v1/events").observe(0.3, count=10)
    Gauge("attribution_active_connections", "Open client connections.", registry=registry).set(3)
    return registry


class MetricsServer:
    """Serve ``/metrics`` (negotiated) and ``/text`` (always text 0.0.4) on loopback."""

    def __init__(self, registry):
        self.accept_headers = []
        self.content_types = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                accept = self.headers.get("Accept")
                if self.path == "/metrics":
                    body, content_type = render(registry, accept)
                    server.accept_headers.append(accept)
                    server.content_types.append(content_type)
                elif self.path == "/text":
                    body, content_type = render(registry, None)
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """Run Prometheus against a MetricsServer until both jobs have been scraped."""
    directory = tmp_path_factory.mktemp("prometheus")
    registry = build_registry()
    with MetricsServer(registry) as server:
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: negotiated\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
            "  - job_name: text\n"
            "    metrics_path: /text\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
        )
        port = free_port()
        log = (directory / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"prometheus exited with {process.returncode}: "
                        + (directory / "prometheus.log").read_text()[-2000:]
                    )
                try:
                    result = query(client, 'count(up{job=~"negotiated|text"} == 1)')
                    if result and float(result[0]["value"][1]) == 2:
                        break
                except httpx.TransportError:
                    pass
                except httpx.HTTPStatusError as error:
                    # Prometheus returns 503 to queries until its storage has started.
                    if error.response.status_code != 503:
                        raise
                if time.monotonic() > deadline:
                    pytest.fail("prometheus did not scrape both jobs within 60 s")
                time.sleep(0.5)
            yield client, server, registry
        finally:
            client.close()
            process.terminate()
            process.wait(timeout=30)
            log.close()


def query(client, promql):
    response = client.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    return response.json()["data"]["result"]


def value_of(client, promql):
    result = query(client, promql)
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_negotiates_openmetrics(scraped):
    _, server, _ = scraped

    assert "application/openmetrics-text" in server.accept_headers[0]
    assert server.content_types[0] == CONTENT_TYPE_OPENMETRICS
    assert CONTENT_TYPE_TEXT != CONTENT_TYPE_OPENMETRICS


@pytest.mark.parametrize("job", ["negotiated", "text"])
def test_prometheus_stores_counter(scraped, job):
    client, _, _ = scraped

    accepted = value_of(
        client,
        f'attribution_events_processed_total{{job="{job}",app_id="app1",status="accepted"}}',
    )

    assert accepted == 1000


@pytest.mark.parametrize("job", ["negotiated", "text"])
def test_prometheus_stores_escaped_label(scraped, job):
    client, _, _ = scraped

    result = query(client, f'attribution_events_processed_total{{job="{job}",status="rejected"}}')

    assert [series["metric"]["app_id"] for series in result] == [AWKWARD_VALUE]
    assert float(result[0]["value"][1]) == 2


@pytest.mark.parametrize("job", ["negotiated", "text"])
def test_prometheus_histogram_quantile(scraped, job):
    client, _, registry = scraped
    histogram = registry.get("attribution_event_processing_duration_seconds")

    count = value_of(
        client, f'attribution_event_processing_duration_seconds_count{{job="{job}"}}'
    )
    under_100ms = value_of(
        client, f'attribution_event_processing_duration_seconds_bucket{{job="{job}",le="0.1"}}'
    )
    p95_ms = value_of(
        client,
        "histogram_quantile(0.95, sum(attribution_event_processing_duration_seconds_bucket"
        f'{{job="{job}"}}) by (le)) * 1000',
    )

    assert count == 1000
    assert under_100ms == 990
    # Rank 950 of 1000 lies in the (0.025, 0.05] bucket, which contains the first 990.
    assert p95_ms == pytest.approx((0.025 + 0.025 * 950 / 990) * 1000)
    assert p95_ms == pytest.approx(histogram.labels("/v1/events").quantile(0.95) * 1000)


def test_prometheus_stores_no_created_series(scraped):
    client, _, _ = scraped

    assert query(client, '{__name__=~".*_created"}') == []


def test_prometheus_stores_process_metrics(scraped):
    client, _, _ = scraped

    assert value_of(client, 'process_resident_memory_bytes{job="negotiated"}') > 0


def test_prometheus_stores_exemplar(scraped):
    client, _, _ = scraped
    now = time.time()

    response = client.get(
        "/api/v1/query_exemplars",
        params={
            "query": "attribution_event_processing_duration_seconds_bucket",
            "start": now - 600,
            "end": now + 60,
        },
    )
    response.raise_for_status()
    series = response.json()["data"]

    exemplars = [
        (entry["seriesLabels"]["job"], exemplar["labels"]["trace_id"], float(exemplar["value"]))
        for entry in series
        for exemplar in entry["exemplars"]
    ]
    assert ("negotiated", TRACE_ID, 0.04) in exemplars
    assert all(job != "text" for job, _, _ in exemplars)
