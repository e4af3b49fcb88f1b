"""The ASGI middleware's server spans, child spans, exemplars and access-log lines.

Spans go through the real OTLP exporter to the real receiver of
tests/support/otlp_receiver.py.
"""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request, Response

from exporters.exposition import render
from exporters.tracing import child_span, current_exemplar, random_traceparent, record_batch, record_error
from exporters.tracing_access_log import ACCESS_LOGGER_NAME, AccessLog
from exporters.tracing_asgi import TracingMiddleware
from services.logging import JsonFormatter

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
SAMPLED_TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"
UNSAMPLED_TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-00"


class StoreDown(Exception):
    pass


def build_app(registry, access_log: AccessLog | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/batches/{app_id}")
    async def post_batch(app_id: str, request: Request) -> dict:
        body = await request.body()
        with child_span("decode", {"unmogrowp.body_bytes": len(body)}):
            events = json.loads(body)
        with child_span("attribute"):
            with child_span("store"):
                pass
        record_batch(app_id=app_id, batch_size=len(events), accepted=len(events) - 1, duplicates=0, rejected=1)
        return {"exemplar": current_exemplar()}

    @app.get("/v1/fail")
    async def fail() -> dict:
        with child_span("store"):
            raise RuntimeError("disk on fire")

    @app.get("/v1/unavailable")
    async def unavailable() -> Response:
        try:
            raise StoreDown("redis at 127.0.0.1:6379 refused the connection")
        except StoreDown as error:
            record_error(error)
        return Response(status_code=503)

    @app.get("/v1/bad")
    async def bad() -> dict:
        raise HTTPException(400, "app_id: missing")

    @app.get("/v1/plain")
    async def plain() -> dict:
        return {"exemplar": current_exemplar()}

    @app.get("/metrics")
    async def metrics() -> dict:
        return {}

    app.add_middleware(TracingMiddleware, registry=registry, access_log=access_log)
    return app


@pytest.fixture
def access_lines():
    """Capture the access log as JSON lines, formatted the way services write them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ingestion"))
    access_logger = logging.getLogger(ACCESS_LOGGER_NAME)
    access_logger.addHandler(handler)
    previous_level = access_logger.level
    access_logger.setLevel(logging.INFO)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    access_logger.removeHandler(handler)
    access_logger.setLevel(previous_level)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_incoming_traceparent_continued(start_tracing, receiver, access_lines):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    async with client_for(build_app(registry)) as client:
        response = await client.post(
            "/v1/batches/app-1", content=b"[1, 2, 3]", headers={"traceparent": SAMPLED_TRACEPARENT}
        )
    assert response.status_code == 200

    spans = receiver.wait_for_spans(lambda spans: len(spans) >= 4)
    by_name = {span.name: span for span in spans}
    assert set(by_name) == {"POST /v1/batches/{app_id}", "decode", "attribute", "store"}
    server = by_name["POST /v1/batches/{app_id}"]
    assert server.trace_id == CALLER_TRACE_ID
    assert server.parent_span_id == CALLER_SPAN_ID
    assert server.kind == "SPAN_KIND_SERVER"
    assert all(span.trace_id == CALLER_TRACE_ID for span in spans)
    assert by_name["decode"].parent_span_id == server.span_id
    assert by_name["attribute"].parent_span_id == server.span_id
    assert by_name["store"].parent_span_id == by_name["attribute"].span_id
    assert by_name["decode"].attributes["unmogrowp.body_bytes"] == 9
    handle.force_flush(2.0)
    assert len(receiver.spans) == 4, "one server span per request, and one span per child"

    assert server.attributes["http.route"] == "/v1/batches/{app_id}"
    assert server.attributes["url.path"] == "/v1/batches/app-1"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["unmogrowp.app_id"] == "app-1"
    assert server.attributes["unmogrowp.batch.size"] == 3
    assert server.attributes["unmogrowp.batch.accepted"] == 2
    assert server.attributes["unmogrowp.batch.duplicates"] == 0
    assert server.attributes["unmogrowp.batch.rejected"] == 1
    assert server.resource["service.name"] == "unmogrowp-test"

    exemplar = response.json()["exemplar"]
    assert exemplar == {"trace_id": CALLER_TRACE_ID, "span_id": server.span_id}

    lines = access_lines()
    assert len(lines) == 1
    line = lines[0]
    assert line["kind"] == "rejected_events"
    assert line["trace_id"] == CALLER_TRACE_ID
    assert line["span_id"] == server.span_id
    assert line["route"] == "/v1/batches/{app_id}"
    assert line["status"] == 200
    assert line["rejected"] == 1
    assert line["sampled"] is True
    assert line["service"] == "ingestion"


async def test_span_name_is_route_template_not_path(start_tracing, receiver):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    async with client_for(build_app(registry)) as client:
        for app_id in ("a", "b", "c"):
            await client.post(f"/v1/batches/{app_id}", content=b"[1]")
        await client.get("/no/such/path")

    spans = receiver.wait_for_spans(lambda spans: sum(span.kind == "SPAN_KIND_SERVER" for span in spans) >= 4)
    server_names = sorted(span.name for span in spans if span.kind == "SPAN_KIND_SERVER")
    assert server_names == ["GET", "POST /v1/batches/{app_id}", "POST /v1/batches/{app_id}", "POST /v1/batches/{app_id}"]
    trace_ids = {span.trace_id for span in spans if span.kind == "SPAN_KIND_SERVER"}
    assert len(trace_ids) == 4


async def test_unhandled_exception_recorded(start_tracing, receiver, access_lines):
    handle, registry = start_tracing(**receiver.otel_environment("http/protobuf"))
    async with client_for(build_app(registry)) as client:
        response = await client.get("/v1/fail")
    assert response.status_code == 500

    spans = receiver.wait_for_spans(lambda spans: len(spans) >= 2)
    by_name = {span.name: span for span in spans}
    server = by_name["GET /v1/fail"]
    store = by_name["store"]
    assert server.transport == "http"
    assert server.status_code == "STATUS_CODE_ERROR"
    assert "disk on fire" in server.status_message
    assert "exception" in server.event_names
    assert server.attributes["error.type"] == "RuntimeError"
    assert server.attributes["http.response.status_code"] == 500
    assert store.status_code == "STATUS_CODE_ERROR"
    assert "exception" in store.event_names

    lines = access_lines()
    assert [line["kind"] for line in lines] == ["server_error"]
    assert lines[0]["level"] == "error"
    assert lines[0]["status"] == 500
    assert "RuntimeError: disk on fire" == lines[0]["error"]
    assert lines[0]["trace_id"] == server.trace_id


async def test_handled_error_keeps_its_description(start_tracing, receiver):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    async with client_for(build_app(registry)) as client:
        response = await client.get("/v1/unavailable")
    assert response.status_code == 503

    [server] = receiver.wait_for_spans(lambda spans: len(spans) >= 1)
    assert server.status_code == "STATUS_CODE_ERROR"
    assert server.status_message.startswith("StoreDown: redis at 127.0.0.1:6379")
    assert "exception" in server.event_names
    assert server.attributes["error.type"] == "503"


async def test_client_error_not_a_span_error(start_tracing, receiver, access_lines):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    async with client_for(build_app(registry)) as client:
        response = await client.get("/v1/bad")
    assert response.status_code == 400

    [server] = receiver.wait_for_spans(lambda spans: len(spans) >= 1)
    assert server.status_code == "STATUS_CODE_UNSET"
    assert server.attributes["http.response.status_code"] == 400
    lines = access_lines()
    assert [line["kind"] for line in lines] == ["client_error"]
    assert lines[0]["level"] == "warning"


async def test_unsampled_request_has_no_span_or_exemplar(start_tracing, receiver, access_lines):
    handle, registry = start_tracing(**receiver.otel_environment("grpc", OTEL_TRACES_SAMPLER="parentbased_always_on"))
    async with client_for(build_app(registry)) as client:
        unsampled = await client.get("/v1/plain", headers={"traceparent": UNSAMPLED_TRACEPARENT})
        sampled = await client.get("/v1/plain", headers={"traceparent": random_traceparent(sampled=True)})
    assert unsampled.json()["exemplar"] is None
    assert sampled.json()["exemplar"] is not None

    spans = receiver.wait_for_spans(lambda spans: len(spans) >= 1)
    handle.force_flush(2.0)
    assert [span.trace_id for span in receiver.spans] == [sampled.json()["exemplar"]["trace_id"]]
    # Only the sampled request gets an access-log line; both succeeded.
    assert [line["kind"] for line in access_lines()] == ["sampled"]


async def test_untraced_paths_have_no_span(start_tracing, receiver):
    handle, registry = start_tracing(**receiver.otel_environment("grpc"))
    async with client_for(build_app(registry)) as client:
        await client.get("/metrics")
        await client.get("/v1/plain")
    receiver.wait_for_spans(lambda spans: len(spans) >= 1)
    handle.force_flush(2.0)
    assert [span.name for span in receiver.spans] == ["GET /v1/plain"]


async def test_tracing_off_still_logs_failures(clean_otel_env, access_lines):
    from exporters.metrics import Registry
    from exporters.tracing import configure_tracing

    registry = Registry(process_metrics=False)
    assert configure_tracing("unmogrowp-test", registry) is None
    async with client_for(build_app(registry)) as client:
        ok = await client.post("/v1/batches/app-1", content=b"[1]", headers={"traceparent": SAMPLED_TRACEPARENT})
        failed = await client.get("/v1/fail")
    assert ok.json()["exemplar"] is None
    assert failed.status_code == 500
    lines = access_lines()
    assert [line["kind"] for line in lines] == ["rejected_events", "server_error"]
    assert all("trace_id" not in line for line in lines)
    assert all(line["sampled"] is False for line in lines)


async def test_flood_of_bad_requests_rate_limited(start_tracing, receiver, access_lines):
    handle, registry = start_tracing(**receiver.otel_environment("grpc", OTEL_TRACES_SAMPLER="always_off"))
    access_log = AccessLog(registry, lines_per_second=0.001, burst=5)
    async with client_for(build_app(registry, access_log)) as client:
        for _ in range(40):
            assert (await client.get("/v1/bad")).status_code == 400
        failed = await client.get("/v1/fail")
    assert failed.status_code == 500

    lines = access_lines()
    kinds = [line["kind"] for line in lines]
    assert kinds.count("client_error") == 5
    # Each kind has its own bucket, so the flood did not silence the server error.
    assert kinds.count("server_error") == 1

    body, _ = render(registry, "application/openmetrics-text")
    text = body.decode()
    assert 'access_log_lines_suppressed_total{kind="client_error"} 35.0' in text
    assert 'access_log_lines_suppressed_total{kind="server_error"} 0.0' in text


def test_suppressed_count_on_next_line():
    stream = io.StringIO()
    logger = logging.getLogger("tests.tracing.suppressed")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ingestion"))
    logger.addHandler(handler)
    access_log = AccessLog(None, lines_per_second=1000.0, burst=1, logger=logger)
    bucket = access_log._buckets["client_error"]

    assert access_log.emit("client_error", logging.WARNING, "request rejected", {"status": 401})
    assert not access_log.emit("client_error", logging.WARNING, "request rejected", {"status": 401})
    assert not access_log.emit("client_error", logging.WARNING, "request rejected", {"status": 401})
    bucket.updated -= 1.0  # one second later: the bucket has refilled
    assert access_log.emit("client_error", logging.WARNING, "request rejected", {"status": 401})

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert "suppressed_lines" not in lines[0]
    assert lines[1]["suppressed_lines"] == 2
