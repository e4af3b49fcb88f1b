"""The load-test exporter over a real Locust environment and statistics."""

from __future__ import annotations

import pytest
from geventhttpclient import HTTPClient
from locust.env import Environment
from prometheus_client.parser import text_string_to_metric_families

from exporters.loadtest import LoadTestExporter


class Source:
    def __init__(self) -> None:
        self.rate = 1_250_000.0
        self.outcomes = {"accepted": 9_000, "duplicate": 1_000, "rejected": 0}
        self.target = 1_000_000.0
        self.verdict: dict[str, int] | None = {"throughput": 1, "p95_latency": 0, "success_rate": 1, "overall": 0}

    def events_per_second(self) -> float:
        return self.rate

    def events_by_outcome(self) -> dict[str, int]:
        return dict(self.outcomes)

    def target_events_per_second(self) -> float | None:
        return self.target

    def verdict_values(self) -> dict[str, int] | None:
        return self.verdict


@pytest.fixture
def environment():
    environment = Environment(user_classes=[])
    environment.create_local_runner()
    stats = environment.runner.stats
    for response_time in (10, 20, 30, 40):
        stats.log_request("POST", "/v1/events", response_time, 57)
    stats.log_request("GET", "/v1/customers", 5, 300)
    stats.log_error("POST", "/v1/events", "HTTPError('503 Server Error')")
    yield environment
    environment.runner.quit()


def _samples(exporter: LoadTestExporter) -> dict[tuple[str, tuple], float]:
    body, content_type = exporter.render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_locust_exporter_names_and_values(environment):
    samples = _samples(LoadTestExporter(environment, Source(), process_metrics=False))

    assert samples[("locust_users", ())] == 0
    assert samples[("locust_running", ())] == 0
    assert samples[("locust_workers_count", ())] == 0
    events = (("method", "POST"), ("name", "/v1/events"))
    aggregated = (("method", ""), ("name", "Aggregated"))
    assert samples[("locust_requests_num_requests", events)] == 4
    assert samples[("locust_requests_num_failures", events)] == 1
    assert samples[("locust_requests_num_requests", aggregated)] == 5
    assert samples[("locust_requests_avg_response_time", events)] == 25
    assert samples[("locust_requests_max_response_time", events)] == 40
    assert samples[("locust_requests_min_response_time", events)] == 10
    assert samples[("locust_requests_avg_content_length", events)] == 57
    assert ("locust_requests_current_rps", events) in samples
    assert ("locust_requests_current_fail_per_sec", events) in samples
    assert ("locust_requests_median_response_time", events) in samples
    assert samples[("locust_requests_fail_ratio", ())] == pytest.approx(0.2)
    for percentile in (50, 95, 99):
        assert (f"locust_requests_current_response_time_percentile_{percentile}", ()) in samples
    errors = [key for key in samples if key[0] == "locust_errors"]
    assert len(errors) == 1
    assert dict(errors[0][1])["error"] == "HTTPError('503 Server Error')"


def test_loadtest_figures_exposed(environment):
    samples = _samples(LoadTestExporter(environment, Source(), process_metrics=False))

    assert samples[("unmogrowp_loadtest_running", ())] == 0
    assert samples[("unmogrowp_loadtest_events_per_second", ())] == 1_250_000
    assert samples[("unmogrowp_loadtest_target_events_per_second", ())] == 1_000_000
    assert samples[("unmogrowp_loadtest_events_total", (("outcome", "accepted"),))] == 9_000
    assert samples[("unmogrowp_loadtest_events_total", (("outcome", "duplicate"),))] == 1_000
    assert samples[("unmogrowp_loadtest_events_total", (("outcome", "rejected"),))] == 0
    for criterion, value in {"throughput": 1, "p95_latency": 0, "success_rate": 1, "overall": 0}.items():
        assert samples[("unmogrowp_loadtest_verdict", (("criterion", criterion),))] == value


def test_events_total_survives_new_run(environment):
    source = Source()
    exporter = LoadTestExporter(environment, source, process_metrics=False)
    _samples(exporter)

    source.outcomes = {"accepted": 500, "duplicate": 0, "rejected": 0}  # a new run restarted the tally
    samples = _samples(exporter)

    assert samples[("unmogrowp_loadtest_events_total", (("outcome", "accepted"),))] == 9_500


def test_verdict_absent_until_judged(environment):
    source = Source()
    source.verdict = None

    samples = _samples(LoadTestExporter(environment, source, process_metrics=False))

    assert not [key for key in samples if key[0] == "unmogrowp_loadtest_verdict"]


def test_openmetrics_on_request(environment):
    exporter = LoadTestExporter(environment, Source(), process_metrics=False)

    body, content_type = exporter.render("application/openmetrics-text; version=1.0.0")

    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_process_metrics_of_master(environment):
    samples = _samples(LoadTestExporter(environment, Source()))

    assert "python_info" in {name for name, _ in samples}


def test_serves_metrics_over_http(environment):
    exporter = LoadTestExporter(environment, Source(), process_metrics=False)
    exporter.start("127.0.0.1", 0)
    try:
        client = HTTPClient("127.0.0.1", exporter.port)
        # Each body is read before the next request, because the client has one connection.
        metrics = client.get("/metrics")
        metrics_body = metrics.read()
        health = client.get("/healthz")
        health.read()
        missing = client.get("/other")
        missing.read()
        client.close()

        assert metrics.status_code == 200
        assert b"unmogrowp_loadtest_events_per_second 1.25e+06" in metrics_body
        assert health.status_code == 200
        assert missing.status_code == 404
    finally:
        exporter.stop()

    assert exporter.port is None
