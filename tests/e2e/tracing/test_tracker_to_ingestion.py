"""One trace across both services: the tracker's calls to the ingestion service carry it.

Both services run as subprocesses exporting over gRPC to the real OTLP
receiver of tests/support/otlp_receiver.py.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from exporters.tracing import random_traceparent
from tests.integration.ingestion.helpers import Api, click, install, unique
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.services import start_ingestion, start_tracker

pytestmark = pytest.mark.e2e


def otel_env(tmp_path, receiver: OtlpReceiver, service: str) -> dict[str, str]:
    env = {name: "" for name in os.environ if name.startswith("OTEL_")}
    env.update(receiver.otel_environment("grpc"))
    env["UNMOGROWP_DATA_DIR"] = str(tmp_path / service)
    return env


def test_reconciliation_trace_spans_both_services(tmp_path):
    with OtlpReceiver() as receiver:
        ingestion_env = otel_env(tmp_path, receiver, "ingestion")
        with start_ingestion(tmp_path, env=ingestion_env) as ingestion:
            api = Api(ingestion)
            app_id, key = api.register()
            install_id = unique("install")
            now = time.time()
            device = {"gaid": "38400000-8cf0-11bd-b23e-10b96e40000d"}
            api.send(key, [click(app_id, unique("click"), now - 3600, **device), install(app_id, install_id, now - 60, **device)])

            tracker_env = otel_env(tmp_path, receiver, "tracker")
            with start_tracker(
                tmp_path, ingestion_url=ingestion.url, admin_token=ingestion.admin_token, env=tracker_env
            ) as tracker:
                headers = {"Authorization": f"Bearer {tracker.admin_token}"}
                with httpx.Client(base_url=tracker.url, headers=headers, timeout=30) as client:
                    created = client.post(
                        "/v1/customers", json={"customer_id": "acme", "company_name": "Acme Games", "app_ids": [app_id]}
                    )
                    assert created.status_code == 201, created.text

                    traceparent = random_traceparent(sampled=True)
                    _, trace_id, caller_span_id, _ = traceparent.split("-")
                    reference = f"install_event_id,network\n{install_id},adnet\n".encode()
                    response = client.post(
                        "/v1/customers/acme/reconciliations",
                        content=reference,
                        headers={"Content-Type": "text/csv", "traceparent": traceparent},
                    )
                    assert response.status_code == 201, response.text
                    assert response.json()["matched"] == 1

                def has_both_sides(spans) -> bool:
                    names = {span.name for span in spans if span.trace_id == trace_id}
                    return "POST /v1/customers/{customer_id}/reconciliations" in names and any(
                        name.startswith("GET /v1/attributions") for name in names
                    )

                spans = receiver.wait_for_spans(has_both_sides)
            api.close()

    trace = [span for span in spans if span.trace_id == trace_id]
    tracker_server = next(span for span in trace if span.name == "POST /v1/customers/{customer_id}/reconciliations")
    assert tracker_server.parent_span_id == caller_span_id
    assert tracker_server.resource["service.name"] == "customer-tracker"

    ingestion_servers = [span for span in trace if span.name.startswith("GET /v1/attributions")]
    clients = {span.span_id: span for span in trace if span.kind == "SPAN_KIND_CLIENT"}
    assert ingestion_servers
    for server in ingestion_servers:
        assert server.resource["service.name"] == "ingestion"
        client_span = clients[server.parent_span_id]
        assert client_span.resource["service.name"] == "customer-tracker"
        assert client_span.attributes["url.path"].startswith("/v1/attributions")
        assert client_span.attributes["http.response.status_code"] == 200
