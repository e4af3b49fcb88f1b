"""Build the four Grafana dashboards of the monitoring stack as JSON files.

The dashboards are written as code here and committed as the JSON that
Grafana provisions from deploy/grafana/dashboards/. After changing this file,
run

    .venv/bin/python deploy/grafana/build_dashboards.py

and commit both. A test fails when the committed JSON differs from what this
script writes.

The thresholds are the platform's targets. Technical: 1,000,000 events/s,
p95 latency below 100 ms, uptime and request success at least 99.9 %, error
rate below 0.1 %. Customer: satisfaction at least 90 %, 5 pilot customers, a
pilot success rate of at least 60 %, attribution accuracy at least 99 %, cost
savings of 30 to 50 %, time to launch under 14 days (green) or 21 days
(yellow), and fewer than 5 open support tickets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
GRID_WIDTH = 24

# Routes that are probes or scrapes, left out of API request figures.
PROBE_ROUTES = "/metrics|/healthz|/readyz|/health"
EVENTS_PER_SECOND = "suffix: events/s"
DAYS = "suffix: days"


# -- building blocks ---------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False,
           heatmap: bool = False, exemplar: bool = False) -> dict:
    """Return a Prometheus query of a panel."""
    query = {
        "datasource": PROMETHEUS,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "exemplar": exemplar,
    }
    if table:
        query["format"] = "table"
    if heatmap:
        query["format"] = "heatmap"
    return query


def thresholds(base: str, *steps: tuple[str, float]) -> dict:
    """Return absolute thresholds: `base` below the first step, then each (colour, from value)."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}] + [{"color": color, "value": value} for color, value in steps],
    }


# Value mappings of 0/1 gauges.
UP_DOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]
PASS_FAIL = [{"type": "value", "options": {"0": {"text": "FAIL", "color": "red"}, "1": {"text": "PASS", "color": "green"}}}]
MET_NOT_MET = [{"type": "value", "options": {"0": {"text": "not met", "color": "red"}, "1": {"text": "met", "color": "green"}}}]
RUNNING_IDLE = [{"type": "value", "options": {"0": {"text": "idle", "color": "text"}, "1": {"text": "running", "color": "blue"}}}]


def panel(kind: str, title: str, targets: list[dict], *, unit: str, width: int, height: int,
          description: str, steps: dict | None = None, decimals: int | None = None,
          minimum: float | None = None, maximum: float | None = None, mappings: list | None = None,
          options: dict | None = None, custom: dict | None = None) -> dict:
    """Return one panel; its id and position are set when the dashboard is laid out."""
    defaults: dict = {"unit": unit}
    if steps is not None:
        defaults["thresholds"] = steps
    if decimals is not None:
        defaults["decimals"] = decimals
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if mappings is not None:
        defaults["mappings"] = mappings
    if custom is not None:
        defaults["custom"] = custom
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": PROMETHEUS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
        "gridPos": {"w": width, "h": height},
    }


def stat(title: str, expr: str, *, unit: str, description: str, steps: dict, width: int = 6,
         decimals: int | None = None, mappings: list | None = None, legend: str = "") -> dict:
    return panel(
        "stat", title, [target(expr, legend, instant=True)], unit=unit, width=width, height=5,
        description=description, steps=steps, decimals=decimals, mappings=mappings,
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "background", "graphMode": "none", "textMode": "auto"},
    )


def gauge(title: str, expr: str, *, unit: str, description: str, steps: dict, minimum: float,
          maximum: float, width: int = 6) -> dict:
    return panel(
        "gauge", title, [target(expr, instant=True)], unit=unit, width=width, height=5,
        description=description, steps=steps, minimum=minimum, maximum=maximum,
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "showThresholdMarkers": True},
    )


def bars(title: str, targets: list[dict], *, unit: str, description: str, steps: dict,
         width: int = 12, height: int = 8, minimum: float | None = None, maximum: float | None = None) -> dict:
    return panel(
        "bargauge", title, targets, unit=unit, width=width, height=height, description=description,
        steps=steps, minimum=minimum, maximum=maximum,
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True},
    )


def graph(title: str, targets: list[dict], *, unit: str, description: str, steps: dict | None = None,
          width: int = 12, height: int = 8, stacked: bool = False, minimum: float | None = 0) -> dict:
    """Return a time series panel; thresholds, when given, are drawn as dashed lines."""
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        "thresholdsStyle": {"mode": "dashed" if steps is not None else "off"},
    }
    return panel(
        "timeseries", title, targets, unit=unit, width=width, height=height, description=description,
        steps=steps, minimum=minimum, custom=custom,
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "desc"}},
    )


def table(title: str, expr: str, *, description: str, width: int = 12, height: int = 8,
          unit: str = "short", mappings: list | None = None, hide: tuple[str, ...] = ()) -> dict:
    excluded = {name: True for name in ("Time", "__name__", *hide)}
    result = panel(
        "table", title, [target(expr, instant=True, table=True)], unit=unit, width=width, height=height,
        description=description, mappings=mappings,
        custom={"cellOptions": {"type": "color-text"}} if mappings else None,
        options={"showHeader": True, "cellHeight": "sm"},
    )
    result["transformations"] = [{"id": "organize", "options": {"excludeByName": excluded}}]
    return result


def heatmap(title: str, expr: str, *, description: str, width: int = 12, height: int = 8) -> dict:
    return panel(
        "heatmap", title, [target(expr, "{{le}}", heatmap=True)], unit="s", width=width, height=height,
        description=description,
        options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                 "color": {"mode": "scheme", "scheme": "Oranges"}},
    )


def customer_variable() -> dict:
    """Return the `customer` variable: one, several or all customer ids."""
    return {
        "name": "customer",
        "label": "Customer",
        "type": "query",
        "datasource": PROMETHEUS,
        "query": {"query": "label_values(customer_onboarding_phase, customer_id)", "refId": "customers"},
        "definition": "label_values(customer_onboarding_phase, customer_id)",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def lay_out(panels: list[dict]) -> list[dict]:
    """Number the panels and place them left to right in rows of 24 columns."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        width, height = item["gridPos"]["w"], item["gridPos"]["h"]
        if x + width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        item["id"] = number
        item["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
        for index, query in enumerate(item["targets"]):
            query["refId"] = chr(ord("A") + index)
        x += width
        row_height = max(row_height, height)
    return panels


def dashboard(uid: str, title: str, description: str, panels: list[dict], *,
              variables: tuple[dict, ...] = (), refresh: str = "30s", time_from: str = "now-1h") -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["unmogrowp"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "links": [{"title": "UnMoGrowP dashboards", "type": "dashboards", "tags": ["unmogrowp"], "asDropdown": True}],
        "panels": lay_out(panels),
    }


# -- the dashboards ------------------------------------------------------------


def performance_monitoring() -> dict:
    latency = "attribution_event_processing_duration_seconds_bucket"
    panels = [
        stat("Event throughput", "sum(rate(attribution_events_processed_total[1m]))", unit=EVENTS_PER_SECOND,
             description="Events judged per second over the last minute (accepted, duplicate and rejected). "
                         "Target: at least 1,000,000 events/s under full load.",
             steps=thresholds("red", ("green", 1_000_000))),
        gauge("P95 processing latency",
              f"histogram_quantile(0.95, sum(rate({latency}[5m])) by (le)) * 1000", unit="ms",
              description="95th percentile of per-event processing time over the last 5 minutes. "
                          "Target: below 100 ms.",
              steps=thresholds("green", ("red", 100)), minimum=0, maximum=200),
        stat("Uptime (last 24 h)",
             'min(job:up:avg_over_time1d{job=~"ingestion|customer-success-tracker"}) * 100', unit="percent",
             description="Share of successful scrapes of the least available service over the last day. "
                         "Target: at least 99.9 %.",
             steps=thresholds("red", ("green", 99.9)), decimals=3),
        stat("Attribution accuracy", "avg(attribution_accuracy_percent)", unit="percent",
             description="Mean over customers of the latest reconciliation against their reference "
                         "attributions. Target: at least 99 %.",
             steps=thresholds("red", ("green", 99)), decimals=2),
        graph("Event processing rate", [
            target("sum(rate(attribution_events_processed_total[$__rate_interval]))", "all events"),
            target("sum by (status) (rate(attribution_events_processed_total[$__rate_interval]))", "{{status}}"),
        ], unit=EVENTS_PER_SECOND, steps=thresholds("red", ("green", 1_000_000)),
            description="Events judged per second, in total and by status. The dashed line is the "
                        "1,000,000 events/s target."),
        graph("Event processing latency", [
            target(f"histogram_quantile(0.50, sum(rate({latency}[$__rate_interval])) by (le)) * 1000", "p50"),
            target(f"histogram_quantile(0.95, sum(rate({latency}[$__rate_interval])) by (le)) * 1000", "p95",
                   exemplar=True),
            target(f"histogram_quantile(0.99, sum(rate({latency}[$__rate_interval])) by (le)) * 1000", "p99"),
        ], unit="ms", steps=thresholds("green", ("red", 100)),
            description="Per-event processing time percentiles. Exemplars on p95 link to the trace "
                        "of an observed request in Jaeger. The dashed line is the 100 ms target."),
        graph("Error rate", [
            target("job:attribution_events_rejected:ratio_rate5m", "{{job}} rejected events"),
            target("job:http_requests_5xx:ratio_rate5m", "{{job}} HTTP 5xx"),
        ], unit="percentunit", steps=thresholds("green", ("red", 0.001)), width=8,
            description="Share of events rejected and share of API requests answered 5xx, over "
                        "5 minutes. Target: below 0.1 % (dashed line)."),
        graph("API availability", [
            target("job:http_requests_availability:ratio_rate5m", "{{job}}"),
        ], unit="percentunit", steps=thresholds("red", ("green", 0.999)), width=8, minimum=None,
            description="Share of API requests (probes left out) answered without a 5xx status, over "
                        "5 minutes. Objective: 99.9 %."),
        graph("Error budget burn rate (1 h)", [
            target("job:slo_availability_errors:ratio_rate1h / 0.001", "{{job}} availability"),
            target("job:slo_latency_slow_events:ratio_rate1h / 0.05", "{{job}} latency"),
        ], unit="short", steps=thresholds("green", ("yellow", 1), ("red", 14.4)), width=8,
            description="How many times faster than sustainable each 30-day error budget is spent over "
                        "the last hour: 1 spends it in exactly 30 days; 14.4 pages."),
        graph("Memory usage", [
            target("attribution_memory_usage_bytes", "{{job}} {{instance}}"),
        ], unit="decbytes", steps=thresholds("green", ("red", 7e9)), width=8,
            description="Resident memory of the ingestion service, all workers together. "
                        "Limit: 7 GB (dashed line)."),
        graph("Active connections", [
            target("sum by (job) (attribution_active_connections)", "{{job}}"),
        ], unit="short", width=8, description="Open client connections of the ingestion service."),
        graph("Installs by match type", [
            target("sum by (match_type, status) (rate(attribution_installs_total[$__rate_interval]))",
                   "{{status}} {{match_type}}"),
        ], unit="suffix: installs/s", width=8, stacked=True,
            description="Installs per second by attribution status and the tier that matched them."),
        graph("API requests by route and status", [
            target(f'sum by (job, route, status) (rate(http_requests_total{{route!~"{PROBE_ROUTES}"}}'
                   f"[$__rate_interval]))", "{{job}} {{route}} {{status}}"),
        ], unit="reqps", description="API requests per second, probes and scrapes left out."),
        stat("Scrape targets", "up", unit="short", legend="{{job}}", width=12, mappings=UP_DOWN,
             description="Every target Prometheus scrapes. The load-test exporter is down between "
                         "load campaigns.",
             steps=thresholds("red", ("green", 1))),
        table("Firing alerts", 'ALERTS{alertstate="firing"}', width=24, height=6, hide=("Value", "alertstate"),
              description="Alerts Prometheus fires now. Each alert's runbook is linked from its "
                          "notification; see docs/runbooks.md."),
    ]
    return dashboard(
        "unmogrowp-performance", "UnMoGrowP Performance Monitoring",
        "Is the platform meeting its technical targets: throughput, latency, uptime, errors?", panels)


def customer_success_metrics() -> dict:
    selected = 'customer_id=~"$customer"'
    panels = [
        stat("Pilot customers", "max(total_pilot_customers)", unit="short",
             description="Customers in the pilot programme. Target: 5.",
             steps=thresholds("red", ("green", 5))),
        stat("Successful pilots", "max(successful_pilot_customers)", unit="short",
             description="Pilot customers that meet every success criterion.",
             steps=thresholds("red", ("green", 1))),
        stat("Pilot success rate", "(successful_pilot_customers / total_pilot_customers) * 100", unit="percent",
             description="Share of pilot customers meeting every success criterion. Below 60 % warns.",
             steps=thresholds("red", ("green", 60)), decimals=1),
        gauge("Average satisfaction", "avg(customer_satisfaction_score)", unit="percent",
              description="Mean satisfaction over all customers. Target: at least 90 %.",
              steps=thresholds("red", ("green", 90)), minimum=0, maximum=100),
        bars("Satisfaction by customer", [target(f"customer_satisfaction_score{{{selected}}}", "{{company_name}}",
                                                 instant=True)],
             unit="percent", minimum=0, maximum=100, steps=thresholds("red", ("green", 90)),
             description="Mean of each customer's latest surveys. Target: at least 90 %."),
        bars("Attribution accuracy by customer", [target(f"attribution_accuracy_percent{{{selected}}}",
                                                         "{{customer_id}}", instant=True)],
             unit="percent", minimum=90, maximum=100, steps=thresholds("red", ("green", 99)),
             description="Latest reconciliation of each customer's reference attributions. "
                         "Target: at least 99 %."),
        bars("Cost savings by customer", [target(f"customer_cost_savings_percent{{{selected}}}", "{{customer_id}}",
                                                 instant=True)],
             unit="percent", minimum=0, maximum=100, steps=thresholds("red", ("green", 30)),
             description="Saving on the monthly attribution cost against the previous platform. "
                         "Target: 30 to 50 %."),
        bars("API latency p95 by customer", [
            target(f'customer_api_latency_ms{{{selected}, percentile="p95"}}', "{{customer_id}}", instant=True),
        ], unit="ms", minimum=0, steps=thresholds("green", ("red", 100)),
            description="p95 event processing latency of each customer's apps. Target: below 100 ms."),
        bars("Uptime by customer", [target(f"customer_uptime_percent{{{selected}}}", "{{customer_id}}",
                                           instant=True)],
             unit="percent", minimum=99, maximum=100, steps=thresholds("red", ("green", 99.9)),
             description="Share of successful polls of the ingestion service since each customer's "
                         "kickoff (at most 30 days). Target: at least 99.9 %."),
        graph("Satisfaction over time", [
            target(f"customer_satisfaction_score{{{selected}}}", "{{company_name}}"),
            target("avg(customer_satisfaction_score)", "average"),
        ], unit="percent", steps=thresholds("red", ("green", 90)), minimum=None,
            description="Satisfaction per customer and on average. The dashed line is the 90 % target."),
        table("Pilot success criteria", f"customer_pilot_criterion_met{{{selected}}}", width=24,
              mappings=MET_NOT_MET, hide=("job", "instance"),
              description="Each pilot customer's success criteria: met or not met. A technical "
                          "criterion not met needs action."),
    ]
    return dashboard(
        "unmogrowp-customer-success", "UnMoGrowP Customer Success Metrics",
        "Are pilot customers satisfied and getting the promised business impact?", panels,
        variables=(customer_variable(),), refresh="1m", time_from="now-7d")


def load_testing_validation() -> dict:
    latency = "attribution_event_processing_duration_seconds_bucket"
    panels = [
        stat("Campaign", "max(unmogrowp_loadtest_running)", unit="short", mappings=RUNNING_IDLE, width=4,
             description="Whether a load campaign spawns or runs users now.",
             steps=thresholds("text")),
        stat("Load-test throughput", "sum(unmogrowp_loadtest_events_per_second)", unit=EVENTS_PER_SECOND,
             width=5, description="Events per second the ingestion service answered for, as the load test "
                                  "counts them (last 10 s). Target: 1,000,000 events/s.",
             steps=thresholds("red", ("green", 1_000_000))),
        stat("Ingestion throughput", "sum(rate(attribution_events_processed_total[1m]))", unit=EVENTS_PER_SECOND,
             width=5, description="Events per second the ingestion service processed, as it counts them.",
             steps=thresholds("red", ("green", 1_000_000))),
        stat("P95 latency under load", "max(locust_requests_current_response_time_percentile_95)", unit="ms",
             width=5, description="p95 response time of all load-test requests over the last 10 s. "
                                  "Target: below 100 ms.",
             steps=thresholds("green", ("red", 100))),
        stat("Success rate",
             '100 * (1 - sum(locust_requests_num_failures{name="Aggregated"}) '
             '/ sum(locust_requests_num_requests{name="Aggregated"}))',
             unit="percent", width=5, decimals=3,
             description="Share of load-test requests that succeeded in this run. Target: above 99.9 %.",
             steps=thresholds("red", ("green", 99.9))),
        stat("Verdict", "unmogrowp_loadtest_verdict", unit="short", legend="{{criterion}}", width=24,
             mappings=PASS_FAIL, steps=thresholds("red", ("green", 1)),
             description="The load test's verdict per criterion over its judged stages (ramps left "
                         "out); final once the run ends."),
        graph("Throughput against target", [
            target("sum(unmogrowp_loadtest_events_per_second)", "answered (load test)"),
            target("sum(rate(attribution_events_processed_total[$__rate_interval]))", "processed (ingestion)"),
            target("max(unmogrowp_loadtest_target_events_per_second)", "campaign target"),
        ], unit=EVENTS_PER_SECOND, steps=thresholds("red", ("green", 1_000_000)),
            description="Events per second as the load test and the ingestion service count them, and "
                        "the campaign's target. The dashed line is 1,000,000 events/s."),
        graph("Latency under load", [
            target("locust_requests_current_response_time_percentile_50", "p50 (load test)"),
            target("locust_requests_current_response_time_percentile_95", "p95 (load test)"),
            target("locust_requests_current_response_time_percentile_99", "p99 (load test)"),
            target(f"histogram_quantile(0.95, sum(rate({latency}[$__rate_interval])) by (le)) * 1000",
                   "p95 (ingestion, per event)"),
        ], unit="ms", steps=thresholds("green", ("red", 100)),
            description="Response time percentiles seen by the load test, and the ingestion service's "
                        "own p95 per event. The dashed line is the 100 ms target."),
        graph("Users and request rate", [
            target("locust_users", "users"),
            target('sum(locust_requests_current_rps{name!="Aggregated"})', "requests/s"),
            target('sum(locust_requests_current_fail_per_sec{name!="Aggregated"})', "failures/s"),
        ], unit="short", description="Simulated users and the request rate they produce (last 10 s)."),
        heatmap("Latency distribution",
                f"sum by (le) (increase({latency}[$__rate_interval]))",
                description="Events per processing-time bucket of the ingestion service."),
        graph("Host CPU usage", [
            target('100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[$__rate_interval])))', "host"),
        ], unit="percent", steps=thresholds("green", ("red", 85)), width=8,
            description="CPU busy share of the host. Healthy below 85 % (dashed line)."),
        graph("Container CPU", [
            target('sum by (name) (rate(container_cpu_usage_seconds_total{name=~".+"}[$__rate_interval]))',
                   "{{name}}"),
        ], unit="short", width=8, description="CPU cores used by each container (cAdvisor)."),
        graph("Container memory", [
            target('container_memory_working_set_bytes{name=~".+"}', "{{name}}"),
        ], unit="bytes", width=8, description="Working-set memory of each container (cAdvisor)."),
        graph("Service process CPU", [
            target('rate(process_cpu_seconds_total{job=~"ingestion|customer-success-tracker|loadtest-exporter"}'
                   "[$__rate_interval])", "{{job}}"),
        ], unit="short", width=12, description="CPU cores used by the services and the Locust master."),
        graph("Locust workers", [
            target("locust_workers_running_count", "running"),
            target("locust_workers_hatching_count", "spawning"),
            target("locust_workers_missing_count", "missing"),
        ], unit="short", width=12, description="Workers connected to the Locust master, by state."),
        table("Load-test errors", "locust_errors", width=24, height=6, hide=("job", "instance"),
              description="Occurrences of each failure message in the current run."),
    ]
    return dashboard(
        "unmogrowp-load-testing", "UnMoGrowP Load Testing Validation",
        "Does the platform hold its targets under a load campaign?", panels, refresh="10s", time_from="now-30m")


def customer_onboarding() -> dict:
    selected = 'customer_id=~"$customer"'
    phases = ("discovery", "setup", "launch", "live")
    panels = [
        bars("Onboarding pipeline", [
            target(f'sum(customer_onboarding_phase{{phase="{phase}"}})', phase, instant=True) for phase in phases
        ], unit="short", minimum=0, steps=thresholds("blue"), width=12, height=7,
            description="Customers in each onboarding phase: discovery, setup, launch, live."),
        stat("Launched customers", "sum(customer_launched)", unit="short", width=4,
             description="Customers that reached the launch or live phase.",
             steps=thresholds("text")),
        stat("Median time to launch", f"quantile(0.5, customer_time_to_launch_seconds{{{selected}}}) / 86400",
             unit=DAYS, width=4,
             decimals=1, description="Days from kickoff to launch (so far, for customers not yet launched). "
                                     "Green under 14 days, yellow under 21, red after.",
             steps=thresholds("green", ("yellow", 14), ("red", 21))),
        stat("Open support tickets", "sum(customer_open_support_tickets)", unit="short", width=4,
             description="Open support tickets over all customers.",
             steps=thresholds("green", ("red", 5))),
        bars("Time to launch by customer", [
            target(f"customer_time_to_launch_seconds{{{selected}}} / 86400", "{{customer_id}}", instant=True),
        ], unit=DAYS, minimum=0, maximum=30, steps=thresholds("green", ("yellow", 14), ("red", 21)),
            description="Days from kickoff to launch, or elapsed so far. Green under 14 days, yellow "
                        "under 21, red after."),
        bars("Open support tickets by customer", [
            target(f"customer_open_support_tickets{{{selected}}}", "{{customer_id}}", instant=True),
        ], unit="short", minimum=0, steps=thresholds("green", ("red", 5)),
            description="Fewer than 5 open tickets is healthy."),
        bars("Health score by customer", [
            target(f"customer_health_score{{{selected}}}", "{{customer_id}}", instant=True),
        ], unit="short", minimum=0, maximum=100, steps=thresholds("red", ("yellow", 50), ("green", 75)),
            description="Weighted health score (0 to 100) of satisfaction, time to launch, support "
                        "tickets and the other health components. The colour bands are a display "
                        "choice: red below 50, yellow below 75."),
        table("Current phase by customer", f"customer_onboarding_phase{{{selected}}} == 1",
              hide=("Value", "job", "instance"),
              description="The onboarding phase each customer is in now."),
        graph("Health score over time", [
            target(f"customer_health_score{{{selected}}}", "{{customer_id}}"),
        ], unit="short", steps=thresholds("red", ("yellow", 50), ("green", 75)), width=24, minimum=0,
            description="Each customer's health score over time."),
    ]
    return dashboard(
        "unmogrowp-customer-onboarding", "UnMoGrowP Customer Onboarding",
        "Where is each pilot customer in onboarding, and is anyone stuck?", panels,
        variables=(customer_variable(),), refresh="1m", time_from="now-30d")


DASHBOARDS = {
    "performance-monitoring.json": performance_monitoring,
    "customer-success-metrics.json": customer_success_metrics,
    "load-testing-validation.json": load_testing_validation,
    "customer-onboarding.json": customer_onboarding,
}


def render_all() -> dict[str, str]:
    """Return the text of every dashboard file, by file name."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (DASHBOARD_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {DASHBOARD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
