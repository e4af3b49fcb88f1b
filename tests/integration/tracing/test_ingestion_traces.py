"""The ingestion service's traces, exemplars and log lines, end to end.

Each test starts ``unmogrowp ingestion`` as a subprocess whose OTEL_* variables
point at the real OTLP receiver of tests/support/otlp_receiver.py, over gRPC
and over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporters.tracing import random_traceparent
from tests.integration.ingestion.helpers import Api, click, install, unique
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.services import free_port, start_ingestion

PROTOCOLS = ["grpc", "http/protobuf"]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
HISTOGRAM = "attribution_event_processing_duration_seconds"
# The service stops its tracing within 5 s, and uvicorn and the store take the rest.
SHUTDOWN_DEADLINE_S = 12.0


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def service_env(tmp_path, variables: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name.startswith("OTEL_")}
    env = dict.fromkeys(env, "")
    env["UNMOGROWP_DATA_DIR"] = str(tmp_path)
    env.update(variables)
    return env


def log_lines(service) -> list[dict]:
    lines = []
    for text in service.log_text().splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def exemplars_of(metrics_text: str, family_name: str) -> list:
    found = []
    for family in parse_openmetrics(metrics_text):
        if family.name != family_name:
            continue
        for sample in family.samples:
            if sample.exemplar is not None:
                found.append(sample)
    return found


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_traced_batch_span_tree_exemplar_and_log(tmp_path, receiver, protocol):
    env = service_env(tmp_path, receiver.otel_environment(protocol))
    with start_ingestion(tmp_path, env=env) as service:
        api = Api(service)
        app_id, key = api.register()
        traceparent = random_traceparent(sampled=True)
        _, caller_trace_id, caller_span_id, _ = traceparent.split("-")
        now = time.time()
        events = [
            click(app_id, unique("click"), now - 3600, gaid="38400000-8cf0-11bd-b23e-10b96e40000d"),
            install(app_id, unique("install"), now - 60, gaid="38400000-8cf0-11bd-b23e-10b96e40000d"),
            {"event_id": unique("bad"), "app_id": app_id, "event_type": "teleport"},
        ]
        response = api.post_events(key, events, headers={"traceparent": traceparent})
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 2
        assert response.json()["rejected"] == 1

        spans = receiver.wait_for_spans(
            lambda spans: {"POST /v1/events", "decode", "attribute", "store"}
            <= {span.name for span in spans if span.trace_id == caller_trace_id}
        )
        trace = {span.name: span for span in spans if span.trace_id == caller_trace_id}
        server = trace["POST /v1/events"]
        assert server.parent_span_id == caller_span_id
        assert server.kind == "SPAN_KIND_SERVER"
        assert server.resource["service.name"] == "ingestion"
        assert server.attributes["http.route"] == "/v1/events"
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["unmogrowp.app_id"] == app_id
        assert server.attributes["unmogrowp.batch.size"] == 3
        assert server.attributes["unmogrowp.batch.accepted"] == 2
        assert server.attributes["unmogrowp.batch.duplicates"] == 0
        assert server.attributes["unmogrowp.batch.rejected"] == 1
        assert trace["decode"].parent_span_id == server.span_id
        assert trace["attribute"].parent_span_id == server.span_id
        assert trace["attribute"].attributes["unmogrowp.app_id"] == app_id
        assert trace["attribute"].attributes["unmogrowp.batch.size"] == 2
        assert trace["store"].parent_span_id == trace["attribute"].span_id
        assert trace["store"].attributes["unmogrowp.journal.bytes"] > 0
        expected_transport = "grpc" if protocol == "grpc" else "http"
        assert server.transport == expected_transport

        metrics_text = api.metrics_text(OPENMETRICS)
        exemplars = exemplars_of(metrics_text, HISTOGRAM)
        ours = [sample for sample in exemplars if sample.exemplar.labels["trace_id"] == caller_trace_id]
        assert ours, f"no exemplar with trace id {caller_trace_id} among {len(exemplars)} exemplars"
        assert ours[0].labels["endpoint"] == "/v1/events"
        assert ours[0].exemplar.labels["span_id"] == server.span_id

        access = [
            line for line in log_lines(service)
            if line.get("trace_id") == caller_trace_id and line.get("logger") == "unmogrowp.access"
        ]
        assert len(access) == 1, access
        line = access[0]
        assert line["span_id"] == server.span_id
        assert line["service"] == "ingestion"
        assert line["level"] == "warning"
        assert line["kind"] == "rejected_events"
        assert line["rejected"] == 1
        assert line["route"] == "/v1/events"
        assert "time" in line
        api.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_collector_down_ingestion_goes_on(tmp_path, receiver, protocol):
    variables = receiver.otel_environment(
        protocol,
        OTEL_BSP_MAX_QUEUE_SIZE="8",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
        # The exporter would retry for 30 s on its own, past the shutdown deadline.
        OTEL_EXPORTER_OTLP_TIMEOUT="30",
    )
    env = service_env(tmp_path, variables)
    with start_ingestion(tmp_path, env=env) as service:
        api = Api(service)
        app_id, key = api.register()
        receiver.wait_for_spans(lambda spans: any(span.name == "POST /v1/apps" for span in spans))
        # The exporter counts a batch once the receiver's response is back, a moment after it arrives.
        deadline = time.monotonic() + 10
        while api.total("otel_spans_exported_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.total("otel_spans_exported_total") >= 1

        receiver.stop()
        dropped_before = api.total("otel_spans_dropped_total")
        now = time.time()
        for number in range(40):
            response = api.post_events(key, [click(app_id, unique("click"), now - number, gaid=unique("device"))])
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 1
        dropped_after = api.total("otel_spans_dropped_total")
        assert dropped_after > dropped_before
        assert api.total("otel_spans_dropped_total", reason="queue_full") > 0
        assert api.client.get("/healthz").status_code == 200

        api.close()
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        try:
            exit_code = service.process.wait(timeout=SHUTDOWN_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the service did not stop within {SHUTDOWN_DEADLINE_S} s of SIGTERM with the collector down")
        elapsed = time.monotonic() - started
        # uvicorn re-raises the signal it handled once it has shut down.
        assert exit_code in (0, -signal.SIGTERM)
        assert elapsed < SHUTDOWN_DEADLINE_S

    messages = [line["message"] for line in log_lines(service)]
    assert "span export failing: spans are dropped and counted in otel_spans_dropped_total" in messages
    assert any(message.startswith("tracing stopped") for message in messages)
    assert "service stopped" in messages, "the lifespan shutdown did not finish"


def test_tracing_off_when_sdk_disabled(tmp_path):
    env = service_env(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    env["OTEL_SDK_DISABLED"] = "true"
    with start_ingestion(tmp_path, env=env) as service:
        api = Api(service)
        app_id, key = api.register()
        response = api.post_events(key, [click(app_id, unique("click"), time.time())], headers={"traceparent": random_traceparent()})
        assert response.status_code == 200
        assert "otel_spans_dropped_total" not in api.metrics_text()
        assert exemplars_of(api.metrics_text(OPENMETRICS), HISTOGRAM) == []
        api.close()
    messages = [line["message"] for line in log_lines(service)]
    assert "tracing off: set OTEL_EXPORTER_OTLP_ENDPOINT to export traces" in messages
