"""What a running ingestion service exposes on /metrics, /healthz, /readyz and /v1/stats."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.integration.ingestion.helpers import Api, click, install, promtool_check, session, unique

SERVICE_OPTIONS = {"max_networks_per_app": 3}
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
AWKWARD = 'quote " backslash \\ newline \n end'


def series(text: str) -> set[tuple[str, frozenset]]:
    """Return every (sample name, labels) pair of a text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in parse_text(text)
        for sample in family.samples
    }


def sum_of(api: Api, name: str) -> float:
    return sum(value for _labels, value in api.samples(name))


def test_processed_total_equals_events_sent(api):
    app_id, key = api.register()
    now = time.time()
    processed_before = sum_of(api, "attribution_events_processed_total")
    observed_before = sum_of(api, "attribution_event_processing_duration_seconds_count")

    batches = [
        [click(app_id, "c-1", now - 60, gaid="g"), install(app_id, "i-1", now, gaid="g")],
        [click(app_id, "c-1", now - 60, gaid="g"), session(app_id, "s-1"), session(app_id, "s-1")],
        [session(app_id, "bad", ip="nowhere"), {"event_id": "x"}, 17, session("not-registered", "ghost")],
        [session(app_id, f"bulk-{index}") for index in range(500)],
    ]
    sent = sum(len(batch) for batch in batches)
    outcomes = [api.send(key, batch) for batch in batches]
    assert api.post_events(key, body=b"not json").status_code == 400

    by_status = {
        status: api.total("attribution_events_processed_total", app_id=app_id, status=status)
        for status in ("accepted", "duplicate", "rejected")
    }
    assert sum(outcome["accepted"] + outcome["duplicates"] + outcome["rejected"] for outcome in outcomes) == sent
    assert sum_of(api, "attribution_events_processed_total") - processed_before == sent
    assert sum_of(api, "attribution_event_processing_duration_seconds_count") - observed_before == sent
    # The key's app counts all four rejections, the event naming an unregistered app among them.
    assert by_status == {"accepted": 503, "duplicate": 2, "rejected": 4}


def test_duration_histogram_has_100ms_bucket(api):
    buckets = {labels["le"] for labels, _ in api.samples("attribution_event_processing_duration_seconds_bucket")}

    assert "0.1" in buckets
    assert "+Inf" in buckets


def test_duration_histogram_endpoint_label(api):
    endpoints = {labels["endpoint"] for labels, _ in api.samples("attribution_event_processing_duration_seconds_count")}

    assert endpoints == {"/v1/events"}


def test_no_created_series(api):
    text = api.metrics_text()
    openmetrics = api.metrics_text(accept="application/openmetrics-text")

    assert "_created" not in text
    assert "_created" not in openmetrics


def test_openmetrics_on_request(api):
    response = api.client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    families = {family.name: family for family in parse_openmetrics(response.text)}

    assert response.headers["content-type"] == OPENMETRICS
    assert response.text.endswith("# EOF\n")
    assert families["attribution_events_processed"].type == "counter"
    assert families["attribution_event_processing_duration_seconds"].type == "histogram"


def test_text_format_by_default(api):
    response = api.client.get("/metrics")

    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in response.text


def test_promtool_accepts_exposition(api):
    app_id, key = api.register(app_id=unique(AWKWARD))
    now = time.time()
    api.send(key, [click(app_id, "c", now - 60, gaid="g", network=AWKWARD), install(app_id, "i", now, gaid="g")])

    checked = promtool_check(api.metrics_text())

    assert checked.returncode == 0
    assert checked.stdout == ""
    assert checked.stderr == ""


def test_awkward_label_values_round_trip(api):
    app_id, key = api.register(app_id=unique(AWKWARD))
    now = time.time()
    api.send(key, [
        click(app_id, "c", now - 60, gaid="g", network=AWKWARD),
        install(app_id, "i", now, gaid="g"),
        session(app_id, "s", now, gaid="g"),
    ])

    installs = [labels for labels, _ in api.samples("attribution_installs_total") if labels["app_id"] == app_id]
    carried = [labels for labels, _ in api.samples("attribution_carried_events_total") if labels["app_id"] == app_id]
    openmetrics = {
        (sample.labels["app_id"], sample.labels["network"])
        for family in parse_openmetrics(api.metrics_text(accept="application/openmetrics-text"))
        if family.name == "attribution_installs"
        for sample in family.samples
    }

    assert [labels["network"] for labels in installs] == [AWKWARD]
    assert [labels["network"] for labels in carried] == [AWKWARD]
    assert (app_id, AWKWARD) in openmetrics
    assert api.total("attribution_events_processed_total", app_id=app_id, status="accepted") == 3


def test_unregistered_apps_do_not_grow_labels(api):
    admin_key = api.service.admin_token
    before = api.total("attribution_events_processed_total", app_id="_unregistered")

    def batch(start: int) -> list[dict]:
        return [session(f"ghost-{start + index}", "e", platform="ios") for index in range(10_000)]

    first = api.send(admin_key, batch(0))
    after_first = series(api.metrics_text())
    for start in range(10_000, 100_000, 10_000):
        outcome = api.send(admin_key, batch(start))
        assert outcome["rejected"] == 10_000
    after_all = series(api.metrics_text())

    assert first["rejected"] == 10_000
    assert "app_id: app 'ghost-0' is not registered" in first["errors"][0]["error"]
    assert after_all == after_first
    assert api.total("attribution_events_processed_total", app_id="_unregistered") - before == 100_000
    assert not any(name.startswith("attribution") and ("app_id", "ghost-0") in labels for name, labels in after_all)


def test_network_labels_capped_per_app(api):
    app_id, key = api.register()
    now = time.time()
    events = []
    for index in range(5):
        events.append(click(app_id, f"c-{index}", now - 60, gaid=f"g-{index}", network=f"net-{index}"))
        events.append(install(app_id, f"i-{index}", now, gaid=f"g-{index}"))
    api.send(key, events)

    networks = {
        labels["network"]: value
        for labels, value in api.samples("attribution_installs_total") if labels["app_id"] == app_id
    }

    assert networks == {"net-0": 1, "net-1": 1, "net-2": 1, "_other": 2}
    assert {record["network"] for record in api.records(app_id)} == {f"net-{index}" for index in range(5)}


def test_installs_by_match_type_and_status(api):
    app_id, key = api.register()
    now = time.time()
    api.send(key, [
        click(app_id, "c", now - 60, gaid="g"),
        install(app_id, "attributed", now - 30, gaid="g"),
        install(app_id, "reinstall", now, gaid="g"),
        install(app_id, "organic", now, gaid="other"),
        click(app_id, "injected", now - 1, gaid="h"),
        install(app_id, "rejected", now, gaid="h"),
    ])

    installs = {
        (labels["network"], labels["match_type"], labels["status"]): value
        for labels, value in api.samples("attribution_installs_total") if labels["app_id"] == app_id
    }
    rejected = api.total("attribution_rejected_touches_total", app_id=app_id, reason="ctit_below_minimum")

    assert installs == {
        ("adnet", "device_id", "attributed"): 1,
        ("adnet", "device_id", "reinstall"): 1,
        ("organic", "none", "organic"): 2,
    }
    assert rejected == 1


def test_active_connections_and_memory(api, service):
    with httpx.Client(base_url=service.url) as first, httpx.Client(base_url=service.url) as second:
        first.get("/healthz")
        second.get("/healthz")
        connections = api.total("attribution_active_connections")

    assert connections >= 3
    assert api.total("attribution_memory_usage_bytes") > 10_000_000
    assert api.total("process_resident_memory_bytes") > 10_000_000


def test_healthz(api):
    response = api.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz(api):
    response = api.client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"store": True}}


def test_stats_counts_latency_revenue(api):
    app_id, key = api.register()
    now = time.time()
    api.send(key, [
        click(app_id, "c", now - 60, gaid="g", network="adnet", campaign="spring"),
        install(app_id, "i", now - 30, gaid="g"),
        session(app_id, "s", now, gaid="g"),
        session(app_id, "s", now, gaid="g"),
        session(app_id, "bad", now, ip="nowhere"),
    ])
    purchases = b"[" + b",".join(
        b'{"event_id": "buy-%d", "app_id": "%s", "event_type": "in_app", "event_name": "purchase", '
        b'"gaid": "%s", "revenue": 0.1, "currency": "USD"}' % (index, app_id.encode(), gaid)
        for index, gaid in enumerate([b"g", b"g", b"g", b"stranger"])
    ) + b"]"
    assert api.post_events(key, body=purchases).json()["accepted"] == 4

    response = api.client.get("/v1/stats", headers=api.admin)
    stats = response.json()["apps"][app_id]
    revenue = {(line["network"], line["campaign"]): (line["amount"], line["events"]) for line in stats["revenue"]}

    assert response.status_code == 200
    assert stats["events"] == {"accepted": 7, "duplicate": 1, "rejected": 1}
    assert set(stats["latency_ms"]) == {"p50", "p95", "p99"}
    assert all(value is not None and value > 0 for value in stats["latency_ms"].values())
    assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p95"] <= stats["latency_ms"]["p99"]
    assert revenue == {("adnet", "spring"): ("0.3", 3), (None, None): ("0.1", 1)}


def test_stats_needs_admin(api):
    _app_id, key = api.register()

    assert api.client.get("/v1/stats", headers={"Authorization": f"Bearer {key}"}).status_code == 403
    assert api.client.get("/v1/stats").status_code == 401


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_operational_endpoints_need_no_token(api, path):
    assert api.client.get(path).status_code == 200

