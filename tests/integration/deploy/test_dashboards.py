"""Grafana provisioning and the four dashboards: PromQL, metric names, units, thresholds."""

from __future__ import annotations

import functools
import json
import logging
import re
import subprocess
import sys

import pytest

from customer_tracker.metrics import TrackerCollector
from services.logging import JsonFormatter
from tests.integration.deploy.deploy_files import (
    COMPOSE_FILE,
    DASHBOARD_DIR,
    DATASOURCES,
    DEPLOY,
    REPOSITORY,
    load_module,
    load_yaml,
    recording_rule_names,
)
from tests.integration.deploy.promql import metric_names, with_variables

# The ingestion service's metrics (the tracker's and the load-test exporter's
# are read from their code below). Histograms appear as their series.
INGESTION_METRICS = {
    "attribution_events_processed_total",
    "attribution_event_processing_duration_seconds_bucket",
    "attribution_event_processing_duration_seconds_count",
    "attribution_event_processing_duration_seconds_sum",
    "attribution_active_connections",
    "attribution_memory_usage_bytes",
    "attribution_installs_total",
    "attribution_store_entries",
}
# Every service of ours and the Locust master export these.
COMMON_METRICS = {"http_requests_total", "process_cpu_seconds_total"}
# Made by Prometheus itself, node-exporter and cAdvisor.
THIRD_PARTY_METRICS = {"up", "ALERTS", "node_cpu_seconds_total", "container_cpu_usage_seconds_total",
                       "container_memory_working_set_bytes"}

TITLES = {
    "performance-monitoring.json": "UnMoGrowP Performance Monitoring",
    "customer-success-metrics.json": "UnMoGrowP Customer Success Metrics",
    "load-testing-validation.json": "UnMoGrowP Load Testing Validation",
    "customer-onboarding.json": "UnMoGrowP Customer Onboarding",
}

# (dashboard file, panel title, threshold values expected on it): the platform's targets.
TARGET_THRESHOLDS = [
    ("performance-monitoring.json", "Event throughput", [1_000_000]),
    ("performance-monitoring.json", "P95 processing latency", [100]),
    ("performance-monitoring.json", "Uptime (last 24 h)", [99.9]),
    ("performance-monitoring.json", "Error rate", [0.001]),
    ("performance-monitoring.json", "Memory usage", [7e9]),
    ("customer-success-metrics.json", "Pilot customers", [5]),
    ("customer-success-metrics.json", "Average satisfaction", [90]),
    ("customer-success-metrics.json", "Pilot success rate", [60]),
    ("load-testing-validation.json", "Load-test throughput", [1_000_000]),
    ("load-testing-validation.json", "P95 latency under load", [100]),
    ("load-testing-validation.json", "Success rate", [99.9]),
    ("load-testing-validation.json", "Host CPU usage", [85]),
    ("customer-onboarding.json", "Time to launch by customer", [14, 21]),
    ("customer-onboarding.json", "Open support tickets by customer", [5]),
]


# Importing Locust monkey-patches the standard library with gevent, so the
# exporter renders its names in a child process.
LOADTEST_NAMES_SCRIPT = """
import re
from types import SimpleNamespace
from exporters.loadtest import LoadTestExporter

class NoLoadTest:
    def events_per_second(self): return 0.0
    def events_by_outcome(self): return {}
    def target_events_per_second(self): return None
    def verdict_values(self): return None

body, _ = LoadTestExporter(SimpleNamespace(runner=None), NoLoadTest(), process_metrics=False).render(None)
print("\\n".join(sorted(set(re.findall(r"^# TYPE (\\S+)", body.decode(), re.MULTILINE)))))
"""


@functools.cache
def loadtest_metric_names() -> frozenset[str]:
    """Return the names the load-test exporter renders, read from the exporter itself."""
    result = subprocess.run([sys.executable, "-c", LOADTEST_NAMES_SCRIPT], cwd=REPOSITORY, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return frozenset(result.stdout.split())


@functools.cache
def known_metrics() -> frozenset[str]:
    tracker = {family.name for family in TrackerCollector(lambda: [], monitor=None).describe()}
    return frozenset(INGESTION_METRICS | COMMON_METRICS | THIRD_PARTY_METRICS | tracker | loadtest_metric_names()
                     | recording_rule_names())


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panel_expressions() -> list[tuple[str, str, str]]:
    """Return (dashboard file, panel title, expression) of every query."""
    return [(name, panel["title"], query["expr"]) for name, dashboard in dashboards().items()
            for panel in dashboard["panels"] for query in panel["targets"]]


def test_dashboards_match_their_generator():
    generator = load_module(DEPLOY / "grafana" / "build_dashboards.py", "build_dashboards")
    rendered = generator.render_all()
    assert sorted(rendered) == sorted(TITLES)
    for name, text in rendered.items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from its generator; run .venv/bin/python deploy/grafana/build_dashboards.py")


def test_four_dashboards_with_unique_uids():
    found = dashboards()
    assert {name: dashboard["title"] for name, dashboard in found.items()} == TITLES
    uids = [dashboard["uid"] for dashboard in found.values()]
    assert len(set(uids)) == 4
    assert all(dashboard["tags"] == ["unmogrowp"] for dashboard in found.values())


def test_every_panel_has_queries_and_a_unit():
    for name, dashboard in dashboards().items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dashboard["panels"]:
            where = f"{name}: {panel['title']}"
            assert panel["targets"], where
            assert all(query["expr"].strip() for query in panel["targets"]), where
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, where
            assert panel["fieldConfig"]["defaults"]["unit"], where
            assert panel["description"], where


@pytest.mark.parametrize(("dashboard", "title", "expression"), panel_expressions(),
                         ids=[f"{title}/{index}" for index, (_, title, _) in enumerate(panel_expressions())])
def test_panel_promql_parses_and_uses_known_metrics(dashboard, title, expression):
    names = metric_names(with_variables(expression))
    assert names, f"{dashboard}: {title} selects no metric"
    unknown = names - known_metrics()
    assert unknown == set(), f"{dashboard}: {title} uses metrics nobody exports"


def test_metric_name_check_catches_a_typo():
    assert metric_names("sum(rate(attribution_events_procesed_total[1m]))") - known_metrics() == {
        "attribution_events_procesed_total"}


@pytest.mark.parametrize(("dashboard", "title", "values"), TARGET_THRESHOLDS)
def test_target_thresholds(dashboard, title, values):
    panels = {panel["title"]: panel for panel in dashboards()[dashboard]["panels"]}
    steps = panels[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps[1:]] == values


def test_guide_queries_are_on_the_dashboards():
    expressions = {expression for _, _, expression in panel_expressions()}
    for query in (
        "sum(rate(attribution_events_processed_total[1m]))",
        "histogram_quantile(0.95, sum(rate(attribution_event_processing_duration_seconds_bucket[5m])) by (le)) * 1000",
        "avg(customer_satisfaction_score)",
        "(successful_pilot_customers / total_pilot_customers) * 100",
        "up",
    ):
        assert query in expressions, query


def test_datasources_link_exemplars_and_logs_to_jaeger():
    sources = {source["uid"]: source for source in load_yaml(DATASOURCES)["datasources"]}
    assert set(sources) == {"prometheus", "loki", "jaeger"}
    assert sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "jaeger"}]
    assert sources["jaeger"]["type"] == "jaeger"
    assert sources["jaeger"]["url"] == "http://jaeger:16686"
    derived = sources["loki"]["jsonData"]["derivedFields"]
    assert [field["datasourceUid"] for field in derived] == ["jaeger"]


def test_derived_field_matches_a_service_log_line():
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("ingestion.api", logging.INFO, __file__, 1, "batch accepted", None, None)
    with tracer.start_as_current_span("request") as span:
        line = JsonFormatter("ingestion").format(record)
        trace_id = format(span.get_span_context().trace_id, "032x")

    derived = load_yaml(DATASOURCES)["datasources"][1]["jsonData"]["derivedFields"][0]
    match = re.search(derived["matcherRegex"], line)
    assert match is not None, line
    assert match.group(1) == trace_id


def test_dashboard_provider_reads_the_mounted_folder():
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")["providers"][0]
    mounts = load_yaml(COMPOSE_FILE)["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert provider["allowUiUpdates"] is False
